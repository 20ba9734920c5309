//! Per-number progress and partial ports: each number of a submitted request can move on its
//! own, by the request's state rules, with a reason.
//!
//! - Stored in `pvt_number_progress` (`{number: {state, previous, reason, timestamp,
//!   authorization}}`), one entry per number that moved on its own, and in
//!   `pvt_number_transitions` (newest first), which the timeline shows as `number_progress`
//!   entries. A number without an entry is where the request is.
//! - Shown in each entry of `numbers` (and `_read_only.ported_numbers`, `.canceled_numbers`) under
//!   `_progress`: keys starting with `_` in a numbers entry are the service's, so they never
//!   collide with a client's own metadata (Kazoo's examples use `state` for a US state), and
//!   what a client sends under them is dropped.
//! - A completed number leaves `numbers` for `pvt_ported_numbers` (its number documents are
//!   written as a completion writes them); a canceled one for `pvt_canceled_numbers`: either way
//!   the request no longer holds it. A rejected one stays, held, as a rejected request holds
//!   its numbers.
//! - When no number is left on the request, the request follows: completed when any number was
//!   ported, canceled otherwise. A move of the whole request moves every number still on it (their
//!   own progress is cleared).

use super::port_state::{PortState, Role, TransitionError, TransitionPolicy};
use serde_json::{Map, Value, json};

/// The key of a number's progress in the entries of the public view.
pub const PROGRESS_KEY: &str = "_progress";
const STORED: &str = "pvt_number_progress";
const TRANSITIONS: &str = "pvt_number_transitions";
const PORTED: &str = "pvt_ported_numbers";
const CANCELED: &str = "pvt_canceled_numbers";

/// Why a number cannot be moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberMoveError {
    /// The number is not on the request (never was, or it left: ported or canceled).
    NotOnRequest,
    /// Numbers move on their own only once the request is submitted and until it closes.
    RequestNotInProgress(PortState),
    Transition(TransitionError),
}

fn progress_of<'a>(doc: &'a Value, number: &str) -> Option<&'a Value> {
    doc.get(STORED).and_then(|p| p.get(number))
}

/// Where a number is: its own state, else the request's.
pub fn effective_state(doc: &Value, number: &str) -> PortState {
    progress_of(doc, number)
        .and_then(|p| p.get("state"))
        .and_then(Value::as_str)
        .and_then(PortState::parse)
        .unwrap_or_else(|| PortState::of_doc(doc))
}

fn on_request(doc: &Value, number: &str) -> bool {
    doc.get("numbers").and_then(Value::as_object).is_some_and(|n| n.contains_key(number))
}

/// May `number` be moved to `to` by a caller of `role`? Returns the state it moves from.
pub fn check_move(
    doc: &Value,
    number: &str,
    to: PortState,
    role: Role,
    policy: &TransitionPolicy,
) -> Result<PortState, NumberMoveError> {
    let request = PortState::of_doc(doc);
    if !matches!(request, PortState::Submitted | PortState::Pending | PortState::Scheduled | PortState::Rejected) {
        return Err(NumberMoveError::RequestNotInProgress(request));
    }
    if !on_request(doc, number) {
        return Err(NumberMoveError::NotOnRequest);
    }
    let from = effective_state(doc, number);
    policy.check(from, to, role).map_err(NumberMoveError::Transition)?;
    Ok(from)
}

/// What a number's move did to the request.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberMoved {
    pub from: PortState,
    /// The state the request follows into, when no number is left on it.
    pub request_follows: Option<PortState>,
}

fn move_entry(doc: &mut Value, from_key: &str, to_key: &str, number: &str) {
    let entry = doc.get_mut(from_key).and_then(Value::as_object_mut).and_then(|m| m.remove(number));
    if let Some(entry) = entry {
        if !doc.get(to_key).is_some_and(Value::is_object) {
            doc[to_key] = json!({});
        }
        doc[to_key][number] = entry;
    }
}

/// Moves `number` of `doc` to `to` (checked with `check_move` first). `entry` is the move as a
/// request's transition entry would record it (`port_request::transition_entry`: who, why, when).
pub fn apply_move(doc: &mut Value, number: &str, to: PortState, mut entry: Value) -> NumberMoved {
    let from = effective_state(doc, number);
    let at = entry.get("timestamp").cloned().unwrap_or(Value::Null);
    let reason = entry.get("reason").cloned();
    // a number's own entry: `number_progress`, not a `transition` of the request
    if let Some(e) = entry.as_object_mut() {
        let moved = e.remove("transition").unwrap_or(Value::Null);
        e.insert("type".into(), json!("number_progress"));
        e.insert("number".into(), json!(number));
        e.insert("progress".into(), moved);
    }
    let mut list = doc.get(TRANSITIONS).and_then(Value::as_array).cloned().unwrap_or_default();
    list.insert(0, entry.clone());
    doc[TRANSITIONS] = Value::Array(list);
    let mut progress = json!({ "state": to, "previous": from, "timestamp": at });
    if let Some(r) = reason {
        progress["reason"] = r;
    }
    if let Some(auth) = entry.get("authorization") {
        progress["authorization"] = auth.clone();
    }
    if !doc.get(STORED).is_some_and(Value::is_object) {
        doc[STORED] = json!({});
    }
    doc[STORED][number] = progress;
    match to {
        PortState::Completed => move_entry(doc, "numbers", PORTED, number),
        PortState::Canceled => move_entry(doc, "numbers", CANCELED, number),
        _ => {}
    }
    NumberMoved { from, request_follows: follows(doc) }
}

