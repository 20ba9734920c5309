//! `Idempotency-Key` on the changes of port requests (create, moves, edits, comments, uploads,
//! deletes, and the Fone Dynamics submission), on every instance alike: the key's record lives
//! in CouchDB (`idempotency:<caller>:<sha256 of the key>` in the service's database).
//!
//! The first request with a key creates the record (a creation, decided as every write is, so
//! of simultaneous requests with one key exactly one does the work), makes the change, and
//! stores its answer. The same request again within 24 hours gets that answer (status, body,
//! `Location`, `ETag`) without the work being done again; one still being made is waited for
//! (up to 5 s, then 409); another request under the same key is a 422. Server-side failures
//! (5xx) are not kept: the record goes, and the client's retry makes the change. The token in
//! the envelope is never stored: a replay carries the token of the request it answers.
//! Customer links are not covered: their answer holds a secret the service never stores.

use super::envelope::RequestMeta;
use super::errors::ApiError;
use super::request::{MAX_BODY_BYTES, authenticate_basic, max_size_error};
use crate::domain::idempotency::{self as rules, Answer, IdempotencyDoc, KEPT_HEADERS, Key, Seen};
use crate::state::AppState;
use crate::store::{StoreError, dbs};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const HEADER: &str = "idempotency-key";
/// How long a request waits for the same request, still being made elsewhere.
const WAIT: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// The requests a key applies to: the changes of port requests.
pub fn covered(method: &Method, path: &str) -> bool {
    let change = matches!(*method, Method::PUT | Method::POST | Method::PATCH | Method::DELETE);
    let kazoo =
        path.starts_with("/v2/accounts/") && path.contains("/port_requests") && !path.ends_with("/customer_link");
    let fone = path.starts_with("/v2/Properties/") && path.ends_with("/Porting") && *method == Method::POST;
    change && (kazoo || fone)
}

/// Who is asking, as a key's scope: a key is the caller's own. `None` when the request does not
/// authenticate (the handler answers it, and nothing is kept).
async fn scope(req: &ServiceRequest, state: &AppState) -> Option<String> {
    let token = req.extensions().get::<RequestMeta>().and_then(|m| m.auth_token.clone());
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        let caller = state.auth.authenticate(&token).await.ok()?;
        return Some(format!("{}:{}", caller.account_id(), caller.owner_id.as_deref().unwrap_or("-")));
    }
    let basic = req.headers().get("authorization")?.to_str().ok()?;
    let caller = authenticate_basic(state, basic).await.ok()?;
    Some(format!("{}:api", caller.account_id()))
}

