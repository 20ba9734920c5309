//! The port request document, as Kazoo 4.3 stores it in `port_requests`
//! (`docs/api.md`, "The stored document"), with what this service adds (events, per-number
//! progress, customer links and signatures). Every key is spelled here once; the rules read and
//! change typed fields, and whatever the service does not know is kept in `rest` and written
//! back as it was.

use super::fields::{Flag, List, Slot, Unreadable, stored};
use crate::domain::customer::{Link, Signature};
use crate::domain::desk::rejection_codes::RejectionCode;
use crate::domain::events::Event;
use crate::domain::ids::{AccountId, PortRequestId};
use crate::domain::phone_number::PhoneNumber;
use crate::domain::port_state::PortState;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;

/// `pvt_type` of a port request.
pub const TYPE: &str = "port_request";

/// Numbers and their metadata (`numbers`, and where numbers go once they leave a request).
pub type Numbers = BTreeMap<PhoneNumber, NumberEntry>;

stored! {
    /// A port request as stored: Kazoo's private fields, then this service's, then the public
    /// fields the rules read (a client's other fields are in `rest`).
    pub struct PortRequest ["_id" id: PortRequestId] {
        "_rev" rev: String, "_attachments" attachments: BTreeMap<String, Attachment>,
        "pvt_type" doc_type: String, "pvt_vsn" vsn: String, "pvt_account_db" account_db: String,
        "pvt_port_state" port_state: StoredState,
        "pvt_account_id" account_id: AccountId, "pvt_account_name" account_name: String,
        "pvt_port_authority" authority: AccountId, "pvt_port_authority_name" authority_name: String,
        /// The owner's ancestors, root first.
        "pvt_tree" tree: Vec<AccountId>,
        "pvt_created" created: i64, "pvt_modified" modified: i64,
        "pvt_request_id" request_id: String, "pvt_is_authenticated" is_authenticated: bool,
        "pvt_auth_account_id" auth_account_id: String, "pvt_auth_user_id" auth_user_id: String,
        "pvt_alphanum_name" alphanum_name: String,
        /// Kazoo 4.3 writes the string `"true"`, this service `true`.
        "pvt_sent" sent: Flag, "pvt_deleted" deleted: bool,
        /// Newest first.
        "pvt_transitions" transitions: List<Transition>,
        "pvt_ported_numbers" ported_numbers: Numbers, "pvt_accepted_charges" accepted_charges: AcceptedCharges,
        // this service's
        "pvt_canceled_numbers" canceled_numbers: Numbers,
        "pvt_number_progress" number_progress: BTreeMap<PhoneNumber, NumberProgress>,
        /// Newest first.
        "pvt_number_transitions" number_transitions: List<Transition>,
        "pvt_events" events: List<Event>, "pvt_customer_links" customer_links: List<Link>,
        /// Newest last.
        "pvt_signatures" signatures: List<Signature>,
        // the public fields the rules read
        "name" name: String, "numbers" numbers: Numbers, "comments" comments: List<Comment>, "bill" bill: Bill,
        "notifications" notifications: Notifications,
        "schedule_on" schedule_on: ScheduleOn, "scheduled_date" scheduled_date: i64, "transfer_date" transfer_date: i64,
        "signee_name" signee_name: String, "signing_date" signing_date: i64,
        "winning_carrier" winning_carrier: String, "reference_number" reference_number: String,
        /// The fields of a request made through the Fone Dynamics API, as the client sent them.
        "fone_dynamics" fone_dynamics: Map<String, Value>,
    }
}

/// `pvt_port_state`: one of the seven states, or a word this service does not know (kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredState {
    Known(PortState),
    Unknown(String),
}

impl Serialize for StoredState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StoredState::Known(state) => s.serialize_str(state.as_str()),
            StoredState::Unknown(word) => s.serialize_str(word),
        }
    }
}

impl<'de> Deserialize<'de> for StoredState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        Ok(PortState::parse(&word).map_or(StoredState::Unknown(word), StoredState::Known))
    }
}

impl From<PortState> for StoredState {
    fn from(s: PortState) -> Self {
        StoredState::Known(s)
    }
}