/// The state the request follows into once no number is left on it.
pub fn follows(doc: &Value) -> Option<PortState> {
    let left = doc.get("numbers").and_then(Value::as_object).is_some_and(|n| !n.is_empty());
    if left {
        return None;
    }
    let ported = doc.get(PORTED).and_then(Value::as_object).is_some_and(|n| !n.is_empty());
    Some(if ported { PortState::Completed } else { PortState::Canceled })
}

/// A move of the whole request moves every number still on it: their own progress goes.
pub fn clear_for_request_move(doc: &mut Value) {
    let on: Vec<String> =
        doc.get("numbers").and_then(Value::as_object).map(|n| n.keys().cloned().collect()).unwrap_or_default();
    if let Some(stored) = doc.get_mut(STORED).and_then(Value::as_object_mut) {
        stored.retain(|n, _| !on.contains(n));
    }
}

/// What is shown of a number's progress: state, previous, reason, timestamp and who.
fn shown(progress: &Value) -> Value {
    let mut p = progress.clone();
    if let Some(o) = p.as_object_mut() {
        o.retain(|k, _| matches!(k.as_str(), "state" | "previous" | "reason" | "timestamp" | "authorization"));
    }
    p
}

/// Adds each number's own progress to its entry in the public view (`numbers`,
/// `_read_only.ported_numbers` and `_read_only.canceled_numbers`).
pub fn render(view: &mut Map<String, Value>, doc: &Value) {
    let Some(stored) = doc.get(STORED).and_then(Value::as_object).filter(|s| !s.is_empty()) else { return };
    let add = |entries: Option<&mut Value>| {
        if let Some(entries) = entries.and_then(Value::as_object_mut) {
            for (number, entry) in entries.iter_mut() {
                if let (Some(p), Some(e)) = (stored.get(number), entry.as_object_mut()) {
                    e.insert(PROGRESS_KEY.into(), shown(p));
                }
            }
        }
    };
    add(view.get_mut("numbers"));
    if let Some(read_only) = view.get_mut("_read_only") {
        add(read_only.get_mut("ported_numbers"));
        add(read_only.get_mut("canceled_numbers"));
    }
}

/// Every number of the request with where it is: on the request, ported or canceled.
pub fn all(doc: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for key in ["numbers", PORTED, CANCELED] {
        for number in doc.get(key).and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
            let mut p = progress_of(doc, number).map(shown).unwrap_or_else(|| json!({}));
            p["state"] = json!(effective_state(doc, number));
            out.insert(number.clone(), p);
        }
    }
    out
}

/// Drops what a client sent under the service's keys (`_*`) in numbers entries.
pub fn strip_reserved(numbers: &mut Map<String, Value>) {
    for entry in numbers.values_mut() {
        if let Some(e) = entry.as_object_mut() {
            e.retain(|k, _| !k.starts_with('_'));
        }
    }
}

