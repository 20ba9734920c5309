//! What needs attention: rules as data (`attention_rules.json`, overridden per authority in its
//! desk configuration), each naming the states it watches, the moment its clock starts (its
//! anchor), how long it waits (or, for a date ahead, how early it warns), who must act and the
//! one thing to do. The `attention` view of `_design/kazoo_port_requests` emits each open
//! request under each anchor, so the requests a rule holds now are one key range: anchor ≤ the
//! rule's bound for this moment (`Rule::bound`). The map of that view and `Anchor::of` read a
//! request the same way.

use super::calendar::{Calendar, Span};
use crate::domain::documents::port_request::PortRequest;
use crate::domain::port_request::last_transition_to;
use crate::domain::port_state::PortState;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::sync::LazyLock;

/// Who must act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Actor {
    Authority,
    Submitter,
    Customer,
}

impl Actor {
    pub fn parse(s: &str) -> Option<Actor> {
        match s {
            "authority" => Some(Actor::Authority),
            "submitter" => Some(Actor::Submitter),
            "customer" => Some(Actor::Customer),
            _ => None,
        }
    }
}

/// When a rule's clock starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// The request entered its state (its newest transition into it; created when none: so,
    /// for an unconfirmed request, when it was created).
    Entered,
    /// As `Entered`, for a submitted or pending request without a scheduled date.
    EnteredUnscheduled,
    /// Its last change of any kind.
    Modified,
    ScheduledDate,
    TransferDate,
}

pub const ANCHORS: [Anchor; 5] =
    [Anchor::Entered, Anchor::EnteredUnscheduled, Anchor::Modified, Anchor::ScheduledDate, Anchor::TransferDate];

impl Anchor {
    pub fn as_str(self) -> &'static str {
        match self {
            Anchor::Entered => "entered",
            Anchor::EnteredUnscheduled => "entered_unscheduled",
            Anchor::Modified => "modified",
            Anchor::ScheduledDate => "scheduled_date",
            Anchor::TransferDate => "transfer_date",
        }
    }

    pub fn parse(s: &str) -> Option<Anchor> {
        ANCHORS.into_iter().find(|a| a.as_str() == s)
    }

    /// The anchor's moment for a request as it is now (as the view emits it).
    pub fn of(self, doc: &PortRequest) -> Option<i64> {
        let entered = || {
            let state = doc.state().ok()?;
            last_transition_to(doc, state).and_then(|t| t.timestamp.copied()).or_else(|| doc.created.copied())
        };
        match self {
            Anchor::Entered => entered(),
            Anchor::EnteredUnscheduled => {
                let open = matches!(doc.state(), Ok(PortState::Submitted | PortState::Pending));
                (open && doc.scheduled_date.get().is_none()).then(entered).flatten()
            }
            Anchor::Modified => doc.modified.copied(),
            Anchor::ScheduledDate => doc.scheduled_date.copied(),
            Anchor::TransferDate => doc.transfer_date.copied(),
        }
    }
}

/// How a rule counts from its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Due this long after the anchor.
    After(Span),
    /// Due from this long before the anchor (a date ahead).
    Before(Span),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub who: Actor,
    pub states: Vec<PortState>,
    pub anchor: Anchor,
    pub when: When,
    pub action: String,
}

