//! Number normalisation exactly as Kazoo's default E.164 converters do it
//! (`knm_converter_regex`), plus the checks this service adds on top.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::LazyLock;

static NANP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(\+?1)?([2-9]\d\d[2-9]\d{6})$").unwrap());
static INTL_PREFIX: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^011(\d{5,})$|^00(\d{5,})$").unwrap());
static LONG_INTL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[2-9]\d{7,}$").unwrap());
static E164: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\+[1-9]\d{6,14}$").unwrap());

/// Kazoo's normalisation: a leading `+` is kept as is; 10-digit NANP (optionally with a
/// leading 1) gets `+1`; `011`/`00` prefixes become `+`; other long numbers get `+`.
/// Anything else comes back unchanged, as in Kazoo. Visual separators (spaces, dots,
/// dashes, parentheses) are dropped first so a human-typed number still normalises.
pub fn normalize(raw: &str) -> String {
    let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')' | '\t')).collect();
    if compact.starts_with('+') {
        return compact;
    }
    if let Some(c) = NANP.captures(&compact) {
        return format!("+1{}", &c[2]);
    }
    if let Some(c) = INTL_PREFIX.captures(&compact) {
        let digits = c.get(1).or_else(|| c.get(2)).map_or("", |m| m.as_str());
        return format!("+{digits}");
    }
    if LONG_INTL.is_match(&compact) {
        return format!("+{compact}");
    }
    compact
}

/// A syntactically valid E.164 number: `+`, a non-zero country digit, 7 to 15 digits in all.
pub fn is_e164(number: &str) -> bool {
    E164.is_match(number)
}

/// `normalize`, keeping only results that are E.164.
pub fn to_e164(raw: &str) -> Option<String> {
    let n = normalize(raw);
    is_e164(&n).then_some(n)
}

/// An E.164 number: once built it is always `+`, a non-zero country digit, 7 to 15 digits.
/// Stored documents hold numbers as their keys; a key that is not E.164 is not a `PhoneNumber`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an E.164 phone number")]
pub struct NotE164(pub String);

impl PhoneNumber {
    /// A number as a client wrote it, normalised as Kazoo does (`normalize`).
    pub fn parse(raw: &str) -> Result<Self, NotE164> {
        to_e164(raw).map(Self).ok_or_else(|| NotE164(raw.to_owned()))
    }

    /// A number already in E.164, taken as it is (no normalisation).
    pub fn exact(e164: &str) -> Result<Self, NotE164> {
        if is_e164(e164) { Ok(Self(e164.to_owned())) } else { Err(NotE164(e164.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The numbers database it lives in.
    pub fn db_name(&self) -> String {
        numbers_db_name(&self.0)
    }

    pub fn pretty(&self) -> String {
        pretty_print(&self.0)
    }
}

/// Written as the number itself; read only when it is one (taken as it is, no normalisation).
impl Serialize for PhoneNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        PhoneNumber::exact(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::borrow::Borrow<str> for PhoneNumber {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The numbers database of an E.164 number: `numbers/` + its first 5 characters.
pub fn numbers_db_name(e164: &str) -> String {
    let prefix: String = e164.chars().take(5).collect();
    format!("numbers/{prefix}")
}

/// Kazoo's US pretty print (`SS(###) ### - ####`) for NANP numbers; others stay E.164.
pub fn pretty_print(e164: &str) -> String {
    match NANP.captures(e164) {
        Some(c) => {
            let d = &c[2];
            format!("({}) {} - {}", &d[0..3], &d[3..6], &d[6..10])
        }
        None => e164.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kazoo_rules() {
        assert_eq!(normalize("+12025550123"), "+12025550123");
        assert_eq!(normalize("2025550123"), "+12025550123");
        assert_eq!(normalize("12025550123"), "+12025550123");
        assert_eq!(normalize("011442071234567"), "+442071234567");
        assert_eq!(normalize("00442071234567"), "+442071234567");
        assert_eq!(normalize("442071234567"), "+442071234567");
        assert_eq!(normalize("12345"), "12345");
    }

    #[test]
    fn separators_are_ignored() {
        assert_eq!(normalize("202.555.0123"), "+12025550123");
        assert_eq!(normalize("(202) 555-0123"), "+12025550123");
        assert_eq!(normalize("+61 2 8888 8888"), "+61288888888");
    }

    #[test]
    fn e164_check() {
        assert_eq!(to_e164("2025550123").as_deref(), Some("+12025550123"));
        assert_eq!(to_e164("12345"), None);
        assert_eq!(to_e164("+0123456789"), None);
        assert_eq!(to_e164("+1202555012345678"), None);
        assert_eq!(to_e164("abc"), None);
    }

    #[test]
    fn numbers_database() {
        assert_eq!(numbers_db_name("+12025550123"), "numbers/+1202");
    }

    #[test]
    fn phone_numbers_are_e164_once_built() {
        assert_eq!(PhoneNumber::parse("(202) 555-0123").unwrap().as_str(), "+12025550123");
        assert!(PhoneNumber::exact("2025550123").is_err(), "stored keys are taken as they are");
        assert!(serde_json::from_value::<PhoneNumber>(serde_json::json!("12345")).is_err());
        assert_eq!(PhoneNumber::parse("+12025550123").unwrap().db_name(), "numbers/+1202");
    }

    #[test]
    fn pretty() {
        assert_eq!(pretty_print("+14155551234"), "(415) 555 - 1234");
        assert_eq!(pretty_print("+442071234567"), "+442071234567");
    }
}