/// The numbers' own entries of the timeline, oldest first.
pub fn timeline_entries(doc: &Value) -> Vec<Value> {
    doc.get(TRANSITIONS).and_then(Value::as_array).map(|l| l.iter().rev().cloned().collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A move as `port_request::transition_entry` records it.
    fn entry(to: PortState, reason: Option<&str>, at: i64) -> Value {
        let mut e = json!({"timestamp": at, "type": "transition", "transition": {"new": to, "previous": "pending"},
                           "authorization": {"account": {"id": "auth", "name": "Authority"}}});
        if let Some(r) = reason {
            e["reason"] = json!(r);
        }
        e
    }

    fn request(state: &str) -> Value {
        json!({
            "_id": "r", "pvt_port_state": state,
            "numbers": {"+14155550100": {"state": "CA"}, "+14155550101": {}, "+14155550102": {}},
        })
    }

    #[test]
    fn numbers_move_by_the_request_rules_only_while_it_is_in_progress() {
        let policy = TransitionPolicy::default();
        let n = "+14155550100";
        assert_eq!(
            check_move(&request("submitted"), n, PortState::Pending, Role::Authority, &policy),
            Ok(PortState::Submitted)
        );
        assert_eq!(
            check_move(&request("unconfirmed"), n, PortState::Pending, Role::Authority, &policy),
            Err(NumberMoveError::RequestNotInProgress(PortState::Unconfirmed))
        );
        assert_eq!(
            check_move(&request("completed"), n, PortState::Canceled, Role::Authority, &policy),
            Err(NumberMoveError::RequestNotInProgress(PortState::Completed))
        );
        assert_eq!(
            check_move(&request("submitted"), "+14155559999", PortState::Pending, Role::Authority, &policy),
            Err(NumberMoveError::NotOnRequest)
        );
        assert_eq!(
            check_move(&request("submitted"), n, PortState::Completed, Role::Authority, &policy),
            Err(NumberMoveError::Transition(TransitionError::InvalidFromState)),
            "submitted cannot be completed, for a number as for the request"
        );
        assert_eq!(
            check_move(&request("submitted"), n, PortState::Pending, Role::Member, &policy),
            Err(NumberMoveError::Transition(TransitionError::NotAllowed))
        );
    }

    #[test]
    fn a_number_moves_alone_and_the_request_follows_when_none_is_left() {
        let mut doc = request("pending");
        let (a, b, c) = ("+14155550100", "+14155550101", "+14155550102");
        let moved =
            apply_move(&mut doc, a, PortState::Completed, entry(PortState::Completed, Some("ported early"), 100));
        assert_eq!(moved, NumberMoved { from: PortState::Pending, request_follows: None });
        assert_eq!(effective_state(&doc, a), PortState::Completed);
        assert_eq!(effective_state(&doc, b), PortState::Pending, "the others are where the request is");
        assert!(doc["numbers"].get(a).is_none() && doc["pvt_ported_numbers"][a]["state"] == "CA");
        assert_eq!(doc["pvt_number_transitions"][0]["progress"], json!({"new": "completed", "previous": "pending"}));
        assert!(doc["pvt_number_transitions"][0].get("transition").is_none(), "never read as the request's move");

        apply_move(&mut doc, b, PortState::Rejected, entry(PortState::Rejected, Some("wrong BTN"), 101));
        assert!(doc["numbers"].get(b).is_some(), "a rejected number stays held");
        let moved = apply_move(&mut doc, b, PortState::Canceled, entry(PortState::Canceled, None, 102));
        assert_eq!(moved.request_follows, None);
        assert!(doc["pvt_canceled_numbers"].get(b).is_some());
        let moved = apply_move(&mut doc, c, PortState::Canceled, entry(PortState::Canceled, None, 103));
        assert_eq!(moved.request_follows, Some(PortState::Completed), "one number was ported");

        let mut none_ported = request("pending");
        for n in [a, b, c] {
            apply_move(&mut none_ported, n, PortState::Canceled, entry(PortState::Canceled, None, 100));
        }
        assert_eq!(follows(&none_ported), Some(PortState::Canceled));
    }

    #[test]
    fn progress_shows_in_each_entry_under_a_key_of_its_own() {
        let mut doc = request("pending");
        apply_move(&mut doc, "+14155550101", PortState::Rejected, entry(PortState::Rejected, Some("wrong BTN"), 101));
        apply_move(&mut doc, "+14155550102", PortState::Completed, entry(PortState::Completed, None, 102));
        let mut view = json!({"numbers": doc["numbers"], "_read_only": {"ported_numbers": doc["pvt_ported_numbers"]}})
            .as_object()
            .cloned()
            .unwrap();
        render(&mut view, &doc);
        assert_eq!(view["numbers"]["+14155550100"], json!({"state": "CA"}), "a client's own `state` is untouched");
        assert_eq!(view["numbers"]["+14155550101"]["_progress"]["state"], "rejected");
        assert_eq!(view["numbers"]["+14155550101"]["_progress"]["reason"], "wrong BTN");
        assert_eq!(view["_read_only"]["ported_numbers"]["+14155550102"]["_progress"]["state"], "completed");
        let all = all(&doc);
        assert_eq!(all["+14155550100"]["state"], "pending");
        assert_eq!(all["+14155550102"]["state"], "completed");

        let mut sent =
            json!({"+1": {"state": "CA", "_progress": {"state": "completed"}}}).as_object().cloned().unwrap();
        strip_reserved(&mut sent);
        assert_eq!(Value::Object(sent), json!({"+1": {"state": "CA"}}));

        clear_for_request_move(&mut doc);
        assert_eq!(effective_state(&doc, "+14155550101"), PortState::Pending, "the request's move moves it");
        assert_eq!(effective_state(&doc, "+14155550102"), PortState::Completed, "a ported number stays ported");
    }
}