impl Rule {
    /// Reads a rule's JSON (`id`, `title`, `who`, `states`, `anchor`, `after` or `before`,
    /// `action`); `None` when a part is missing or unknown.
    fn read(id: &str, v: &Map<String, Value>) -> Option<Rule> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let states: Vec<PortState> = v
            .get("states")?
            .as_array()?
            .iter()
            .map(|s| s.as_str().and_then(PortState::parse).filter(|s| s.is_open()))
            .collect::<Option<_>>()?;
        let when = match (v.get("after").and_then(Span::parse), v.get("before").and_then(Span::parse)) {
            (Some(s), None) => When::After(s),
            (None, Some(s)) => When::Before(s),
            _ => return None,
        };
        Some(Rule {
            id: id.to_owned(),
            title: text("title")?,
            who: Actor::parse(&text("who")?)?,
            states: (!states.is_empty()).then_some(states)?,
            anchor: Anchor::parse(&text("anchor")?)?,
            when,
            action: text("action")?,
        })
    }

    /// The latest anchor moment that is due at `now`: the rule holds the requests whose
    /// anchor is at or before it.
    pub fn bound(&self, cal: &Calendar, now: i64) -> i64 {
        match self.when {
            When::After(span) => span.before(cal, now),
            When::Before(span) => span.after(cal, now),
        }
    }

    /// When a request whose anchor is `at` entered this rule's attention.
    pub fn due_at(&self, cal: &Calendar, at: i64) -> i64 {
        match self.when {
            When::After(span) => span.after(cal, at),
            When::Before(span) => span.before(cal, at),
        }
    }

    /// Does it hold this request at `now`? Its anchor's moment when it does.
    pub fn holds(&self, doc: &PortRequest, cal: &Calendar, now: i64) -> Option<i64> {
        let state = doc.state().ok()?;
        if !self.states.contains(&state) || doc.deleted.is_true() {
            return None;
        }
        self.anchor.of(doc).filter(|at| *at <= self.bound(cal, now))
    }

    /// How a client sees the rule.
    pub fn shown(&self) -> Value {
        let (key, span) = match self.when {
            When::After(s) => ("after", s),
            When::Before(s) => ("before", s),
        };
        let span = match span {
            Span::Seconds(s) => json!({ "seconds": s }),
            Span::BusinessSeconds(s) => json!({ "business_hours": s / 3600 }),
            Span::BusinessDays(n) => json!({ "business_days": n }),
        };
        json!({
            "id": self.id, "title": self.title, "who": self.who, "states": self.states,
            "anchor": self.anchor, key: span, "action": self.action,
        })
    }
}

static SHIPPED: LazyLock<Vec<Map<String, Value>>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("attention_rules.json")).expect("the shipped attention rules are valid")
});

/// The rules in effect, most urgent first: the shipped ones with an authority's changes
/// (rule id → the keys it changes; `null` or `"disabled": true` withdraws a rule; a new id
/// with every key adds one, after the shipped ones). A change that leaves a rule unreadable
/// is ignored: the shipped rule holds.
pub fn in_effect(overrides: Option<&Map<String, Value>>) -> Vec<Rule> {
    let mut raw: Vec<(String, Map<String, Value>)> = SHIPPED
        .iter()
        .map(|r| (r.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(), r.clone()))
        .collect();
    for (id, change) in overrides.into_iter().flatten() {
        let withdrawn = change.is_null() || change.get("disabled") == Some(&Value::Bool(true));
        let at = raw.iter().position(|(r, _)| r == id);
        match (at, withdrawn, change.as_object()) {
            (Some(i), true, _) => {
                raw.remove(i);
            }
            (Some(i), false, Some(c)) => {
                let mut changed = raw[i].1.clone();
                if c.contains_key("after") || c.contains_key("before") {
                    changed.remove("after");
                    changed.remove("before");
                }
                changed.extend(c.iter().map(|(k, v)| (k.clone(), v.clone())));
                if Rule::read(id, &changed).is_some() {
                    raw[i].1 = changed;
                }
            }
            (None, false, Some(c)) if super::rejection_codes::is_code(id) => raw.push((id.clone(), c.clone())),
            _ => {}
        }
    }
    raw.iter().filter_map(|(id, r)| Rule::read(id, r)).collect()
}

/// The most urgent rule holding a request now, with its anchor's moment.
pub fn first_holding<'a>(rules: &'a [Rule], doc: &PortRequest, cal: &Calendar, now: i64) -> Option<(&'a Rule, i64)> {
    rules.iter().find_map(|r| r.holds(doc, cal, now).map(|at| (r, at)))
}

/// A time a request spent in attention: the rule, when it entered and when it left (none:
/// still in it).
#[derive(Debug, Clone, PartialEq)]
pub struct Episode<'a> {
    pub rule: &'a Rule,
    pub entered: i64,
    pub left: Option<i64>,
}