stored! {
    /// An attachment stub (or, in a document about to be saved, an attachment sent inline:
    /// `data` is the content in base64).
    pub struct Attachment [] {
        "content_type" content_type: String, "length" length: u64,
        "digest" digest: String, "revpos" revpos: u64, "stub" stub: bool, "data" data: String,
    }
    /// A `pvt_transitions` entry (`knm_port_request:transition_metadata_jobj`), or a number's
    /// own move in the number transitions (type `number_progress`, with `number` and
    /// `progress`). Who moved it is its `authorization`: `{reason, account {id, name}, user {id,
    /// first_name, last_name, full_name}}`.
    pub struct Transition [] {
        "timestamp" timestamp: i64, "type" kind: String, "reason" reason: String, "transition" transition: Move,
        "number" number: PhoneNumber, "progress" progress: Move,
        "authorization" authorization: Value,
        // this service's: a rejection's code, the catalogue entry it named, and a fingerprint
        // of the request's fields (`domain::desk::fingerprint`); a resubmission's fields
        // changed since that rejection
        "reason_code" reason_code: String, "rejection" rejection: RejectionCode,
        "fingerprint" fingerprint: Map<String, Value>,
        "changed_since_rejection" changed_since_rejection: Vec<String>,
    }
    /// `{"new": state, "previous": state}`.
    pub struct Move [] { "new" to: StoredState, "previous" previous: StoredState }
    /// A comment (Kazoo's `kzd_comment`); `superduper_comment` is the legacy name of
    /// `is_private` (it wins when present).
    pub struct Comment [] {
        "timestamp" timestamp: i64, "content" content: String, "author" author: String,
        "is_private" is_private: Flag, "superduper_comment" superduper_comment: Flag, "action_required" action_required: Flag,
        "account_id" account_id: String, "user_id" user_id: String,
    }
    /// The losing carrier's bill: who the numbers belong to there.
    pub struct Bill [] {
        "carrier" carrier: String, "name" name: String,
        "street_number" street_number: String, "street_pre_dir" street_pre_dir: String,
        "street_address" street_address: String, "street_type" street_type: String,
        "street_post_dir" street_post_dir: String,
        "locality" locality: String, "region" region: String, "postal_code" postal_code: String,
        "account_number" account_number: String, "pin" pin: String, "btn" btn: String,
    }
    /// Where the request's own notifications go: mails to `email.send_to` (one address or
    /// several), events to `webhook.url`.
    pub struct Notifications [] { "email" email: EmailNotifications, "webhook" webhook: WebhookNotifications }
    pub struct EmailNotifications [] { "send_to" send_to: SendTo }
    pub struct WebhookNotifications [] { "url" url: String }
    /// `schedule_on {date_time "YYYY-MM-DD HH:MM", timezone}`.
    pub struct ScheduleOn [] { "date_time" date_time: String, "timezone" timezone: String }
    /// A number's metadata (the client's own keys, e.g. `used_by`).
    pub struct NumberEntry [] { "used_by" used_by: String }
    /// Where a number that moved on its own is (`domain::number_progress`).
    pub struct NumberProgress [] {
        "state" state: StoredState, "previous" previous: StoredState, "reason" reason: String,
        "timestamp" timestamp: i64, "authorization" authorization: Value,
    }
    /// The port charge a submission accepted (`accept_charges=true`).
    pub struct AcceptedCharges [] { "activation_charges" activation_charges: Number }
}

/// One address or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SendTo {
    One(String),
    Many(Vec<String>),
}

/// Keys that are never public: CouchDB's (`_*`) and the private ones (`pvt_*`).
pub fn is_private_key(key: &str) -> bool {
    key.starts_with('_') || key.starts_with("pvt_")
}

static NO_NUMBERS: Numbers = BTreeMap::new();

impl PortRequest {
    /// A new, empty request with this id (fields are set by whoever creates it).
    pub fn new(id: PortRequestId) -> Self {
        serde_json::from_value(serde_json::json!({ "_id": id })).expect("an id alone is a port request")
    }

    /// Reads a stored document; `None` for anything that is not a port request document (no
    /// string `_id`).
    pub fn from_stored(doc: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(doc)
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a port request serialises")
    }

