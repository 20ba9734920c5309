//! The rules over a port request document (`documents::port_request`) that every change and
//! every answer uses: the public view Kazoo shows (`knm_port_request:public_fields`), what a
//! client may write and how a PATCH merges, numbers as clients write them, transition entries
//! and the timeline.

pub use super::documents::port_request::{Comment, Numbers, PortRequest, Stamp, Transition};

use super::documents::fields::{List, Slot};
use super::documents::port_request::{Move, StoredState, is_private_key};
use super::phone_number::PhoneNumber;
use super::port_state::PortState;
use super::validation::{ValidationErrors, dotted_path};
use serde_json::{Map, Value, json};

/// Computed for the public view; never stored.
pub const VIEW_ONLY_KEYS: [&str; 7] = ["id", "created", "updated", "uploads", "port_state", "sent", "_read_only"];
/// Request values that steer an operation and must not end up in the document.
const REQUEST_ONLY_KEYS: [&str; 5] = ["reason", "reason_code", "accept_charges", "auth_token", "verb"];

/// Attachment stubs without `digest`, `revpos` and `stub`.
pub fn uploads(doc: &PortRequest) -> Value {
    let mut out = Map::new();
    for (name, stub) in doc.attachments.get().into_iter().flatten() {
        let mut shown = stub.clone();
        shown.digest.clear();
        shown.revpos.clear();
        shown.stub.clear();
        shown.data.clear();
        out.insert(name.clone(), serde_json::to_value(shown).unwrap_or(Value::Null));
    }
    Value::Object(out)
}

/// A field as the view shows it: its stored value, `null` when absent.
fn shown<T: serde::Serialize>(slot: &Slot<T>) -> Value {
    match slot {
        Slot::Absent => Value::Null,
        other => serde_json::to_value(other).unwrap_or(Value::Null),
    }
}

/// `_read_only`: the private fields a client may see, by their public names.
fn read_only(doc: &PortRequest) -> Option<Value> {
    let ro: Map<String, Value> = [
        ("account_id", shown(&doc.account_id)),
        ("account_name", shown(&doc.account_name)),
        ("port_authority", shown(&doc.authority)),
        ("port_authority_name", shown(&doc.authority_name)),
        ("ported_numbers", shown(&doc.ported_numbers)),
        ("canceled_numbers", shown(&doc.canceled_numbers)),
        ("accepted_charges", shown(&doc.accepted_charges)),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_null())
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    (!ro.is_empty()).then_some(Value::Object(ro))
}

/// `knm_port_request:public_fields`: what every response shows of a request.
pub fn public_view(doc: &PortRequest) -> Value {
    let mut view = doc.public_fields();
    view.insert("id".into(), json!(doc.id));
    view.insert("created".into(), shown(&doc.created));
    view.insert("updated".into(), shown(&doc.modified));
    view.insert("uploads".into(), uploads(doc));
    view.insert("port_state".into(), doc.shown_state());
    view.insert("sent".into(), json!(doc.is_sent()));
    view.retain(|_, v| !v.is_null());
    match read_only(doc) {
        Some(ro) => view.insert("_read_only".into(), ro),
        None => view.remove("_read_only"),
    };
    super::number_progress::render(&mut view, doc);
    Value::Object(view)
}

/// The public view with private comments removed unless `show_private`.
pub fn view_for(doc: &PortRequest, show_private: bool) -> Value {
    let mut view = public_view(doc);
    filter_comments(&mut view, doc, show_private);
    view
}

/// The `comments` of a view as the caller may see them (legacy flags migrated). A comment that
/// cannot be read is shown to the port authority only, as it was stored.
pub fn filter_comments(view: &mut Value, doc: &PortRequest, show_private: bool) {
    let Some(list) = doc.comments.get() else { return };
    let mut shown: Vec<Value> = Vec::new();
    for entry in &list.0 {
        match entry {
            Slot::Set(c) if show_private || !c.is_private() => {
                shown.push(serde_json::to_value(c.clone().migrated()).unwrap_or(Value::Null))
            }
            Slot::Kept(v) if show_private => shown.push(v.clone()),
            _ => {}
        }
    }
    view["comments"] = Value::Array(shown);
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

/// The stored public part with the client's fields merged in (PATCH semantics).
pub fn patched_public(doc: &PortRequest, data: &Value) -> Map<String, Value> {
    let mut public = doc.public_fields();
    merge_patch(&mut public, &client_fields(data));
    public
}

/// A number as the client wrote it, and its E.164 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub raw: String,
    pub number: PhoneNumber,
}