/// The request's times in attention, from its history: each stay in a state (its transitions,
/// oldest first) under the first rule for that state whose clock started within the stay
/// (the moment it entered the state, or for the dates, those it holds now); the current stay
/// as the listing sees it now.
pub fn episodes<'a>(rules: &'a [Rule], doc: &PortRequest, cal: &Calendar, now: i64) -> Vec<Episode<'a>> {
    let mut stays: Vec<(PortState, i64)> = Vec::new();
    if let Some(created) = doc.created.copied() {
        stays.push((PortState::Unconfirmed, created));
    }
    for t in doc.transitions().rev() {
        if let (Some(to), Some(at)) = (t.to(), t.timestamp.copied()) {
            stays.push((to, at));
        }
    }
    let mut out = Vec::new();
    for (i, (state, entered)) in stays.iter().enumerate() {
        let left = stays.get(i + 1).map(|(_, at)| *at);
        if left.is_none() {
            if let Some((rule, at)) = first_holding(rules, doc, cal, now) {
                out.push(Episode { rule, entered: rule.due_at(cal, at).max(*entered), left: None });
            }
            continue;
        }
        let until = left.unwrap_or(now);
        let past = rules.iter().filter(|r| r.states.contains(state)).find_map(|r| {
            let anchor = match r.anchor {
                // the changes within a past stay are not kept: it counts from the stay's start
                Anchor::Entered | Anchor::EnteredUnscheduled | Anchor::Modified => Some(*entered),
                Anchor::ScheduledDate => doc.scheduled_date.copied(),
                Anchor::TransferDate => doc.transfer_date.copied(),
            }?;
            let due = r.due_at(cal, anchor).max(*entered);
            (due < until).then_some((r, due))
        });
        if let Some((rule, due)) = past {
            out.push(Episode { rule, entered: due, left });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(state: &str, private: Value, public: Value) -> PortRequest {
        let mut p = private;
        p["port_state"] = json!(state);
        p["type"] = json!("port_request");
        let mut f = public;
        f["_id"] = json!("a");
        PortRequest::stored_with(f, p)
    }

    #[test]
    fn the_shipped_rules_read_and_overrides_change_them() {
        let rules = in_effect(None);
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["overdue", "at_risk", "not_picked_up", "no_scheduled_date", "waiting_on_customer", "unconfirmed"]
        );
        let o = json!({
            "not_picked_up": {"after": {"seconds": 5}},
            "overdue": {"disabled": true},
            "unconfirmed": {"anchor": "nowhere"},
            "stale_scheduled": {"title": "t", "who": "authority", "states": ["scheduled"], "anchor": "modified", "after": {"days": 9}, "action": "a"},
            "half": {"title": "t"},
        });
        let rules = in_effect(o.as_object());
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["at_risk", "not_picked_up", "no_scheduled_date", "waiting_on_customer", "unconfirmed", "stale_scheduled"]
        );
        assert_eq!(rules[1].when, When::After(Span::Seconds(5)));
        assert_eq!(rules[4].anchor, Anchor::Entered);
    }

    #[test]
    fn a_rule_holds_from_its_bound_and_the_first_rule_wins() {
        let cal = Calendar::office(chrono_tz::UTC);
        let rules = in_effect(json!({"not_picked_up": {"after": {"seconds": 60}}}).as_object());
        let submitted = |at: i64, transfer: Option<i64>| {
            let mut public = json!({});
            if let Some(t) = transfer {
                public["transfer_date"] = json!(t);
            }
            doc(
                "submitted",
                json!({"created": at - 10, "modified": at, "transitions": [{"timestamp": at, "transition": {"new": "submitted", "previous": "unconfirmed"}}]}),
                public,
            )
        };
        let now = 1_000_000;
        assert!(first_holding(&rules, &submitted(now - 30, None), &cal, now).is_none());
        let (rule, at) = first_holding(&rules, &submitted(now - 61, None), &cal, now).unwrap();
        assert_eq!((rule.id.as_str(), at), ("not_picked_up", now - 61));
        // a transfer date close: at risk comes first
        let (rule, _) = first_holding(&rules, &submitted(now - 61, Some(now + 3600)), &cal, now).unwrap();
        assert_eq!(rule.id, "at_risk");
        let eps = episodes(&rules, &submitted(now - 61, None), &cal, now);
        assert_eq!(eps.len(), 1);
        assert_eq!((eps[0].rule.id.as_str(), eps[0].entered, eps[0].left), ("not_picked_up", now - 1, None));
    }

    #[test]
    fn past_stays_in_attention_are_episodes_that_left() {
        let cal = Calendar::office(chrono_tz::UTC);
        let rules = in_effect(json!({"not_picked_up": {"after": {"seconds": 60}}}).as_object());
        let d = doc(
            "pending",
            json!({"created": 0, "modified": 500, "transitions": [
                {"timestamp": 500, "transition": {"new": "pending", "previous": "submitted"}},
                {"timestamp": 100, "transition": {"new": "submitted", "previous": "unconfirmed"}},
            ]}),
            json!({}),
        );
        let eps = episodes(&rules, &d, &cal, 600);
        assert_eq!(eps.len(), 1);
        assert_eq!((eps[0].rule.id.as_str(), eps[0].entered, eps[0].left), ("not_picked_up", 160, Some(500)));
    }
}
