//! The one error type of the HTTP API, and its mapping to Kazoo's error envelope
//! (`kazoo-4.3-crossbar.md` §1). Rendering happens in `http::envelope`.

use crate::auth::AuthError;
use crate::couch::StoreError;
pub use crate::domain::validation::{ValidationErrors, dotted_path};
use actix_web::http::StatusCode;
use serde_json::{Map, Value, json};

/// `Ok` when there are no errors, else the 400 that lists them.
pub trait IntoResult {
    fn into_result(self) -> Result<(), ApiError>;
}

impl IntoResult for ValidationErrors {
    fn into_result(self) -> Result<(), ApiError> {
        if self.is_empty() { Ok(()) } else { Err(ApiError::Validation(self)) }
    }
}

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
