//! The Kazoo documents around a port request that the service reads: the account (from its own
//! database), its users, its `whitelabel`, and the `system_config` documents; and the minimum of
//! them `bootstrap --demo` writes.

use super::fields::{Slot, stored};
use crate::domain::ids::AccountId;
use serde_json::{Map, Value};

stored! {
    /// An account document (its own database holds it, `accounts` a copy).
    pub struct AccountDoc [] {
        "_id" id: String, "_rev" rev: String,
        "name" name: String, "realm" realm: String, "timezone" timezone: String,
        /// Where submitted requests are pushed (`knm_port_request:send_submitted_requests`).
        "submitted_port_requests_url" submitted_port_requests_url: String,
        "pvt_type" doc_type: String,
        /// Ancestors, root (master) first.
        "pvt_tree" tree: Vec<Value>,
        "pvt_superduper_admin" superduper_admin: bool, "pvt_reseller" reseller: bool, "pvt_reseller_id" reseller_id: String,
        "pvt_signature_secret" signature_secret: String,
        /// The Fone Dynamics API's password for this account.
        "pvt_api_key" api_key: String,
        "pvt_deleted" deleted: bool, "pvt_enabled" enabled: bool,
        "pvt_account_id" account_id: String, "pvt_account_db" account_db: String,
        "pvt_created" created: i64, "pvt_modified" modified: i64,
    }
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

stored! {
    /// A user document (in the account's database).
    pub struct UserDoc [] {
        "_id" id: String, "_rev" rev: String, "pvt_type" doc_type: String,
        "username" username: String, "first_name" first_name: String, "last_name" last_name: String,
        "email" email: String, "priv_level" priv_level: String,
        "pvt_signature_secret" signature_secret: String, "pvt_deleted" deleted: bool,
        "pvt_account_id" account_id: String, "pvt_created" created: i64, "pvt_modified" modified: i64,
    }
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

stored! {
    /// An account's `whitelabel` document: its branding, and the port authority it names with
    /// the address port mails go to (`port.authority`, an account id in any spelling, and
    /// `port.support_email`).
    pub struct Whitelabel [] { "company_name" company_name: String, "port" port: WhitelabelPort }
    pub struct WhitelabelPort [] { "authority" authority: Value, "support_email" support_email: String }
}

stored! {
    /// A `system_config` document: `default.<key>` holds each setting.
    pub struct ConfigDoc [] {
        "_id" id: String, "_rev" rev: String, "default" default: Map<String, Value>, "pvt_type" doc_type: String,
    }
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

stored! {
    /// The document in `system_auth` that holds the system signing key (as its attachment).
    pub struct SystemKeyDoc ["_id" id: String] {
        "_rev" rev: String, "pvt_type" doc_type: String, "pvt_created" created: i64,
    }
}

impl SystemKeyDoc {
    pub fn new(kid: &str, now: i64) -> Self {
        let mut doc = SystemKeyDoc {
            id: kid.to_owned(),
            rev: Slot::Absent,
            doc_type: Slot::Absent,
            created: Slot::Absent,
            rest: Map::new(),
        };
        doc.doc_type.set("system_key".into());
        doc.created.set(now);
        doc
    }
}
