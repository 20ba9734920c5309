//! What a use case can answer instead of doing what was asked: the domain's reasons, not HTTP's.
//! `http::errors` maps each to Kazoo's envelope (and the Fone Dynamics API's format); the
//! import and the customer pages show them their own way.

use crate::domain::comments::PrivacyViolation;
use crate::domain::documents::fields::Unreadable;
use crate::domain::number_progress::NumberMoveError;
use crate::domain::port_state::{PortState, TransitionError};
use crate::domain::validation::ValidationErrors;
use crate::store::StoreError;
use serde_json::Value;

/// Why a number cannot be on the request.
#[derive(Debug, Clone, PartialEq)]
pub enum NumberTaken {
    /// On another open request of the same account.
    OnRequest(String),
    /// On an open request of another account.
    OtherAccount,
    /// Assigned to an account in the numbers databases.
    InService,
    /// Found in a numbers database, in a state a port cannot take over, when the request was
    /// being completed.
    NotActivatable,
    /// Claims for it kept changing hands while this request asked: try again.
    Busy,
}

/// A number refused, as the client wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberRefused {
    pub raw: String,
    pub why: NumberTaken,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// No such port request reachable from the account (missing, deleted, elsewhere, or an id
    /// that cannot be one).
    #[error("no port request {0}")]
    NoRequest(String),
    /// An account id that cannot be one.
    #[error("invalid account id {0}")]
    BadAccountId(String),
    /// No such account.
    #[error("no account {0}")]
    NoAccount(String),
    /// No such attachment on the request.
    #[error("no attachment {0}")]
    NoAttachment(String),
    /// The caller may not do this (or reach this account).
    #[error("forbidden")]
    Forbidden,
    /// Field errors, by dotted path.
    #[error("invalid fields")]
    Invalid(ValidationErrors),
    /// Refused by the Fone Dynamics API's own rules: its fields and codes.
    #[error("porting request refused")]
    Fone(Vec<crate::domain::fone::FieldError>),
    /// A request value that makes no sense.
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("numbers refused")]
    Numbers(Vec<NumberRefused>),
    /// The state machine refuses the move to `to`.
    #[error("cannot move to {to}")]
    Transition { to: PortState, error: TransitionError },
    #[error("cannot move the number {number}")]
    NumberMove { number: String, to: PortState, error: NumberMoveError },
    /// Full edits and number changes only while unconfirmed or rejected.
    #[error("not editable while {0}")]
    NotEditable(PortState),
    /// Deleting only while unconfirmed, rejected or canceled.
    #[error("not deletable in this state")]
    NotDeletable,
    #[error("comment refused")]
    Comment(PrivacyViolation),
    /// The per-number port charge must be accepted first: the quote.
    #[error("charges must be accepted")]
    AcceptCharges(Value),
    /// A customer link works only while the request is the customer's to complete.
    #[error("not open to the customer while {0}")]
    NotOpenToCustomer(PortState),
    /// The letter a customer was shown is not the one they would sign.
    #[error("the letter changed")]
    LetterChanged,
    /// Met a concurrent change it may not be made over (`If-Match`, a full replace, or many in
    /// a row).
    #[error("conflicting change")]
    Conflict,
    /// `If-Match` names another revision.
    #[error("revision mismatch")]
    PreconditionFailed,
    /// The stored request holds something the rule needs and cannot read.
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    #[error("datastore: {0}")]
    Store(#[from] StoreError),
    /// Something this change needs is not available now (number documents, the LOA renderer).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The LOA renderer ran and failed.
    #[error("the LOA renderer failed: {0}")]
    RendererFailed(String),
}

impl AppError {
    /// A single field error.
    pub fn field(path: &str, code: &str, detail: Value) -> Self {
        AppError::Invalid(ValidationErrors::single(path, code, detail))
    }

    /// Is it the client's to fix (a 4xx), rather than the service's (a 5xx)?
    pub fn is_refusal(&self) -> bool {
        !matches!(self, AppError::Store(_) | AppError::Unavailable(_) | AppError::RendererFailed(_))
    }
}

/// `Ok` when there are no errors, else the refusal that lists them.
pub trait IntoResult {
    fn into_result(self) -> Result<(), AppError>;
}

impl IntoResult for ValidationErrors {
    fn into_result(self) -> Result<(), AppError> {
        if self.is_empty() { Ok(()) } else { Err(AppError::Invalid(self)) }
    }
}