/// Normalises number keys to E.164; a key that cannot be normalised is an error under
/// `numbers.<key>`. Keys that normalise to the same number are merged. Returns the numbers as
/// written, each with its E.164 form.
pub fn normalize_numbers(
    numbers: &Map<String, Value>,
) -> Result<(Map<String, Value>, Vec<Candidate>), ValidationErrors> {
    let mut out = Map::new();
    let mut candidates = Vec::new();
    let mut errors = ValidationErrors::new();
    for (raw, meta) in numbers {
        match PhoneNumber::parse(raw) {
            Ok(number) => {
                let entry = out.entry(number.to_string()).or_insert_with(|| json!({}));
                if let (Some(t), Some(p)) = (entry.as_object_mut(), meta.as_object()) {
                    merge_patch(t, p);
                }
                candidates.push(Candidate { raw: raw.clone(), number });
            }
            Err(_) => errors.add(
                &dotted_path(&["numbers", raw]),
                "pattern",
                json!({ "message": "Number is not a valid E.164 phone number", "cause": raw, "value": raw }),
            ),
        }
    }
    if errors.is_empty() { Ok((out, candidates)) } else { Err(errors) }
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

/// `authorization`: who moved it, and why.
pub fn authorization(actor: &Actor, reason: Option<&str>) -> Value {
    let user = actor
        .user
        .as_ref()
        .map(|u| json!({ "id": u.id, "first_name": u.first_name, "last_name": u.last_name, "full_name": u.full_name }));
    let mut auth = json!({
        "reason": reason,
        "account": { "id": actor.account_id, "name": actor.account_name },
        "user": user,
    });
    drop_nulls(&mut auth);
    auth
}

/// A `pvt_transitions` entry (`knm_port_request:transition_metadata_jobj`).
pub fn transition_entry(
    from: Option<PortState>,
    to: PortState,
    actor: &Actor,
    reason: Option<&str>,
    at: i64,
) -> Transition {
    let reason = reason.filter(|r| !r.is_empty());
    Transition {
        timestamp: Slot::Set(at),
        kind: Slot::Set("transition".into()),
        reason: Slot::from_option(reason.map(str::to_owned)),
        transition: Slot::Set(Move {
            to: Slot::Set(StoredState::Known(to)),
            previous: Slot::from_option(from.map(StoredState::Known)),
            rest: Map::new(),
        }),
        authorization: Slot::Set(authorization(actor, reason)),
        ..Transition::default()
    }
}

impl Transition {
    /// The state a request's move went to.
    pub fn to(&self) -> Option<PortState> {
        match self.transition.get()?.to.get()? {
            StoredState::Known(s) => Some(*s),
            StoredState::Unknown(_) => None,
        }
    }
}

/// Moves the document to `to`, recording the transition first in the list (newest first).
pub fn record_transition(doc: &mut PortRequest, to: PortState, entry: Transition) {
    doc.set_state(to);
    match &mut doc.transitions {
        Slot::Set(list) => list.insert(0, entry),
        other => {
            // an unreadable list is kept behind the new entry, not lost
            let kept = match other.take() {
                Slot::Kept(v) => vec![Slot::Kept(v)],
                _ => vec![],
            };
            let mut list = List(kept);
            list.insert(0, entry);
            *other = Slot::Set(list);
        }
    }
}

/// Visible comments and transitions, sorted by timestamp (stable).
pub fn timeline(doc: &PortRequest, show_private: bool) -> Vec<Value> {
    let mut items: Vec<(i64, Value)> = super::comments::visible(doc.comments(), show_private)
        .into_iter()
        .map(|c| (c.at(), serde_json::to_value(c).unwrap_or(Value::Null)))
        .collect();
    let entry = |t: &Transition| {
        let mut shown = t.clone();
        // the fingerprint is the service's bookkeeping; what changed is shown on the resubmission
        shown.fingerprint.clear();
        (t.timestamp.copied().unwrap_or(0), serde_json::to_value(shown).unwrap_or(Value::Null))
    };
    // transitions are stored newest first: oldest first keeps same-second entries in order
    items.extend(doc.transitions().rev().map(entry));
    items.extend(doc.number_transitions.entries().rev().map(entry));
    items.extend(doc.signature_list().map(|s| {
        let shown = json!({
            "timestamp": s.signed_at,
            "type": "signature",
            "signature": { "signer_name": s.signer_name, "link_id": s.link_id, "voided": s.voided },
        });
        (s.signed_at, shown)
    }));
    items.sort_by_key(|(at, _)| *at);
    items.into_iter().map(|(_, v)| v).collect()
}

/// The newest transition into `state`, if any.
pub fn last_transition_to(doc: &PortRequest, state: PortState) -> Option<&Transition> {
    // stored newest first
    doc.transitions().find(|t| t.to() == Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> PortRequest {
        PortRequest::stored_with(
            json!({
                "_id": "abc", "_rev": "2-x", "name": "Porting 202.555.9000",
                "numbers": {"+12025559000": {}},
                "_attachments": {"file.pdf": {"content_type": "application/pdf", "length": 90931, "digest": "md5-x", "revpos": 2, "stub": true}},
            }),
            json!({
                "port_state": "submitted", "created": 63630097779_i64, "modified": 63630120443_i64,
                "account_id": "0123456789abcdef0123456789abcdef", "account_name": "Acct",
                "port_authority": "fedcba9876543210fedcba9876543210", "port_authority_name": "Auth",
                "transitions": [], "type": "port_request"
            }),
        )
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
                "_read_only": {"account_id": "0123456789abcdef0123456789abcdef", "account_name": "Acct",
                               "port_authority": "fedcba9876543210fedcba9876543210", "port_authority_name": "Auth"}
            })
        );
    }

    #[test]
    fn client_cannot_write_private_or_computed_keys() {
        // a client sending the stored document back, private keys and all
        let mut sent = PortRequest::stored_with(json!({"_id": "zzz"}), json!({"port_state": "completed"})).to_value();
        for (k, v) in [
            ("name", json!("x")),
            ("_rev", json!("1")),
            ("port_state", json!("completed")),
            ("reason", json!("r")),
            ("id", json!("zzz")),
            ("custom", json!(1)),
        ] {
            sent[k] = v;
        }
        let f = client_fields(&sent);
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
    fn numbers_are_normalised() {
        let (n, candidates) =
            normalize_numbers(json!({"2025550123": {"a": 1}, "+12025550123": {"b": 2}}).as_object().unwrap()).unwrap();
        assert_eq!(Value::Object(n), json!({"+12025550123": {"a": 1, "b": 2}}));
        assert_eq!(candidates.len(), 2);
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
            serde_json::to_value(&e).unwrap(),
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
            serde_json::to_value(&created).unwrap(),
            json!({"timestamp": 1, "type": "transition", "transition": {"new": "unconfirmed"},
                                   "authorization": {"account": {"id": "a"}}})
        );
        let mut doc = stored();
        record_transition(&mut doc, PortState::Pending, e);
        assert_eq!(doc.state(), Ok(PortState::Pending));
        assert_eq!(doc.transitions().count(), 1);
        assert!(last_transition_to(&doc, PortState::Submitted).is_some());
    }

    #[test]
    fn timeline_sorts_and_filters() {
        let mut doc = stored();
        doc.comments = serde_json::from_value(json!([{"timestamp": 3, "content": "pub"},
                                                      {"timestamp": 1, "content": "priv", "is_private": true}]))
        .unwrap();
        doc.transitions = serde_json::from_value(json!([{"timestamp": 2, "type": "transition"}])).unwrap();
        let at = |t: &Value| t["timestamp"].as_i64().unwrap();
        assert_eq!(timeline(&doc, false).iter().map(at).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(timeline(&doc, true).len(), 3);
    }

    #[test]
    fn unreadable_comments_are_the_authoritys_only() {
        let mut v = stored().to_value();
        v["comments"] = json!([{"timestamp": 3, "content": "pub"}, "garbage"]);
        let doc = PortRequest::from_stored(v).unwrap();
        assert_eq!(view_for(&doc, false)["comments"], json!([{"timestamp": 3, "content": "pub"}]));
        assert_eq!(view_for(&doc, true)["comments"].as_array().unwrap().len(), 2);
    }
}
