//! Kazoo's notification documents: `notification.<template>` (teletype's settings for one
//! mail, its bodies as attachments), in an account's database or in `system_config`; and the
//! `pdf.loa` document whose attachments override the LOA.

use super::fields::{Flag, Slot, stored};
use serde_json::{Map, Value};

/// The attachment holding a notification's HTML body.
pub const HTML_BODY: &str = "template.text/html";
/// The attachment holding a notification's plain text body.
pub const TEXT_BODY: &str = "template.text/plain";

stored! {
    /// `notification.<template>`: written by teletype in `system_config`, and by Kazoo's
    /// notifications API (Monster UI's Branding app) in an account's database.
    pub struct NotificationDoc [] {
        "_id" id: String, "_rev" rev: String,
        /// Unset is enabled (`kz_term:is_true` otherwise).
        "enabled" enabled: Flag,
        "subject" subject: String, "from" from: String, "reply_to" reply_to: String,
        "to" to: Recipients, "cc" cc: Recipients, "bcc" bcc: Recipients,
        "_attachments" attachments: Map<String, Value>,
        "pvt_type" doc_type: String, "pvt_deleted" deleted: bool,
    }
    /// `{"type": "original" | "specified" | "admins", "email_addresses": [...]}`.
    pub struct Recipients [] { "type" kind: String, "email_addresses" email_addresses: Vec<String> }
}

impl NotificationDoc {
    pub fn id_for(template: &str) -> String {
        format!("notification.{template}")
    }

    /// Kazoo's `enabled`: unset (or of no type Kazoo reads) is yes, else `true` or `"true"`.
    pub fn is_enabled(&self) -> bool {
        self.enabled.get().is_none_or(Flag::is_true)
    }

    pub fn has_attachment(&self, name: &str) -> bool {
        self.attachments.get().is_some_and(|a| a.contains_key(name))
    }

    /// Does it hold a body (Kazoo reads the bodies from the first document that does)?
    pub fn has_bodies(&self) -> bool {
        self.has_attachment(HTML_BODY) || self.has_attachment(TEXT_BODY)
    }
}

impl Recipients {
    pub fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }

    pub fn addresses(&self) -> Vec<String> {
        self.email_addresses.get().map(|a| a.iter().filter(|e| e.contains('@')).cloned().collect()).unwrap_or_default()
    }
}

stored! {
    /// `pdf.loa`: the LOA's overrides as attachments (`<carrier>.tmpl`, `loa.tmpl`, or ours in
    /// `.hbs`), in the reseller's database or `system_config`.
    pub struct PdfDoc [] {
        "_id" id: String, "_rev" rev: String, "_attachments" attachments: Map<String, Value>,
    }
}

impl PdfDoc {
    pub const LOA: &str = "pdf.loa";

    pub fn has_attachment(&self, name: &str) -> bool {
        self.attachments.get().is_some_and(|a| a.contains_key(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_read_as_kazoo_writes_them() {
        let doc: NotificationDoc = serde_json::from_value(json!({
            "_id": "notification.port_pending", "enabled": false, "subject": "S",
            "cc": {"type": "specified", "email_addresses": ["a@b.c", "not an address"]},
            "_attachments": {"template.text/html": {"stub": true}}, "macros": {"x": 1},
        }))
        .unwrap();
        assert!(!doc.is_enabled());
        assert!(doc.has_bodies());
        assert_eq!(doc.cc.get().unwrap().addresses(), vec!["a@b.c".to_owned()]);
        assert!(doc.to.is_absent());
        assert_eq!(serde_json::to_value(&doc).unwrap()["macros"], json!({"x": 1}));
        let text: NotificationDoc = serde_json::from_value(json!({"enabled": "false"})).unwrap();
        assert!(!text.is_enabled(), "Kazoo's string booleans");
        let odd: NotificationDoc = serde_json::from_value(json!({"enabled": 3})).unwrap();
        assert!(odd.is_enabled(), "an unreadable enabled is Kazoo's default");
    }
}
