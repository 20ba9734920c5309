//! Per-number progress and partial ports: each number of a submitted request can move on its
//! own, by the request's state rules, with a reason.
//!
//! - Stored in the request's number progress (`{number: {state, previous, reason, timestamp,
//!   authorization}}`), one entry per number that moved on its own, and in its number
//!   transitions (newest first), which the timeline shows as `number_progress` entries. A number
//!   without an entry is where the request is.
//! - Shown in each entry of `numbers` (and `_read_only.ported_numbers`, `.canceled_numbers`) under
//!   `_progress`: keys starting with `_` in a numbers entry are the service's, so they never
//!   collide with a client's own metadata (Kazoo's examples use `state` for a US state), and
//!   what a client sends under them is dropped.
//! - A completed number leaves `numbers` for the ported numbers (its number documents are
//!   written as a completion writes them); a canceled one for the canceled numbers: either way
//!   the request no longer holds it. A rejected one stays, held, as a rejected request holds
//!   its numbers.
//! - When no number is left on the request, the request follows: completed when any number was
//!   ported, canceled otherwise. A move of the whole request moves every number still on it (their
//!   own progress is cleared).

use super::documents::fields::{List, Slot, Unreadable};
use super::documents::port_request::{Move, NumberProgress, Numbers, PortRequest, StoredState, Transition};
use super::phone_number::PhoneNumber;
use super::port_state::{PortState, Role, TransitionError, TransitionPolicy};
use serde_json::{Map, Value, json};

/// The key of a number's progress in the entries of the public view.
pub const PROGRESS_KEY: &str = "_progress";

/// Why a number cannot be moved.
#[derive(Debug, Clone, PartialEq)]
pub enum NumberMoveError {
    /// The number is not on the request (never was, or it left: ported or canceled).
    NotOnRequest,
    /// Numbers move on their own only once the request is submitted and until it closes.
    RequestNotInProgress(PortState),
    Transition(TransitionError),
    Unreadable(Unreadable),
}

fn progress_of<'a>(doc: &'a PortRequest, number: &PhoneNumber) -> Option<&'a NumberProgress> {
    doc.number_progress.get()?.get(number)
}

fn known(state: &Slot<StoredState>) -> Option<PortState> {
    match state.get()? {
        StoredState::Known(s) => Some(*s),
        StoredState::Unknown(_) => None,
    }
}

/// Where a number is: its own state, else the request's (`None` when neither can be read).
pub fn effective_state(doc: &PortRequest, number: &PhoneNumber) -> Option<PortState> {
    progress_of(doc, number).and_then(|p| known(&p.state)).or_else(|| doc.state().ok())
}