/// The whole body, read here and put back for the handler.
async fn buffer_body(req: &mut ServiceRequest) -> Result<bytes::Bytes, ApiError> {
    let mut payload = req.take_payload();
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidRequest(format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(max_size_error());
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    req.set_payload(Payload::from(body.clone()));
    Ok(body)
}

pub async fn idempotency(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(raw) = req.headers().get(HEADER).cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if !covered(req.method(), req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let key = match raw.to_str().map_err(|_| String::from("Idempotency-Key is not text")).and_then(Key::parse) {
        Ok(key) => key,
        Err(why) => return Ok(req.error_response(ApiError::InvalidRequest(why))),
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let Some(scope) = scope(&req, &state).await else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let body = match buffer_body(&mut req).await {
        Ok(body) => body,
        Err(e) => return Ok(req.error_response(e)),
    };
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or_else(|| req.path());
    let print = rules::fingerprint(req.method().as_str(), path, content_type, &body);
    let id = key.record_id(&scope);

    let deadline = Instant::now() + WAIT;
    let mut stale_rev = None;
    for _ in 0..200 {
        let mut record = rules::new_record(&id, &print, now_ms());
        if let Some(rev) = stale_rev.take() {
            record.rev = rev;
        }
        match state.couch.save_doc(dbs::SERVICE, &mut record).await {
            Ok(_) => return make_and_keep(req, next, &state, record).await,
            Err(StoreError::Conflict) => {}
            Err(e) => return Ok(req.error_response(ApiError::from(e))),
        }
        let stored = match state.couch.get_settled(dbs::SERVICE, &id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => continue,
            Err(e) => return Ok(req.error_response(ApiError::from(e))),
        };
        let Ok(stored) = serde_json::from_value::<IdempotencyDoc>(stored) else { continue };
        match rules::seen(&stored, &print, now_ms()) {
            Seen::Replay(answer) => return Ok(replay(req, answer)),
            Seen::Mismatch => return Ok(req.error_response(ApiError::IdempotencyKeyReused)),
            Seen::Stale => stale_rev = Some(stored.rev),
            Seen::InProgress if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Seen::InProgress => break,
        }
    }
    Ok(req.error_response(ApiError::IdempotencyInProgress))
}

/// Makes the change (the rest of the chain) and keeps its answer in `record`.
async fn make_and_keep(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    state: &AppState,
    mut record: IdempotencyDoc,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = super::middleware::rendered(next.call(req).await?.map_into_boxed_body());
    let (http_req, response) = res.into_parts();
    let status = response.status();
    let headers: Vec<(String, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|h| Some(((*h).to_owned(), response.headers().get(*h)?.to_str().ok()?.to_owned())))
        .collect();
    let (head, body) = response.into_parts();
    let bytes = actix_web::body::to_bytes(body).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    if rules::keeps(status.as_u16()) {
        let answer = Answer { status: status.as_u16(), headers, body: without_token(&bytes) };
        rules::answered(&mut record, &answer);
        if let Err(e) = state.couch.save_doc(dbs::SERVICE, &mut record).await {
            tracing::warn!(error = %e, "the answer of an Idempotency-Key could not be kept");
        }
    } else if let Some(rev) = record.rev.get()
        && let Err(e) = state.couch.delete(dbs::SERVICE, &record.id, rev).await
    {
        tracing::warn!(error = %e, "the record of a failed Idempotency-Key stays until it is abandoned");
    }
    Ok(ServiceResponse::new(http_req, head.set_body(BoxBody::new(bytes))))
}

/// The envelope as kept: without the caller's token.
fn without_token(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut env)) if env.contains_key("auth_token") => {
            env.insert("auth_token".into(), json!("undefined"));
            serde_json::to_vec(&env).unwrap_or_else(|_| body.to_vec())
        }
        _ => body.to_vec(),
    }
}

/// The kept answer, given again, with this request's token in its envelope.
fn replay(req: ServiceRequest, answer: Answer) -> ServiceResponse<BoxBody> {
    let token = req.extensions().get::<RequestMeta>().and_then(|m| m.auth_token.clone());
    let body = match (serde_json::from_slice::<Value>(&answer.body), token) {
        (Ok(Value::Object(mut env)), Some(token)) if env.contains_key("auth_token") => {
            env.insert("auth_token".into(), json!(token));
            serde_json::to_vec(&env).unwrap_or(answer.body)
        }
        _ => answer.body,
    };
    let status = actix_web::http::StatusCode::from_u16(answer.status).unwrap_or(actix_web::http::StatusCode::OK);
    let mut resp = HttpResponse::build(status);
    for (name, value) in &answer.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            resp.insert_header((n, v));
        }
    }
    resp.insert_header(("idempotent-replayed", "true"));
    req.into_response(resp.body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_apply_to_changes_of_port_requests_only() {
        let base = "/v2/accounts/a/port_requests";
        assert!(covered(&Method::PUT, base));
        assert!(covered(&Method::PATCH, &format!("{base}/x/submitted")));
        assert!(covered(&Method::PUT, &format!("{base}/x/comments")));
        assert!(covered(&Method::PUT, &format!("{base}/x/attachments")));
        assert!(covered(&Method::POST, "/v2/Properties/p/Porting"));
        assert!(!covered(&Method::GET, base));
        assert!(!covered(&Method::PUT, &format!("{base}/x/customer_link")), "its answer holds a secret");
        assert!(!covered(&Method::POST, "/customer/abc/sign"));
    }

    #[test]
    fn the_token_is_never_kept() {
        let kept = without_token(br#"{"auth_token":"secret","data":{}}"#);
        assert!(!String::from_utf8(kept).unwrap().contains("secret"));
        assert_eq!(without_token(b"%PDF"), b"%PDF");
    }
}
