//! Kazoo identifiers: 32 lowercase hex characters, and the database names derived from them.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::fmt;

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A Kazoo account id. Once built it is always 32 lowercase hex characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid account_id '{0}'")]
pub struct InvalidAccountId(pub String);

impl AccountId {
    /// Parses a raw 32-hex account id, as it appears in a URL path.
    pub fn parse(raw: &str) -> Result<Self, InvalidAccountId> {
        if is_hex32(raw) { Ok(Self(raw.to_owned())) } else { Err(InvalidAccountId(raw.to_owned())) }
    }

    /// Accepts every spelling `kz_util:format_account_id` understands: the raw id and the
    /// account database name, plain (`account/aa/bb/...`) or URL-encoded (`account%2Faa...`).
    pub fn from_any(raw: &str) -> Option<Self> {
        if is_hex32(raw) {
            return Some(Self(raw.to_owned()));
        }
        let lower = raw.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("account/")
            .map(|r| r.replace('/', ""))
            .or_else(|| lower.strip_prefix("account%2f").map(|r| r.replace("%2f", "")))?;
        is_hex32(&rest).then_some(Self(rest))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `account/AA/BB/<rest>`: the account database name as CouchDB knows it.
    pub fn db_name(&self) -> String {
        format!("account/{}/{}/{}", &self.0[0..2], &self.0[2..4], &self.0[4..])
    }
}

impl TryFrom<String> for AccountId {
    type Error = InvalidAccountId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AccountId> for String {
    fn from(value: AccountId) -> Self {
        value.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A database name as Kazoo writes it into documents (`pvt_db_name`): URL-encoded, so
/// `numbers/+1415` is `numbers%2F%2B1415`.
pub fn encode_db_name(name: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');
    utf8_percent_encode(name, COMPONENT).to_string()
}

/// A new document id as Kazoo makes them (`kz_binary:rand_hex(16)`).
pub fn new_doc_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A stable 32-hex id derived from a seed: whoever derives it from the same seed gets the
/// same document, so creating it twice is a conflict, not a duplicate.
pub fn derived_id(seed: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..16])
}

/// Port request ids are 32 lowercase hex characters, like every Kazoo document id.
pub fn is_doc_id(s: &str) -> bool {
    is_hex32(s)
}

/// A port request's id. Made by this service or asked for in a URL, it is 32 lowercase hex
/// characters (`parse`); read from a stored document it is whatever CouchDB holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PortRequestId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a port request id")]
pub struct InvalidPortRequestId(pub String);

impl PortRequestId {
    pub fn parse(raw: &str) -> Result<Self, InvalidPortRequestId> {
        if is_hex32(raw) { Ok(Self(raw.to_owned())) } else { Err(InvalidPortRequestId(raw.to_owned())) }
    }

    /// A new random id (`kz_binary:rand_hex(16)`).
    pub fn new_random() -> Self {
        Self(new_doc_id())
    }

    /// The id that follows from a seed (`derived_id`): the same for whoever derives it.
    pub fn derived(seed: &str) -> Self {
        Self(derived_id(seed))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PortRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f2b7a1c9d8e0f1a2b3c4d5e6f708192";

    #[test]
    fn parses_raw_ids_only() {
        assert!(AccountId::parse(ID).is_ok());
        assert!(AccountId::parse("xyz").is_err());
        assert!(AccountId::parse(&ID.to_uppercase()).is_err());
        assert!(AccountId::parse(&format!("{ID}0")).is_err());
    }

    #[test]
    fn database_name_splits_the_id() {
        let id = AccountId::parse(ID).unwrap();
        assert_eq!(id.db_name(), "account/4f/2b/7a1c9d8e0f1a2b3c4d5e6f708192");
    }

    #[test]
    fn accepts_database_spellings() {
        let id = AccountId::parse(ID).unwrap();
        assert_eq!(AccountId::from_any(&id.db_name()), Some(id.clone()));
        assert_eq!(AccountId::from_any("account%2F4f%2F2b%2F7a1c9d8e0f1a2b3c4d5e6f708192"), Some(id.clone()));
        assert_eq!(AccountId::from_any(ID), Some(id));
        assert_eq!(AccountId::from_any("not-an-account"), None);
    }

    #[test]
    fn new_ids_are_valid() {
        let id = new_doc_id();
        assert!(is_doc_id(&id));
        assert_ne!(id, new_doc_id());
    }
}