    /// Is it a port request (`pvt_type` absent or `port_request`)?
    pub fn is_port_request(&self) -> bool {
        match &self.doc_type {
            Slot::Absent => true,
            Slot::Set(t) => t == TYPE,
            Slot::Kept(_) => false,
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.is_true()
    }

    /// The state: `pvt_port_state`, absent meaning unconfirmed (Kazoo's default); a word this
    /// service does not know is an error naming it.
    pub fn state(&self) -> Result<PortState, Unreadable> {
        match &self.port_state {
            Slot::Absent => Ok(PortState::Unconfirmed),
            Slot::Set(StoredState::Known(s)) => Ok(*s),
            Slot::Set(StoredState::Unknown(w)) => {
                Err(Unreadable { field: "port_state", stored: Value::String(w.clone()) })
            }
            Slot::Kept(v) => Err(Unreadable { field: "port_state", stored: v.clone() }),
        }
    }

    /// The state as the public view shows it: the stored word (known or not), unconfirmed
    /// when absent.
    pub fn shown_state(&self) -> Value {
        match &self.port_state {
            Slot::Absent => Value::String(PortState::Unconfirmed.as_str().into()),
            Slot::Set(s) => serde_json::to_value(s).expect("a state serialises"),
            Slot::Kept(v) => v.clone(),
        }
    }

    pub fn set_state(&mut self, state: PortState) {
        self.port_state.set(StoredState::Known(state));
    }

    pub fn owner(&self) -> Option<&AccountId> {
        self.account_id.get()
    }

    pub fn tree(&self) -> &[AccountId] {
        self.tree.get().map_or(&[], Vec::as_slice)
    }

    /// Owned by `account`, or by one of its descendants?
    pub fn is_under(&self, account: &AccountId) -> bool {
        self.owner() == Some(account) || self.tree().contains(account)
    }

    /// The numbers on the request (none when absent); stored keys that are not E.164 make it
    /// unreadable.
    pub fn numbers(&self) -> Result<&Numbers, Unreadable> {
        Ok(self.numbers.read("numbers")?.unwrap_or(&NO_NUMBERS))
    }

    /// The numbers, when they can be read (for showing a request, where an unreadable list
    /// shows as none: its stored value is in the public view as it is).
    pub fn numbers_shown(&self) -> &Numbers {
        self.numbers.get().unwrap_or(&NO_NUMBERS)
    }

    pub fn ported(&self) -> &Numbers {
        self.ported_numbers.get().unwrap_or(&NO_NUMBERS)
    }

    pub fn canceled(&self) -> &Numbers {
        self.canceled_numbers.get().unwrap_or(&NO_NUMBERS)
    }

    /// Does the request hold `number`: open, not deleted, the number on it?
    pub fn holds(&self, number: &PhoneNumber) -> bool {
        !self.is_deleted()
            && self.state().is_ok_and(PortState::is_open)
            && self.numbers.get().is_some_and(|n| n.contains_key(number))
    }

    /// The numbers the request holds open (none once closed or deleted).
    pub fn held_numbers(&self) -> Vec<PhoneNumber> {
        if self.is_deleted() || !self.state().is_ok_and(PortState::is_open) {
            return Vec::new();
        }
        self.numbers_shown().keys().cloned().collect()
    }

    pub fn comments(&self) -> impl DoubleEndedIterator<Item = &Comment> {
        self.comments.entries()
    }

    /// Newest first.
    pub fn transitions(&self) -> impl DoubleEndedIterator<Item = &Transition> {
        self.transitions.entries()
    }

    pub fn events(&self) -> impl DoubleEndedIterator<Item = &Event> {
        self.events.entries()
    }

    pub fn links(&self) -> impl DoubleEndedIterator<Item = &Link> {
        self.customer_links.entries()
    }

    pub fn signature_list(&self) -> impl DoubleEndedIterator<Item = &Signature> {
        self.signatures.entries()
    }

    pub fn webhook_url(&self) -> Option<&str> {
        self.notifications.get()?.webhook.get()?.url.as_deref()
    }

    /// `notifications.email.send_to`, one address or several.
    pub fn send_to(&self) -> Vec<String> {
        match self.notifications.get().and_then(|n| n.email.get()).and_then(|e| e.send_to.get()) {
            Some(SendTo::One(a)) => vec![a.clone()],
            Some(SendTo::Many(list)) => list.clone(),
            None => Vec::new(),
        }
    }

    /// Pushed to the carrier (`pvt_sent`, Kazoo's string `"true"` too).
    pub fn is_sent(&self) -> bool {
        self.sent.is_true()
    }

    pub fn bill(&self) -> Option<&Bill> {
        self.bill.get()
    }

    pub fn carrier(&self) -> Option<&str> {
        self.bill().and_then(|b| b.carrier.text())
    }

    pub fn rev(&self) -> Option<&str> {
        self.rev.as_deref()
    }

    /// The names of the stored attachments.
    pub fn attachment_names(&self) -> Vec<String> {
        self.attachments.get().map(|a| a.keys().cloned().collect()).unwrap_or_default()
    }

    pub fn attachment(&self, name: &str) -> Option<&Attachment> {
        self.attachments.get()?.get(name)
    }

    /// The public part: every key but `_*` and `pvt_*` (`kz_doc:public_fields`, without `id`).
    pub fn public_fields(&self) -> Map<String, Value> {
        match self.to_value() {
            Value::Object(all) => all.into_iter().filter(|(k, _)| !is_private_key(k)).collect(),
            _ => Map::new(),
        }
    }

    /// The same request with its public part replaced by `public` (private keys and CouchDB's
    /// stay as stored).
    pub fn with_public(&self, public: Map<String, Value>) -> PortRequest {
        let mut all = match self.to_value() {
            Value::Object(all) => all,
            _ => Map::new(),
        };
        all.retain(|k, _| is_private_key(k));
        all.extend(public.into_iter().filter(|(k, _)| !is_private_key(k)));
        serde_json::from_value(Value::Object(all)).expect("a port request with another public part is one")
    }

    /// Drops what a read with `conflicts`/`revs` adds, before the document is written back.
    pub fn without_read_extras(mut self) -> Self {
        self.rest.remove("_conflicts");
        self.rest.remove("_revisions");
        self.rest.remove("_deleted_conflicts");
        self
    }

    /// The revisions CouchDB reported in conflict with this one (read with `conflicts=true`).
    pub fn conflicts(&self) -> Vec<String> {
        self.rest
            .get("_conflicts")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The body of the carrier push (`knm_port_request:send_request`): the document with some
    /// keys removed and some renamed. Private comments and the events (which hold them) never
    /// leave the service.
    pub fn carrier_push_fields(&self) -> Map<String, Value> {
        let mut out = match self.to_value() {
            Value::Object(all) => all,
            _ => Map::new(),
        };
        for k in [
            "_rev",
            "ui_metadata",
            "_attachments",
            "pvt_request_id",
            "pvt_type",
            "pvt_vsn",
            "pvt_account_db",
            "pvt_events",
        ] {
            out.remove(k);
        }
        for (from, to) in [
            ("_id", "id"),
            ("pvt_port_state", "port_state"),
            ("pvt_account_id", "account_id"),
            ("pvt_created", "created"),
            ("pvt_modified", "modified"),
        ] {
            if let Some(v) = out.remove(from) {
                out.insert(to.into(), v);
            }
        }
        out
    }
}

/// Facts about a save that Kazoo records in private fields.
pub struct Stamp<'a> {
    pub now: i64,
    pub request_id: &'a str,
    pub auth_account_id: &'a str,
    pub auth_user_id: Option<&'a str>,
}

impl PortRequest {
    /// `crossbar_doc:update_pvt_parameters` plus `pvt_type`.
    pub fn stamp(&mut self, s: &Stamp<'_>) {
        if self.vsn.is_absent() {
            self.vsn.set("1".into());
        }
        if self.account_db.is_absent() {
            self.account_db.set("port_requests".into());
        }
        self.doc_type.set(TYPE.into());
        if self.rev.is_absent() {
            self.created.set(s.now);
        }
        self.modified.set(s.now);
        self.request_id.set(s.request_id.to_owned());
        self.is_authenticated.set(true);
        self.auth_account_id.set(s.auth_account_id.to_owned());
        self.auth_user_id = Slot::from_option(s.auth_user_id.map(str::to_owned));
        self.alphanum_name = Slot::from_option(self.name.get().map(|name| {
            name.to_lowercase().chars().filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit()).collect()
        }));
    }
}