/// May `number` be moved to `to` by a caller of `role`? Returns the state it moves from.
pub fn check_move(
    doc: &PortRequest,
    number: &PhoneNumber,
    to: PortState,
    role: Role,
    policy: &TransitionPolicy,
) -> Result<PortState, NumberMoveError> {
    let request = doc.state().map_err(NumberMoveError::Unreadable)?;
    if !matches!(request, PortState::Submitted | PortState::Pending | PortState::Scheduled | PortState::Rejected) {
        return Err(NumberMoveError::RequestNotInProgress(request));
    }
    if !doc.numbers().map_err(NumberMoveError::Unreadable)?.contains_key(number) {
        return Err(NumberMoveError::NotOnRequest);
    }
    let from = effective_state(doc, number).unwrap_or(request);
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

fn move_entry(from: &mut Slot<Numbers>, to: &mut Slot<Numbers>, number: &PhoneNumber) {
    if let Some(entry) = from.get_mut().and_then(|m| m.remove(number)) {
        to.get_or_default().insert(number.clone(), entry);
    }
}

/// Moves `number` of `doc` to `to` (checked with `check_move` first). `entry` is the move as a
/// request's transition entry would record it (`port_request::transition_entry`: who, why, when).
pub fn apply_move(doc: &mut PortRequest, number: &PhoneNumber, to: PortState, mut entry: Transition) -> NumberMoved {
    let from = effective_state(doc, number).unwrap_or(to);
    // a number's own entry: `number_progress`, not a `transition` of the request
    let moved = entry.transition.take();
    entry.kind.set("number_progress".into());
    entry.number.set(number.clone());
    entry.progress = moved;
    let progress = NumberProgress {
        state: Slot::Set(StoredState::Known(to)),
        previous: Slot::Set(StoredState::Known(from)),
        reason: entry.reason.clone(),
        timestamp: entry.timestamp.clone(),
        authorization: entry.authorization.clone(),
        rest: Map::new(),
    };
    match doc.number_transitions.get_mut() {
        Some(list) => list.insert(0, entry),
        None => doc.number_transitions.set(List::from_iter([entry])),
    }
    doc.number_progress.get_or_default().insert(number.clone(), progress);
    match to {
        PortState::Completed => move_entry(&mut doc.numbers, &mut doc.ported_numbers, number),
        PortState::Canceled => move_entry(&mut doc.numbers, &mut doc.canceled_numbers, number),
        _ => {}
    }
    NumberMoved { from, request_follows: follows(doc) }
}

/// The state the request follows into once no number is left on it.
pub fn follows(doc: &PortRequest) -> Option<PortState> {
    if !doc.numbers_shown().is_empty() {
        return None;
    }
    Some(if doc.ported().is_empty() { PortState::Canceled } else { PortState::Completed })
}

/// A move of the whole request moves every number still on it: their own progress goes.
pub fn clear_for_request_move(doc: &mut PortRequest) {
    let on: Vec<PhoneNumber> = doc.numbers_shown().keys().cloned().collect();
    if let Some(stored) = doc.number_progress.get_mut() {
        stored.retain(|n, _| !on.contains(n));
    }
}

/// What is shown of a number's progress: state, previous, reason, timestamp and who.
fn shown(progress: &NumberProgress) -> Value {
    let mut p = progress.clone();
    p.rest.clear();
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// Adds each number's own progress to its entry in the public view (`numbers`,
/// `_read_only.ported_numbers` and `_read_only.canceled_numbers`).
pub fn render(view: &mut Map<String, Value>, doc: &PortRequest) {
    let Some(stored) = doc.number_progress.get().filter(|s| !s.is_empty()) else { return };
    let add = |entries: Option<&mut Value>| {
        if let Some(entries) = entries.and_then(Value::as_object_mut) {
            for (number, entry) in entries.iter_mut() {
                let progress = PhoneNumber::exact(number).ok().and_then(|n| stored.get(&n));
                if let (Some(p), Some(e)) = (progress, entry.as_object_mut()) {
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

/// Has any number moved on its own?
pub fn any(doc: &PortRequest) -> bool {
    doc.number_progress.get().is_some_and(|p| !p.is_empty())
}

/// Every number of the request with where it is: on the request, ported or canceled.
pub fn all(doc: &PortRequest) -> Map<String, Value> {
    let mut out = Map::new();
    for numbers in [doc.numbers_shown(), doc.ported(), doc.canceled()] {
        for number in numbers.keys() {
            let mut p = progress_of(doc, number).map(shown).unwrap_or_else(|| json!({}));
            p["state"] = match effective_state(doc, number) {
                Some(s) => json!(s),
                None => doc.shown_state(),
            };
            out.insert(number.to_string(), p);
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

impl Transition {
    /// The state a number's own move went to.
    pub fn number_to(&self) -> Option<PortState> {
        known(&self.progress.get()?.to)
    }
}

impl Move {
    pub fn new(from: Option<PortState>, to: PortState) -> Self {
        Move {
            to: Slot::Set(StoredState::Known(to)),
            previous: Slot::from_option(from.map(StoredState::Known)),
            rest: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A move as `port_request::transition_entry` records it.
    fn entry(to: PortState, reason: Option<&str>, at: i64) -> Transition {
        let mut e = serde_json::from_value::<Transition>(json!({
            "timestamp": at, "type": "transition", "transition": {"new": to, "previous": "pending"},
            "authorization": {"account": {"id": "auth", "name": "Authority"}}
        }))
        .unwrap();
        e.reason = Slot::from_option(reason.map(str::to_owned));
        e
    }

    fn request(state: &str) -> PortRequest {
        PortRequest::stored_with(
            json!({"numbers": {"+14155550100": {"state": "CA"}, "+14155550101": {}, "+14155550102": {}}}),
            json!({"port_state": state}),
        )
    }

    fn n(s: &str) -> PhoneNumber {
        PhoneNumber::exact(s).unwrap()
    }

    #[test]
    fn numbers_move_by_the_request_rules_only_while_it_is_in_progress() {
        let policy = TransitionPolicy::default();
        let a = n("+14155550100");
        assert_eq!(
            check_move(&request("submitted"), &a, PortState::Pending, Role::Authority, &policy),
            Ok(PortState::Submitted)
        );
        assert_eq!(
            check_move(&request("unconfirmed"), &a, PortState::Pending, Role::Authority, &policy),
            Err(NumberMoveError::RequestNotInProgress(PortState::Unconfirmed))
        );
        assert_eq!(
            check_move(&request("completed"), &a, PortState::Canceled, Role::Authority, &policy),
            Err(NumberMoveError::RequestNotInProgress(PortState::Completed))
        );
        assert_eq!(
            check_move(&request("submitted"), &n("+14155559999"), PortState::Pending, Role::Authority, &policy),
            Err(NumberMoveError::NotOnRequest)
        );
        assert_eq!(
            check_move(&request("submitted"), &a, PortState::Completed, Role::Authority, &policy),
            Err(NumberMoveError::Transition(TransitionError::InvalidFromState)),
            "submitted cannot be completed, for a number as for the request"
        );
        assert_eq!(
            check_move(&request("submitted"), &a, PortState::Pending, Role::Member, &policy),
            Err(NumberMoveError::Transition(TransitionError::NotAllowed))
        );
        assert!(matches!(
            check_move(&request("on_hold"), &a, PortState::Pending, Role::Authority, &policy),
            Err(NumberMoveError::Unreadable(_))
        ));
    }

    #[test]
    fn a_number_moves_alone_and_the_request_follows_when_none_is_left() {
        let mut doc = request("pending");
        let (a, b, c) = (n("+14155550100"), n("+14155550101"), n("+14155550102"));
        let moved =
            apply_move(&mut doc, &a, PortState::Completed, entry(PortState::Completed, Some("ported early"), 100));
        assert_eq!(moved, NumberMoved { from: PortState::Pending, request_follows: None });
        assert_eq!(effective_state(&doc, &a), Some(PortState::Completed));
        assert_eq!(effective_state(&doc, &b), Some(PortState::Pending), "the others are where the request is");
        let v = doc.to_value();
        assert!(
            v["numbers"].get(a.as_str()).is_none() && doc.stored_private("ported_numbers")[a.as_str()]["state"] == "CA"
        );
        let own = doc.number_transitions.entries().next().unwrap();
        assert_eq!(own.number_to(), Some(PortState::Completed));
        assert!(own.transition.is_absent() && own.to().is_none(), "never read as the request's move");

        apply_move(&mut doc, &b, PortState::Rejected, entry(PortState::Rejected, Some("wrong BTN"), 101));
        assert!(doc.numbers().unwrap().contains_key(&b), "a rejected number stays held");
        let moved = apply_move(&mut doc, &b, PortState::Canceled, entry(PortState::Canceled, None, 102));
        assert_eq!(moved.request_follows, None);
        assert!(doc.canceled().contains_key(&b));
        let moved = apply_move(&mut doc, &c, PortState::Canceled, entry(PortState::Canceled, None, 103));
        assert_eq!(moved.request_follows, Some(PortState::Completed), "one number was ported");

        let mut none_ported = request("pending");
        for x in [&a, &b, &c] {
            apply_move(&mut none_ported, x, PortState::Canceled, entry(PortState::Canceled, None, 100));
        }
        assert_eq!(follows(&none_ported), Some(PortState::Canceled));
    }

    #[test]
    fn progress_shows_in_each_entry_under_a_key_of_its_own() {
        let mut doc = request("pending");
        apply_move(
            &mut doc,
            &n("+14155550101"),
            PortState::Rejected,
            entry(PortState::Rejected, Some("wrong BTN"), 101),
        );
        apply_move(&mut doc, &n("+14155550102"), PortState::Completed, entry(PortState::Completed, None, 102));
        let v = doc.to_value();
        let mut view =
            json!({"numbers": v["numbers"], "_read_only": {"ported_numbers": doc.stored_private("ported_numbers")}})
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
        assert_eq!(effective_state(&doc, &n("+14155550101")), Some(PortState::Pending), "the request's move moves it");
        assert_eq!(
            effective_state(&doc, &n("+14155550102")),
            Some(PortState::Completed),
            "a ported number stays ported"
        );
    }
}
