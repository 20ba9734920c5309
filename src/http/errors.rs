//! The one error type of the HTTP API and its mapping to Kazoo's error envelope
//! (Kazoo 4.3's `crossbar_util`), and to the Fone Dynamics API's error body: every refusal of a
//! use case (`AppError`) is worded here, in one place. Rendering happens in `http::envelope`.

use crate::app::error::{AppError, NumberRefused, NumberTaken};
use crate::auth::AuthError;
use crate::domain::comments::PrivacyViolation;
use crate::domain::number_progress::NumberMoveError;
use crate::domain::port_state::TransitionError;
pub use crate::domain::validation::{ValidationErrors, dotted_path};
use crate::store::StoreError;
use actix_web::http::StatusCode;
use serde_json::{Map, Value, json};

/// A refusal on the Fone Dynamics API: a code and a message per field, on top of the envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct FoneErrors(pub Vec<crate::domain::fone::FieldError>);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("porting request refused")]
    Fone(FoneErrors),
    #[error("validation error")]
    Validation(ValidationErrors),
    /// A request value that makes no sense (crossbar's `invalid_request`, but a 400).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("accept charges")]
    AcceptCharges(Value),
    #[error("forbidden")]
    Forbidden(Option<Value>),
    #[error("bad identifier")]
    BadIdentifier(Option<String>),
    #[error("invalid account_id")]
    InvalidAccountId(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    InvalidMethod,
    #[error("not acceptable")]
    NotAcceptable(String),
    #[error("conflicting documents")]
    Conflict,
    /// A stored document this service cannot act on.
    #[error("unreadable document: {0}")]
    Unreadable(String),
    #[error("precondition failed")]
    PreconditionFailed,
    /// An `Idempotency-Key` first used with another request.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// The request first made with this `Idempotency-Key` is still being made.
    #[error("idempotency key in progress")]
    IdempotencyInProgress,
    #[error("request timeout")]
    RequestTimeout,
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    #[error("datastore unreachable")]
    DatastoreUnreachable,
    #[error("datastore fault")]
    DatastoreFault,
    #[error("bad gateway: {0}")]
    BadGateway(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn msg(m: &str) -> Value {
    json!({ "message": m })
}

impl ApiError {
    /// A single validation error at `path`.
    pub fn validation(path: &str, code: &str, detail: Value) -> Self {
        Self::Validation(ValidationErrors::single(path, code, detail))
    }

    /// The HTTP status, the envelope `message` and the envelope `data`.
    pub fn parts(&self) -> (StatusCode, String, Value) {
        use ApiError::*;
        let (status, message, data) = match self {
            Fone(FoneErrors(list)) => {
                let mut errors = ValidationErrors::new();
                for e in list {
                    errors.add(&e.field, e.code, json!({ "message": e.message }));
                }
                (StatusCode::BAD_REQUEST, "validation error", errors.to_value())
            }
            Validation(errors) => (StatusCode::BAD_REQUEST, "validation error", errors.to_value()),
            InvalidRequest(m) => (StatusCode::BAD_REQUEST, "invalid_request", msg(m)),
            InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials", msg("invalid credentials")),
            AcceptCharges(quote) => (StatusCode::PAYMENT_REQUIRED, "accept charges", quote.clone()),
            Forbidden(extra) => {
                let mut data = extra.clone().filter(Value::is_object).unwrap_or_else(|| json!({}));
                data["message"] = json!("forbidden");
                (StatusCode::FORBIDDEN, "forbidden", data)
            }
            BadIdentifier(cause) => {
                let data = match cause {
                    Some(c) => json!({ "cause": c, "message": "bad identifier" }),
                    None => msg("bad identifier"),
                };
                (StatusCode::NOT_FOUND, "bad_identifier", data)
            }
            InvalidAccountId(id) => (
                StatusCode::NOT_FOUND,
                "bad identifier",
                msg(&format!("invalid account_id '{}'", id.chars().take(64).collect::<String>())),
            ),
            NotFound => (StatusCode::NOT_FOUND, "not_found", msg("not found")),
            InvalidMethod => (StatusCode::METHOD_NOT_ALLOWED, "invalid_method", msg("method not allowed")),
            NotAcceptable(what) => (StatusCode::NOT_ACCEPTABLE, "not_acceptable", msg(what)),
            Conflict => (StatusCode::CONFLICT, "datastore_conflict", msg("conflicting documents")),
            Unreadable(what) => (StatusCode::UNPROCESSABLE_ENTITY, "unreadable_document", msg(what)),
            PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                msg("If-Match does not match the current revision"),
            ),
            IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                msg("this Idempotency-Key was first used with another request (method, path or body): use a new key"),
            ),
            IdempotencyInProgress => (
                StatusCode::CONFLICT,
                "idempotency_key_in_progress",
                msg("the request first made with this Idempotency-Key is still being made: try again in a moment"),
            ),
            RequestTimeout => {
                (StatusCode::REQUEST_TIMEOUT, "request_timeout", msg("the request body did not arrive in time"))
            }
            UnsupportedMediaType(what) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", msg(what)),
            DatastoreUnreachable => {
                (StatusCode::SERVICE_UNAVAILABLE, "datastore_unreachable", msg("datastore timeout"))
            }
            DatastoreFault => (StatusCode::SERVICE_UNAVAILABLE, "datastore_fault", msg("datastore fatal error")),
            BadGateway(m) => (StatusCode::BAD_GATEWAY, "bad_gateway", msg(m)),
            Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", msg(m)),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", msg("internal error")),
        };
        (status, message.to_owned(), data)
    }
}