#[cfg(test)]
impl PortRequest {
    /// A request for the rules' tests: `fields` as stored, with the private fields of
    /// `private` named without their prefix (`{"port_state": "pending"}`).
    pub fn stored_with(fields: Value, private: Value) -> Self {
        let mut all = fields.as_object().cloned().unwrap_or_default();
        for (k, v) in private.as_object().into_iter().flatten() {
            all.insert(format!("pvt_{k}"), v.clone());
        }
        all.entry("_id").or_insert_with(|| Value::String("r".into()));
        Self::from_stored(Value::Object(all)).expect("a test request reads")
    }

    /// A private field as stored, named without its prefix.
    pub fn stored_private(&self, key: &str) -> Value {
        self.to_value().get(format!("pvt_{key}")).cloned().unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> Value {
        json!({
            "_id": "abc", "_rev": "2-x", "name": "Porting 202.555.9000",
            "numbers": {"+12025559000": {}},
            "_attachments": {"file.pdf": {"content_type": "application/pdf", "length": 90931, "digest": "md5-x", "revpos": 2, "stub": true}},
            "pvt_port_state": "submitted", "pvt_created": 63630097779_i64, "pvt_modified": 63630120443_i64,
            "pvt_account_id": "0123456789abcdef0123456789abcdef", "pvt_account_name": "Acct",
            "pvt_transitions": [], "pvt_type": "port_request", "ui_metadata": {"origin": "monster"}
        })
    }

    #[test]
    fn a_stored_request_reads_and_writes_back_unchanged() {
        let doc = PortRequest::from_stored(stored()).unwrap();
        assert_eq!(doc.state(), Ok(PortState::Submitted));
        assert_eq!(doc.numbers().unwrap().len(), 1);
        assert_eq!(doc.rest["ui_metadata"], json!({"origin": "monster"}));
        assert_eq!(doc.to_value(), stored());
    }

    #[test]
    fn an_unknown_state_is_kept_and_refused() {
        let mut v = stored();
        v["pvt_port_state"] = json!("on_hold");
        let doc = PortRequest::from_stored(v.clone()).unwrap();
        assert_eq!(doc.state().unwrap_err().field, "port_state");
        assert_eq!(doc.shown_state(), json!("on_hold"));
        assert_eq!(doc.to_value(), v);
        assert_eq!(PortRequest::from_stored(json!({"_id": "a"})).unwrap().state(), Ok(PortState::Unconfirmed));
    }

    #[test]
    fn numbers_that_are_not_e164_are_kept_and_refused() {
        let mut v = stored();
        v["numbers"] = json!({"12345": {}});
        let doc = PortRequest::from_stored(v.clone()).unwrap();
        assert!(doc.numbers().is_err());
        assert!(doc.held_numbers().is_empty());
        assert_eq!(doc.to_value(), v);
    }

    #[test]
    fn the_public_part_is_replaced_and_private_keys_stay() {
        let doc = PortRequest::from_stored(stored()).unwrap();
        let public = doc.public_fields();
        assert!(public.contains_key("name") && public.contains_key("ui_metadata"));
        assert!(!public.keys().any(|k| is_private_key(k)));
        let replaced =
            doc.with_public(json!({"name": "new", "pvt_port_state": "completed"}).as_object().unwrap().clone());
        assert_eq!(replaced.name.as_deref(), Some("new"));
        assert!(replaced.numbers.is_absent());
        assert_eq!(replaced.rev(), Some("2-x"));
        assert_eq!(replaced.state(), Ok(PortState::Submitted), "a client never sets a private key");
    }

    #[test]
    fn the_carrier_push_renames_and_hides() {
        let doc = PortRequest::from_stored(
            json!({"_id": "p", "_rev": "1", "pvt_port_state": "submitted", "pvt_account_id": "a",
            "pvt_created": 1, "pvt_modified": 2, "pvt_type": "port_request", "pvt_tree": ["m"], "Some-Key": null,
            "comments": [{"content": "pub"}, {"content": "secret", "is_private": true}],
            "pvt_events": [{"type": "comment", "comment": {"content": "secret", "is_private": true}}]}),
        )
        .unwrap();
        let body = crate::domain::notifications::carrier_push_body(&doc);
        assert_eq!(
            body,
            json!({"id": "p", "port_state": "submitted", "account_id": "a", "created": 1, "modified": 2,
            "pvt_tree": ["m"], "comments": [{"content": "pub"}]})
        );
    }

    #[test]
    fn stamping() {
        let mut doc = PortRequest::new(PortRequestId::new_random());
        doc.name.set("My Port #1".into());
        doc.stamp(&Stamp { now: 10, request_id: "r", auth_account_id: "a", auth_user_id: Some("u") });
        assert_eq!(doc.created.copied(), Some(10));
        assert_eq!(doc.alphanum_name.as_deref(), Some("myport1"));
        assert_eq!(doc.vsn.as_deref(), Some("1"));
        assert_eq!(doc.auth_user_id.as_deref(), Some("u"));
        doc.rev.set("1-a".into());
        doc.stamp(&Stamp { now: 20, request_id: "r2", auth_account_id: "a", auth_user_id: None });
        assert_eq!(doc.created.copied(), Some(10));
        assert_eq!(doc.modified.copied(), Some(20));
        assert!(doc.auth_user_id.is_absent());
    }
}
