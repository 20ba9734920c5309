//! The Kazoo documents around a port request that the service reads: the account (from its own
//! database), its users, its `whitelabel`, and the `system_config` documents; and the minimum of
//! them `bootstrap --demo` writes.

use super::fields::Slot;
use crate::domain::ids::AccountId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An account document (`kazoo-4.3-core.md`, "Databases a replacement reads").
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountDoc {
    #[serde(rename = "_id", default, skip_serializing_if = "Slot::is_absent")]
    pub id: Slot<String>,
    #[serde(rename = "_rev", default, skip_serializing_if = "Slot::is_absent")]
    pub rev: Slot<String>,
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub name: Slot<String>,
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub realm: Slot<String>,
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub timezone: Slot<String>,
    /// Where submitted requests are pushed (`knm_port_request:send_submitted_requests`).
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub submitted_port_requests_url: Slot<String>,
    #[serde(rename = "pvt_type", default, skip_serializing_if = "Slot::is_absent")]
    pub doc_type: Slot<String>,
    /// Ancestors, root (master) first.
    #[serde(rename = "pvt_tree", default, skip_serializing_if = "Slot::is_absent")]
    pub tree: Slot<Vec<Value>>,
    #[serde(rename = "pvt_superduper_admin", default, skip_serializing_if = "Slot::is_absent")]
    pub superduper_admin: Slot<bool>,
    #[serde(rename = "pvt_reseller", default, skip_serializing_if = "Slot::is_absent")]
    pub reseller: Slot<bool>,
    #[serde(rename = "pvt_reseller_id", default, skip_serializing_if = "Slot::is_absent")]
    pub reseller_id: Slot<String>,
    #[serde(rename = "pvt_signature_secret", default, skip_serializing_if = "Slot::is_absent")]
    pub signature_secret: Slot<String>,
    /// The Fone Dynamics API's password for this account.
    #[serde(rename = "pvt_api_key", default, skip_serializing_if = "Slot::is_absent")]
    pub api_key: Slot<String>,
    #[serde(rename = "pvt_deleted", default, skip_serializing_if = "Slot::is_absent")]
    pub deleted: Slot<bool>,
    #[serde(rename = "pvt_account_id", default, skip_serializing_if = "Slot::is_absent")]
    pub account_id: Slot<String>,
    #[serde(rename = "pvt_account_db", default, skip_serializing_if = "Slot::is_absent")]
    pub account_db: Slot<String>,
    #[serde(rename = "pvt_enabled", default, skip_serializing_if = "Slot::is_absent")]
    pub enabled: Slot<bool>,
    #[serde(rename = "pvt_created", default, skip_serializing_if = "Slot::is_absent")]
    pub created: Slot<i64>,
    #[serde(rename = "pvt_modified", default, skip_serializing_if = "Slot::is_absent")]
    pub modified: Slot<i64>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl AccountDoc {
    /// Ancestors, root first, in any spelling Kazoo accepts; others are left out.
    pub fn ancestors(&self) -> Vec<AccountId> {
        self.tree
            .get()
            .map(|t| t.iter().filter_map(|v| v.as_str().and_then(AccountId::from_any)).collect())
            .unwrap_or_default()
    }

    /// A new account document as Kazoo makes them (for `bootstrap --demo`).
    pub fn new(id: &AccountId, name: &str, now: i64) -> Self {
        let mut doc = AccountDoc::default();
        doc.id.set(id.to_string());
        doc.name.set(name.to_owned());
        doc.doc_type.set("account".into());
        doc.account_id.set(id.to_string());
        doc.account_db.set(id.db_name());
        doc.tree.set(Vec::new());
        doc.enabled.set(true);
        doc.created.set(now);
        doc.modified.set(now);
        doc
    }
}

/// A user document (in the account's database).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserDoc {
    #[serde(rename = "_id", default, skip_serializing_if = "Slot::is_absent")]
    pub id: Slot<String>,
    #[serde(rename = "_rev", default, skip_serializing_if = "Slot::is_absent")]
    pub rev: Slot<String>,
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub username: Slot<String>,
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub first_name: Slot<String>,
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub last_name: Slot<String>,
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub email: Slot<String>,
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub priv_level: Slot<String>,
    #[serde(rename = "pvt_type", default, skip_serializing_if = "Slot::is_absent")]
    pub doc_type: Slot<String>,
    #[serde(rename = "pvt_signature_secret", default, skip_serializing_if = "Slot::is_absent")]
    pub signature_secret: Slot<String>,
    #[serde(rename = "pvt_deleted", default, skip_serializing_if = "Slot::is_absent")]
    pub deleted: Slot<bool>,
    #[serde(rename = "pvt_account_id", default, skip_serializing_if = "Slot::is_absent")]
    pub account_id: Slot<String>,
    #[serde(rename = "pvt_created", default, skip_serializing_if = "Slot::is_absent")]
    pub created: Slot<i64>,
    #[serde(rename = "pvt_modified", default, skip_serializing_if = "Slot::is_absent")]
    pub modified: Slot<i64>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl UserDoc {
    pub fn is_user(&self) -> bool {
        self.doc_type.as_deref() == Some("user")
    }

    pub fn is_admin(&self) -> bool {
        self.priv_level.as_deref() == Some("admin")
    }

    /// `kzd_users:full_name`: "First Last", or whichever exists.
    pub fn full_name(&self) -> Option<String> {
        match (self.first_name.text(), self.last_name.text()) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(x), None) | (None, Some(x)) => Some(x.to_owned()),
            (None, None) => None,
        }
    }

    /// A new user (for `bootstrap --demo`).
    pub fn new(account: &AccountId, now: i64) -> Self {
        let mut doc = UserDoc::default();
        doc.doc_type.set("user".into());
        doc.account_id.set(account.to_string());
        doc.created.set(now);
        doc.modified.set(now);
        doc
    }
}

/// An account's `whitelabel` document: its branding and the port authority it names.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Whitelabel {
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub company_name: Slot<String>,
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub port: Slot<WhitelabelPort>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WhitelabelPort {
    /// An account id in any spelling (`kzd_whitelabel:port_authority`).
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub authority: Slot<Value>,
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub support_email: Slot<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A `system_config` document: `default.<key>` holds each setting.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConfigDoc {
    #[serde(rename = "_id", default, skip_serializing_if = "Slot::is_absent")]
    pub id: Slot<String>,
    #[serde(rename = "_rev", default, skip_serializing_if = "Slot::is_absent")]
    pub rev: Slot<String>,
    #[serde(default, skip_serializing_if = "Slot::is_absent")]
    pub default: Slot<Map<String, Value>>,
    #[serde(rename = "pvt_type", default, skip_serializing_if = "Slot::is_absent")]
    pub doc_type: Slot<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ConfigDoc {
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.default.get()?.get(key)
    }

    /// Sets `default.<key>` (making the document a `config` one).
    pub fn set_default(&mut self, key: &str, value: Value) {
        self.default.get_or_default().insert(key.to_owned(), value);
        self.doc_type.set("config".into());
    }
}

/// The document in `system_auth` that holds the system signing key (as its attachment).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SystemKeyDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "pvt_type", default, skip_serializing_if = "Slot::is_absent")]
    pub doc_type: Slot<String>,
    #[serde(rename = "pvt_created", default, skip_serializing_if = "Slot::is_absent")]
    pub created: Slot<i64>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl SystemKeyDoc {
    pub fn new(kid: &str, now: i64) -> Self {
        let mut doc = SystemKeyDoc { id: kid.to_owned(), ..Default::default() };
        doc.doc_type.set("system_key".into());
        doc.created.set(now);
        doc
    }
}
