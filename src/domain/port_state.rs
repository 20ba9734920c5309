//! The port request state machine of Kazoo 4.3 (`knm_port_request`): states, the `by_types`
//! groups, and who may move a request from one state to another.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    Unconfirmed,
    Submitted,
    Pending,
    Scheduled,
    Completed,
    Rejected,
    Canceled,
}

use PortState::*;

impl PortState {
    pub const ALL: [PortState; 7] = [Unconfirmed, Submitted, Pending, Scheduled, Completed, Rejected, Canceled];

    pub fn as_str(self) -> &'static str {
        match self {
            Unconfirmed => "unconfirmed",
            Submitted => "submitted",
            Pending => "pending",
            Scheduled => "scheduled",
            Completed => "completed",
            Rejected => "rejected",
            Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Open requests hold their numbers: a number may be on only one open request.
    pub fn is_open(self) -> bool {
        matches!(self, Unconfirmed | Submitted | Pending | Scheduled | Rejected)
    }

    /// Full edits (POST) are allowed only before submission or after a rejection.
    pub fn is_editable(self) -> bool {
        matches!(self, Unconfirmed | Rejected)
    }

    /// DELETE (and attachment delete) is allowed only in these states.
    pub fn is_deletable(self) -> bool {
        matches!(self, Unconfirmed | Rejected | Canceled)
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `by_types` groups of the listing API.
pub fn states_of_type(name: &str) -> Option<&'static [PortState]> {
    const ACTIVE: &[PortState] = &[Unconfirmed, Submitted, Pending, Scheduled, Rejected];
    const PROGRESSING: &[PortState] = &[Submitted, Pending, Scheduled];
    const SUSPENDED: &[PortState] = &[Unconfirmed, Rejected];
    const COMPLETED: &[PortState] = &[Completed, Canceled];
    match name {
        "active" => Some(ACTIVE),
        "progressing" => Some(PROGRESSING),
        "suspended" => Some(SUSPENDED),
        "completed" => Some(COMPLETED),
        "all" => Some(&PortState::ALL),
        _ => None,
    }
}

/// How the caller relates to the request, for transition permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The request's port authority, or a superduper admin.
    Authority,
    /// The owning account or one of its ancestors.
    Member,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitionError {
    /// "you're not allowed to change to new state from current state, ..."
    NotAllowed,
    /// "Cannot move to new state from current state"
    InvalidFromState,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct TransitionPolicy {
    /// `number_manager.allow_port_transition_from_submitted_to_scheduled`.
    pub allow_submitted_to_scheduled: bool,
}

impl TransitionPolicy {
    /// The states a request may be moved to `to` from.
    pub fn sources(&self, to: PortState) -> &'static [PortState] {
        match to {
            Unconfirmed => &[],
            Submitted => &[Unconfirmed, Rejected],
            Pending => &[Submitted],
            Scheduled if self.allow_submitted_to_scheduled => &[Submitted, Pending],
            Scheduled => &[Pending],
            Completed => &[Pending, Scheduled, Rejected],
            Rejected => &[Submitted, Pending, Scheduled],
            Canceled => &[Unconfirmed, Submitted, Pending, Scheduled, Rejected],
        }
    }

    /// Kazoo checks the caller first, then the source state.
    pub fn check(&self, from: PortState, to: PortState, role: Role) -> Result<(), TransitionError> {
        let permitted = match (role, to) {
            (Role::Authority, _) => true,
            (Role::Member, Submitted) => true,
            (Role::Member, Canceled) => from == Unconfirmed,
            (Role::Member, _) => false,
        };
        if !permitted {
            return Err(TransitionError::NotAllowed);
        }
        if self.sources(to).contains(&from) { Ok(()) } else { Err(TransitionError::InvalidFromState) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TransitionPolicy = TransitionPolicy { allow_submitted_to_scheduled: false };
    const LENIENT: TransitionPolicy = TransitionPolicy { allow_submitted_to_scheduled: true };

    #[test]
    fn parse_round_trip() {
        for st in PortState::ALL {
            assert_eq!(PortState::parse(st.as_str()), Some(st));
        }
        assert_eq!(PortState::parse("bogus"), None);
    }

    #[test]
    fn authority_table() {
        let allowed = [
            (Unconfirmed, Submitted),
            (Rejected, Submitted),
            (Submitted, Pending),
            (Pending, Scheduled),
            (Pending, Completed),
            (Scheduled, Completed),
            (Rejected, Completed),
            (Submitted, Rejected),
            (Pending, Rejected),
            (Scheduled, Rejected),
            (Unconfirmed, Canceled),
            (Submitted, Canceled),
            (Pending, Canceled),
            (Scheduled, Canceled),
            (Rejected, Canceled),
        ];
        for from in PortState::ALL {
            for to in PortState::ALL {
                let expected =
                    if allowed.contains(&(from, to)) { Ok(()) } else { Err(TransitionError::InvalidFromState) };
                if to == Unconfirmed {
                    assert!(STRICT.check(from, to, Role::Authority).is_err());
                    continue;
                }
                assert_eq!(STRICT.check(from, to, Role::Authority), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn members_may_submit_and_cancel_drafts_only() {
        assert_eq!(STRICT.check(Unconfirmed, Submitted, Role::Member), Ok(()));
        assert_eq!(STRICT.check(Rejected, Submitted, Role::Member), Ok(()));
        assert_eq!(STRICT.check(Unconfirmed, Canceled, Role::Member), Ok(()));
        assert_eq!(STRICT.check(Submitted, Canceled, Role::Member), Err(TransitionError::NotAllowed));
        assert_eq!(STRICT.check(Submitted, Pending, Role::Member), Err(TransitionError::NotAllowed));
        assert_eq!(STRICT.check(Pending, Completed, Role::Member), Err(TransitionError::NotAllowed));
        // permission is checked before the source state, as in Kazoo
        assert_eq!(STRICT.check(Completed, Pending, Role::Member), Err(TransitionError::NotAllowed));
        assert_eq!(STRICT.check(Completed, Submitted, Role::Member), Err(TransitionError::InvalidFromState));
    }

    #[test]
    fn submitted_to_scheduled_is_a_setting() {
        assert_eq!(STRICT.check(Submitted, Scheduled, Role::Authority), Err(TransitionError::InvalidFromState));
        assert_eq!(LENIENT.check(Submitted, Scheduled, Role::Authority), Ok(()));
    }

    #[test]
    fn groups() {
        assert_eq!(states_of_type("active").unwrap().len(), 5);
        assert_eq!(states_of_type("completed").unwrap(), &[Completed, Canceled]);
        assert_eq!(states_of_type("all").unwrap().len(), 7);
        assert!(states_of_type("prgressing").is_none());
    }
}