impl ApiError {
    /// Members added at the top of the error envelope (the Fone Dynamics error body).
    pub fn extra_members(&self) -> Option<Map<String, Value>> {
        let ApiError::Fone(FoneErrors(list)) = self else { return None };
        let mut extra = Map::new();
        extra.insert("ErrorCode".into(), json!(400));
        extra.insert("ErrorMessage".into(), json!("The porting request is not valid"));
        extra.insert(
            "Errors".into(),
            json!(
                list.iter()
                    .map(|e| json!({ "Field": e.field, "Code": e.code, "Message": e.message }))
                    .collect::<Vec<_>>()
            ),
        );
        Some(extra)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::BadIdentifier(None),
            StoreError::Conflict => ApiError::Conflict,
            StoreError::Unreachable(detail) | StoreError::Disconnected(detail) => {
                tracing::warn!(%detail, "CouchDB unreachable");
                ApiError::DatastoreUnreachable
            }
            StoreError::Fault(detail) => {
                tracing::error!(%detail, "CouchDB error");
                ApiError::DatastoreFault
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid(why) => {
                tracing::info!(why, "authentication refused");
                ApiError::InvalidCredentials
            }
            AuthError::Store(s) => s.into(),
        }
    }
}

/// Kazoo's messages for the numbers a request cannot have.
pub const ON_A_REQUEST: &str = "Number is on a port request already: ";
pub const OTHER_ACCOUNT: &str = "Number is being ported for a different account";
pub const EXISTS: &str = "Number exists on the system already";
/// Our own: claims for the number kept changing hands while this request asked for it.
pub const BUSY: &str = "Number is being claimed by another port request right now; try again";

/// What a refused number is told, Kazoo's way.
pub fn number_message(why: &NumberTaken) -> String {
    match why {
        NumberTaken::OnRequest(id) => format!("{ON_A_REQUEST}{id}"),
        NumberTaken::OtherAccount => OTHER_ACCOUNT.to_owned(),
        NumberTaken::InService | NumberTaken::NotActivatable => EXISTS.to_owned(),
        NumberTaken::Busy => BUSY.to_owned(),
    }
}

/// Refused numbers as Kazoo's validation errors, keyed by the number as the client wrote it.
pub fn number_errors(refused: &[NumberRefused]) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    for n in refused {
        // (Kazoo's code: a number refused when the request is completed is an activation's)
        let code = if n.why == NumberTaken::NotActivatable { "activation" } else { "type" };
        errors.add(&dotted_path(&[&n.raw]), code, json!({ "message": number_message(&n.why), "cause": n.raw }));
    }
    errors
}

