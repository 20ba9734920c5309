//! The port request document as Kazoo 4.3 stores and shows it (`kazoo-4.3-core.md`): the
//! public view, merges, transitions, the timeline, and the private fields set on every save.

use super::comments;
use super::phone_number;
use super::port_state::PortState;
use super::validation::{ValidationErrors, dotted_path};
use serde_json::{Map, Value, json};

/// Computed for the public view; never stored.
pub const VIEW_ONLY_KEYS: [&str; 7] = ["id", "created", "updated", "uploads", "port_state", "sent", "_read_only"];
/// Request values that steer an operation and must not end up in the document.
const REQUEST_ONLY_KEYS: [&str; 4] = ["reason", "accept_charges", "auth_token", "verb"];

pub fn is_private_key(key: &str) -> bool {
    key.starts_with('_') || key.starts_with("pvt_")
}

/// `kz_doc:public_fields`: top-level `_*` and `pvt_*` dropped, `id` set from `_id`.
pub fn public_fields(doc: &Value) -> Map<String, Value> {
    let mut out: Map<String, Value> = doc
        .as_object()
        .map(|o| o.iter().filter(|(k, _)| !is_private_key(k)).map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    if let Some(id) = doc.get("_id") {
        out.insert("id".into(), id.clone());
    }
    out
}

/// Attachment stubs without `digest`, `revpos` and `stub`.
pub fn uploads(doc: &Value) -> Value {
    let mut out = Map::new();
    if let Some(atts) = doc.get("_attachments").and_then(Value::as_object) {
        for (name, stub) in atts {
            let mut s = stub.as_object().cloned().unwrap_or_default();
            for k in ["digest", "revpos", "stub"] {
                s.remove(k);
            }
            out.insert(name.clone(), Value::Object(s));
        }
    }
    Value::Object(out)
}

fn read_only(doc: &Value) -> Option<Value> {
    let mut ro = Map::new();
    for (from, to) in [
        ("pvt_account_id", "account_id"),
        ("pvt_account_name", "account_name"),
        ("pvt_port_authority", "port_authority"),
        ("pvt_port_authority_name", "port_authority_name"),
        ("pvt_ported_numbers", "ported_numbers"),
        ("pvt_canceled_numbers", "canceled_numbers"),
        ("pvt_accepted_charges", "accepted_charges"),
    ] {
        if let Some(v) = doc.get(from).filter(|v| !v.is_null()) {
            ro.insert(to.into(), v.clone());
        }
    }
    (!ro.is_empty()).then_some(Value::Object(ro))
}

/// `knm_port_request:public_fields`: what every response shows of a request.
pub fn public_view(doc: &Value) -> Value {
    let mut view = public_fields(doc);
    view.insert("created".into(), doc.get("pvt_created").cloned().unwrap_or(Value::Null));
    view.insert("updated".into(), doc.get("pvt_modified").cloned().unwrap_or(Value::Null));
    view.insert("uploads".into(), uploads(doc));
    view.insert("port_state".into(), json!(PortState::of_doc(doc)));
    view.insert("sent".into(), json!(is_sent(doc)));
    view.retain(|_, v| !v.is_null());
    match read_only(doc) {
        Some(ro) => view.insert("_read_only".into(), ro),
        None => view.remove("_read_only"),
    };
    super::number_progress::render(&mut view, doc);
    Value::Object(view)
}

/// `pvt_sent`, tolerating Kazoo's string `"true"`.
pub fn is_sent(doc: &Value) -> bool {
    matches!(doc.get("pvt_sent"), Some(Value::Bool(true)))
        || doc.get("pvt_sent").and_then(Value::as_str) == Some("true")
}

/// The public view with private comments removed unless `show_private`.
pub fn view_for(doc: &Value, show_private: bool) -> Value {
    let mut view = public_view(doc);
    comments::filter_view(&mut view, show_private);
    view
}

/// What a client may store: its data without private keys, computed keys and request values.
pub fn client_fields(data: &Value) -> Map<String, Value> {
    data.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| {
                    !is_private_key(k)
                        && !VIEW_ONLY_KEYS.contains(&k.as_str())
                        && !REQUEST_ONLY_KEYS.contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// PATCH semantics: the patch wins, objects merge recursively, `null` removes a key.
pub fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => match target.get_mut(k) {
                Some(Value::Object(t)) => merge_patch(t, p),
                _ => {
                    let mut fresh = Map::new();
                    merge_patch(&mut fresh, p);
                    target.insert(k.clone(), Value::Object(fresh));
                }
            },
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

/// A stored document with its public part replaced: private keys (`_id`, `_rev`,
/// `_attachments`, `pvt_*`) always come from the stored document.
pub fn with_public(stored: &Value, public: Map<String, Value>) -> Value {
    let mut doc: Map<String, Value> = stored
        .as_object()
        .map(|o| o.iter().filter(|(k, _)| is_private_key(k)).map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    for (k, v) in public {
        doc.insert(k, v);
    }
    Value::Object(doc)
}

/// Normalises number keys to E.164; a key that cannot be normalised is an error under
/// `numbers.<key>`. Keys that normalise to the same number are merged.
pub fn normalize_numbers(numbers: &Map<String, Value>) -> Result<Map<String, Value>, ValidationErrors> {
    let mut out = Map::new();
    let mut errors = ValidationErrors::new();
    for (raw, meta) in numbers {
        match phone_number::to_e164(raw) {
            Some(e164) => {
                let entry = out.entry(e164).or_insert_with(|| json!({}));
                if let (Some(t), Some(p)) = (entry.as_object_mut(), meta.as_object()) {
                    merge_patch(t, p);
                }
            }
            None => errors.add(
                &dotted_path(&["numbers", raw]),
                "pattern",
                json!({ "message": "Number is not a valid E.164 phone number", "cause": raw, "value": raw }),
            ),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// The numbers of a request (keys of `numbers`).
pub fn numbers(doc: &Value) -> Vec<String> {
    doc.get("numbers").and_then(Value::as_object).map(|n| n.keys().cloned().collect()).unwrap_or_default()
}

/// Who made a change, for the transition's `authorization` object.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub account_id: String,
    pub account_name: Option<String>,
    pub user: Option<ActorUser>,
}

impl Actor {
    /// The name a reason is signed with: the user's full name, else the account's name.
    pub fn reason_author(&self) -> Option<String> {
        self.user.as_ref().and_then(|u| u.full_name.clone()).or_else(|| self.account_name.clone())
    }
}

#[derive(Debug, Clone, Default)]
pub struct ActorUser {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub full_name: Option<String>,
}

fn drop_nulls(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
        for x in o.values_mut() {
            drop_nulls(x);
        }
    }
}

/// A `pvt_transitions` entry (`knm_port_request:transition_metadata_jobj`).
pub fn transition_entry(from: Option<PortState>, to: PortState, actor: &Actor, reason: Option<&str>, at: i64) -> Value {
    let reason = reason.filter(|r| !r.is_empty());
    let user = actor
        .user
        .as_ref()
        .map(|u| json!({ "id": u.id, "first_name": u.first_name, "last_name": u.last_name, "full_name": u.full_name }));
    let mut entry = json!({
        "timestamp": at,
        "type": "transition",
        "reason": reason,
        "transition": { "new": to, "previous": from },
        "authorization": {
            "reason": reason,
            "account": { "id": actor.account_id, "name": actor.account_name },
            "user": user,
        },
    });
    drop_nulls(&mut entry);
    entry
}

pub fn transitions(doc: &Value) -> Vec<Value> {
    doc.get("pvt_transitions").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// Moves the document to `to`, prepending the transition (newest first).
pub fn record_transition(doc: &mut Value, to: PortState, entry: Value) {
    let mut list = transitions(doc);
    list.insert(0, entry);
    doc["pvt_port_state"] = json!(to);
    doc["pvt_transitions"] = Value::Array(list);
}

/// Visible comments and transitions, sorted by timestamp (stable).
pub fn timeline(doc: &Value, show_private: bool) -> Vec<Value> {
    let mut items = comments::visible(comments::of(doc), show_private);
    // transitions are stored newest first: oldest first keeps same-second entries in order
    items.extend(transitions(doc).into_iter().rev());
    items.extend(super::number_progress::timeline_entries(doc));
    items.extend(super::customer::signatures(doc).into_iter().map(|s| {
        json!({
            "timestamp": s.signed_at,
            "type": "signature",
            "signature": { "signer_name": s.signer_name, "link_id": s.link_id, "voided": s.voided },
        })
    }));
    items.sort_by_key(comments::timestamp);
    items
}

/// The newest transition into `state`, if any.
pub fn last_transition_to(doc: &Value, state: PortState) -> Option<Value> {
    // stored newest first
    transitions(doc).into_iter().find(|t| t.pointer("/transition/new").and_then(Value::as_str) == Some(state.as_str()))
}

/// Facts about the save that Kazoo records in private fields.
pub struct Stamp<'a> {
    pub now: i64,
    pub request_id: &'a str,
    pub auth_account_id: &'a str,
    pub auth_user_id: Option<&'a str>,
}

/// `crossbar_doc:update_pvt_parameters` plus `pvt_type`.
pub fn stamp(doc: &mut Value, s: &Stamp<'_>) {
    let Some(obj) = doc.as_object_mut() else { return };
    obj.entry("pvt_vsn").or_insert(json!("1"));
    obj.entry("pvt_account_db").or_insert(json!("port_requests"));
    obj.insert("pvt_type".into(), json!("port_request"));
    if !obj.contains_key("_rev") {
        obj.insert("pvt_created".into(), json!(s.now));
    }
    obj.insert("pvt_modified".into(), json!(s.now));
    obj.insert("pvt_request_id".into(), json!(s.request_id));
    obj.insert("pvt_is_authenticated".into(), json!(true));
    obj.insert("pvt_auth_account_id".into(), json!(s.auth_account_id));
    match s.auth_user_id {
        Some(u) => obj.insert("pvt_auth_user_id".into(), json!(u)),
        None => obj.remove("pvt_auth_user_id"),
    };
    match obj.get("name").and_then(Value::as_str) {
        Some(name) => {
            let alnum: String =
                name.to_lowercase().chars().filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit()).collect();
            obj.insert("pvt_alphanum_name".into(), json!(alnum));
        }
        None => {
            obj.remove("pvt_alphanum_name");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Value {
        json!({
            "_id": "abc", "_rev": "2-x", "name": "Porting 202.555.9000",
            "numbers": {"+12025559000": {}},
            "_attachments": {"file.pdf": {"content_type": "application/pdf", "length": 90931, "digest": "md5-x", "revpos": 2, "stub": true}},
            "pvt_port_state": "submitted", "pvt_created": 63630097779_i64, "pvt_modified": 63630120443_i64,
            "pvt_account_id": "acct", "pvt_account_name": "Acct", "pvt_port_authority": "auth", "pvt_port_authority_name": "Auth",
            "pvt_transitions": [], "pvt_type": "port_request"
        })
    }

    #[test]
    fn public_view_matches_kazoo() {
        let v = public_view(&stored());
        assert_eq!(
            v,
            json!({
                "id": "abc", "name": "Porting 202.555.9000", "numbers": {"+12025559000": {}},
                "created": 63630097779_i64, "updated": 63630120443_i64,
                "uploads": {"file.pdf": {"content_type": "application/pdf", "length": 90931}},
                "port_state": "submitted", "sent": false,
                "_read_only": {"account_id": "acct", "account_name": "Acct", "port_authority": "auth", "port_authority_name": "Auth"}
            })
        );
    }

    #[test]
    fn client_cannot_write_private_or_computed_keys() {
        let f =
            client_fields(&json!({"name": "x", "_rev": "1", "pvt_port_state": "completed", "port_state": "completed",
                                      "reason": "r", "id": "zzz", "custom": 1}));
        assert_eq!(Value::Object(f), json!({"name": "x", "custom": 1}));
    }

    #[test]
    fn patch_merges_deeply_and_null_removes() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "d": 1}).as_object().unwrap().clone();
        merge_patch(
            &mut t,
            json!({"a": {"c": null, "e": 3}, "d": null, "f": {"g": null, "h": 1}}).as_object().unwrap(),
        );
        assert_eq!(Value::Object(t), json!({"a": {"b": 1, "e": 3}, "f": {"h": 1}}));
    }

    #[test]
    fn post_keeps_private_fields() {
        let doc = with_public(&stored(), json!({"name": "new"}).as_object().unwrap().clone());
        assert_eq!(doc["name"], "new");
        assert!(doc.get("numbers").is_none());
        assert_eq!(doc["_rev"], "2-x");
        assert_eq!(doc["pvt_port_state"], "submitted");
    }

    #[test]
    fn numbers_are_normalised() {
        let n =
            normalize_numbers(json!({"2025550123": {"a": 1}, "+12025550123": {"b": 2}}).as_object().unwrap()).unwrap();
        assert_eq!(Value::Object(n), json!({"+12025550123": {"a": 1, "b": 2}}));
        let e = normalize_numbers(json!({"12": {}}).as_object().unwrap()).unwrap_err();
        assert!(e.to_value()["numbers.12"]["pattern"].is_object());
    }

    #[test]
    fn transition_entries() {
        let actor = Actor {
            account_id: "a".into(),
            account_name: Some("A".into()),
            user: Some(ActorUser {
                id: "u".into(),
                first_name: Some("John".into()),
                last_name: Some("Doe".into()),
                full_name: Some("John Doe".into()),
            }),
        };
        let e = transition_entry(Some(PortState::Unconfirmed), PortState::Submitted, &actor, Some("ok"), 5);
        assert_eq!(
            e,
            json!({"timestamp": 5, "type": "transition", "reason": "ok",
            "transition": {"new": "submitted", "previous": "unconfirmed"},
            "authorization": {"reason": "ok", "account": {"id": "a", "name": "A"},
                              "user": {"id": "u", "first_name": "John", "last_name": "Doe", "full_name": "John Doe"}}})
        );
        let created = transition_entry(
            None,
            PortState::Unconfirmed,
            &Actor { account_id: "a".into(), ..Default::default() },
            None,
            1,
        );
        assert_eq!(
            created,
            json!({"timestamp": 1, "type": "transition", "transition": {"new": "unconfirmed"},
                                   "authorization": {"account": {"id": "a"}}})
        );
        let mut doc = stored();
        record_transition(&mut doc, PortState::Pending, e);
        assert_eq!(doc["pvt_port_state"], "pending");
        assert_eq!(transitions(&doc).len(), 1);
        assert!(last_transition_to(&doc, PortState::Submitted).is_some());
    }

    #[test]
    fn timeline_sorts_and_filters() {
        let mut doc = stored();
        doc["comments"] =
            json!([{"timestamp": 3, "content": "pub"}, {"timestamp": 1, "content": "priv", "is_private": true}]);
        doc["pvt_transitions"] = json!([{"timestamp": 2, "type": "transition"}]);
        assert_eq!(timeline(&doc, false).iter().map(comments::timestamp).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(timeline(&doc, true).len(), 3);
    }

    #[test]
    fn stamping() {
        let mut doc = json!({"name": "My Port #1"});
        stamp(&mut doc, &Stamp { now: 10, request_id: "r", auth_account_id: "a", auth_user_id: Some("u") });
        assert_eq!(doc["pvt_created"], 10);
        assert_eq!(doc["pvt_alphanum_name"], "myport1");
        assert_eq!(doc["pvt_vsn"], "1");
        assert_eq!(doc["pvt_auth_user_id"], "u");
        doc["_rev"] = json!("1-a");
        stamp(&mut doc, &Stamp { now: 20, request_id: "r2", auth_account_id: "a", auth_user_id: None });
        assert_eq!(doc["pvt_created"], 10);
        assert_eq!(doc["pvt_modified"], 20);
        assert!(doc.get("pvt_auth_user_id").is_none());
    }
}