fn transition_error(e: TransitionError, to: impl serde::Serialize) -> ApiError {
    let message = match e {
        TransitionError::NotAllowed => {
            "you're not allowed to change to new state from current state, please contact your port authority"
        }
        TransitionError::InvalidFromState => "Cannot move to new state from current state",
    };
    ApiError::validation("port_state", "enum", json!({ "message": message, "cause": to }))
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NoRequest(id) | AppError::NoAttachment(id) => ApiError::BadIdentifier(Some(id)),
            AppError::BadAccountId(raw) => ApiError::InvalidAccountId(raw),
            AppError::NoAccount(id) => ApiError::BadIdentifier(Some(id)),
            AppError::Forbidden => ApiError::Forbidden(None),
            AppError::Invalid(errors) => ApiError::Validation(errors),
            AppError::Fone(errors) => ApiError::Fone(FoneErrors(errors)),
            AppError::BadRequest(m) => ApiError::InvalidRequest(m),
            AppError::Numbers(refused) => ApiError::Validation(number_errors(&refused)),
            AppError::Transition { to, error } => transition_error(error, to),
            AppError::NumberMove { number, to, error } => match error {
                NumberMoveError::Transition(t) => transition_error(t, to),
                NumberMoveError::NotOnRequest => ApiError::validation(
                    &dotted_path(&["numbers", &number]),
                    "not_found",
                    json!({ "message": "The number is not on this port request (or was ported or canceled already)", "cause": number }),
                ),
                NumberMoveError::RequestNotInProgress(state) => ApiError::validation(
                    "port_state",
                    "enum",
                    json!({
                        "message": "Numbers move on their own only while the request is submitted, pending, scheduled or rejected",
                        "cause": state,
                    }),
                ),
                NumberMoveError::Unreadable(u) => AppError::Unreadable(u).into(),
            },
            AppError::NotEditable(state) => ApiError::validation(
                state.as_str(),
                "type",
                json!({ "message": "Updating port requests not allowed in current port state", "cause": state }),
            ),
            AppError::NotDeletable => ApiError::InvalidMethod,
            AppError::Comment(PrivacyViolation::NotAllowed) => {
                ApiError::Forbidden(Some(json!({ "comments": { "forbidden": {
                "message": "you're not allowed to make private comment or set action_required",
                "cause": "comments" } } })))
            }
            AppError::Comment(PrivacyViolation::PrivateActionRequired) => ApiError::validation(
                "comments",
                "rejected",
                json!({ "message": "setting action_required on private comment is not allowed", "cause": "comments" }),
            ),
            AppError::AcceptCharges(quote) => ApiError::AcceptCharges(quote),
            AppError::NotOpenToCustomer(state) => ApiError::validation(
                "port_state",
                "enum",
                json!({ "message": "A customer link can only be made while the request is unconfirmed or rejected", "cause": state }),
            ),
            AppError::LetterChanged => ApiError::validation(
                "loa",
                "invalid",
                json!({ "message": "The letter changed since this page was opened: review it again, then sign" }),
            ),
            AppError::Conflict => ApiError::Conflict,
            AppError::PreconditionFailed => ApiError::PreconditionFailed,
            AppError::Unreadable(u) => ApiError::Unreadable(u.to_string()),
            AppError::Store(e) => e.into(),
            AppError::Unavailable(m) => ApiError::Unavailable(m),
            AppError::RendererFailed(m) => ApiError::BadGateway(m),
        }
    }
}

/// A refusal of a Fone Dynamics submission, the Fone way: Kazoo's refusal of a number is
/// answered on its `PortingNumbers[i]` (`numbers`: the body's numbers, in order).
pub fn fone_error(e: AppError, numbers: &[String]) -> ApiError {
    use crate::domain::fone::FieldError;
    let field = |path: &str, message: String| match numbers.iter().position(|n| n == path) {
        Some(i) => FieldError { field: format!("PortingNumbers[{i}].Number"), code: "NumberUnavailable", message },
        None => FieldError { field: path.to_owned(), code: "Invalid", message },
    };
    let errors: Vec<FieldError> = match e {
        AppError::Numbers(refused) => refused.iter().map(|n| field(&n.raw, number_message(&n.why))).collect(),
        AppError::Invalid(v) => v
            .to_value()
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(key, codes)| {
                        let message = codes
                            .as_object()
                            .and_then(|c| c.values().next())
                            .and_then(|m| m["message"].as_str())
                            .unwrap_or("invalid");
                        field(key, message.to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default(),
        other => return other.into(),
    };
    ApiError::Fone(FoneErrors(errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_keeps_extra_data() {
        let (status, message, data) = ApiError::Forbidden(Some(json!({"comments": {}}))).parts();
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(message, "forbidden");
        assert_eq!(data, json!({"comments": {}, "message": "forbidden"}));
    }
}
