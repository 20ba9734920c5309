//! Parsing a crossbar request (Kazoo 4.3's `api_resource` and `cb_context`) and authenticating its caller.
//!
//! `Ctx` is the extractor every authenticated JSON endpoint takes: the body is read (at most
//! 8,000,000 bytes, refused from `Content-Length` without reading), parsed into the envelope and
//! its `data`, then the token is checked. Errors come out in that order, as in Kazoo.

use super::envelope::RequestMeta;
use super::errors::ApiError;
use crate::app::write::{Ask, Who};
use crate::auth::Caller;
use crate::domain::ids::AccountId;
use crate::state::AppState;
use crate::store::directory::Account;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// `crossbar.max_upload_size`.
pub const MAX_BODY_BYTES: usize = 8_000_000;

pub fn max_size_error() -> ApiError {
    ApiError::validation(
        "file",
        "maxSize",
        json!({
            "message": format!("Payload or Files must not be more than {MAX_BODY_BYTES} bytes"),
            "target": MAX_BODY_BYTES,
        }),
    )
}

/// How long a client may take between two chunks of its body (slow clients are cut off).
pub const BODY_CHUNK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Reads the body as the chunks it arrived in (no copy), refusing it as soon as it is known to
/// be too large, or when the client stops sending for `BODY_CHUNK_TIMEOUT`.
pub async fn read_chunks(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> Result<Vec<bytes::Bytes>, ApiError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(max_size_error());
    }
    let mut chunks = Vec::new();
    let mut total = 0usize;
    loop {
        let next =
            tokio::time::timeout(BODY_CHUNK_TIMEOUT, payload.next()).await.map_err(|_| ApiError::RequestTimeout)?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| {
            ApiError::validation("body", "invalid", json!({ "message": format!("unreadable body: {e}") }))
        })?;
        total += chunk.len();
        if total > limit {
            return Err(max_size_error());
        }
        chunks.push(chunk);
    }
    Ok(chunks)
}

/// The whole body in one buffer (for JSON).
pub async fn read_body(req: &HttpRequest, payload: &mut Payload, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let mut chunks = read_chunks(req, payload, limit).await?;
    if chunks.len() == 1 {
        return Ok(chunks.remove(0));
    }
    let mut body = bytes::BytesMut::with_capacity(chunks.iter().map(bytes::Bytes::len).sum());
    for c in chunks {
        body.extend_from_slice(&c);
    }
    Ok(body.freeze())
}

/// The query string as Kazoo sees it: values are strings, a bare `?flag` is `true`.
pub fn parse_query(qs: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for part in qs.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (decode_component(k), Value::String(decode_component(v))),
            None => (decode_component(part), Value::Bool(true)),
        };
        map.insert(k, v);
    }
    map
}

fn decode_component(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s).decode_utf8_lossy().into_owned()
}

pub fn query_value(qs: &str, key: &str) -> Option<String> {
    parse_query(qs).get(key).and_then(|v| v.as_str().map(str::to_owned))
}

fn normalize_key(k: &str) -> String {
    k.to_lowercase().replace('-', "_")
}

fn json_invalid(message: String) -> ApiError {
    ApiError::validation("json", "invalid", json!({ "message": message, "target": "body" }))
}

fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in body.split(|b| *b == b'\n').enumerate() {
        if i + 1 == line {
            return offset + column;
        }
        offset += l.len() + 1;
    }
    offset
}

/// The parsed envelope (`req_json`) and its `data` (`req_data`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Body {
    pub envelope: Map<String, Value>,
    pub data: Value,
}

fn parse_json_envelope(raw: &[u8]) -> Result<Body, ApiError> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        let kind = if e.is_eof() { "truncated_json" } else { "invalid_json" };
        json_invalid(format!("{kind} around {}", byte_offset(raw, e.line(), e.column())))
    })?;
    let Value::Object(obj) = value else {
        return Err(json_invalid("All JSON must be valid".into()));
    };
    let envelope: Map<String, Value> = obj.into_iter().map(|(k, v)| (normalize_key(&k), v)).collect();
    check_envelope(envelope)
}

fn check_envelope(envelope: Map<String, Value>) -> Result<Body, ApiError> {
    match envelope.get("data") {
        None => Err(ApiError::validation(
            "data",
            "required",
            json!({ "message": "Field is required but missing", "value": Value::Object(envelope.clone()) }),
        )),
        Some(d) if !(d.is_object() || d.is_array()) => Err(ApiError::validation(
            "data",
            "type",
            json!({ "message": "Value did not match type(s): object, array", "target": ["object", "array"], "value": d }),
        )),
        Some(d) => Ok(Body { data: d.clone(), envelope }),
    }
}

/// Parses a JSON endpoint's body by its content type. An empty body is empty data.
pub fn parse_body(content_type: Option<&str>, raw: &[u8]) -> Result<Body, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(Body { envelope: Map::new(), data: json!({}) });
    }
    let mime =
        content_type.map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase()).unwrap_or_default();
    match mime.as_str() {
        "" | "application/json" | "application/x-json" => parse_json_envelope(raw),
        // curl -d without a content type: Kazoo re-reads a lone form key as JSON
        "application/x-www-form-urlencoded" => {
            let trimmed = raw.iter().position(|b| !b.is_ascii_whitespace()).map(|i| raw[i]);
            if matches!(trimmed, Some(b'{') | Some(b'[')) {
                return parse_json_envelope(raw);
            }
            let text = String::from_utf8_lossy(raw);
            let envelope = parse_query(&text).into_iter().map(|(k, v)| (normalize_key(&k), v)).collect();
            check_envelope(envelope)
        }
        other => Err(ApiError::UnsupportedMediaType(format!(
            "content type '{other}' is not accepted here; send application/json"
        ))),
    }
}

/// Finds the token: header, then `auth_token` in data/query/envelope, then Bearer.
fn find_token(req: &HttpRequest, body: &Body, query: &Map<String, Value>) -> Option<String> {
    let meta_token = req.extensions().get::<RequestMeta>().and_then(|m| m.auth_token.clone());
    meta_token.or_else(|| {
        req_value_in(&body.data, query, &body.envelope, "auth_token").and_then(|v| v.as_str().map(str::to_owned))
    })
}

fn req_value_in<'a>(
    data: &'a Value,
    query: &'a Map<String, Value>,
    envelope: &'a Map<String, Value>,
    key: &str,
) -> Option<&'a Value> {
    data.get(key).filter(|v| !v.is_null()).or_else(|| query.get(key)).or_else(|| envelope.get(key))
}

/// An authenticated crossbar request with a JSON body: the caller and what the request
/// carries (`Authed`, which it derefs to), and the body.
pub struct Ctx {
    pub authed: Authed,
    pub body: Body,
}

impl std::ops::Deref for Ctx {
    type Target = Authed;
    fn deref(&self) -> &Authed {
        &self.authed
    }
}

impl Ctx {
    pub fn data(&self) -> &Value {
        &self.body.data
    }

    /// `cb_context:req_value`: request data, then query string, then the envelope.
    pub fn req_value(&self, key: &str) -> Option<&Value> {
        req_value_in(&self.body.data, &self.query, &self.body.envelope, key)
    }

    pub fn req_str(&self, key: &str) -> Option<String> {
        match self.req_value(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// `kz_term:is_true`.
    pub fn req_true(&self, key: &str) -> bool {
        matches!(self.req_value(key), Some(Value::Bool(true))) || self.req_str(key).as_deref() == Some("true")
    }
}

/// Authorizes the caller on `/v2/accounts/{raw}/...`: a malformed or unknown account is 404,
/// an account outside the caller's tree 403.
pub async fn authorize_account(state: &AppState, caller: &Caller, raw: &str) -> Result<Arc<Account>, ApiError> {
    let id = AccountId::parse(raw).map_err(|_| ApiError::InvalidAccountId(raw.to_owned()))?;
    let account = state.directory.account(&id).await?.ok_or_else(|| ApiError::BadIdentifier(Some(id.to_string())))?;
    if !caller.may_access(&account) {
        return Err(ApiError::Forbidden(None));
    }
    Ok(account)
}

fn if_match(req: &HttpRequest) -> Option<String> {
    req.headers().get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(|v| v.trim().trim_matches('"').to_owned())
}

pub fn request_id(req: &HttpRequest) -> String {
    req.extensions().get::<RequestMeta>().map(|m| m.request_id.clone()).unwrap_or_default()
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| ApiError::Internal("application state missing".into()))
}

/// HTTP Basic with an account id as user and that account's API key (`pvt_api_key`) as
/// password: how Fone Dynamics clients authenticate.
pub async fn authenticate_basic(state: &AppState, header: &str) -> Result<Arc<Caller>, ApiError> {
    use base64::Engine;
    let encoded =
        header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic ")).ok_or(ApiError::InvalidCredentials)?;
    let decoded =
        base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| ApiError::InvalidCredentials)?;
    let decoded = String::from_utf8(decoded).map_err(|_| ApiError::InvalidCredentials)?;
    let (user, key) = decoded.split_once(':').ok_or(ApiError::InvalidCredentials)?;
    let id = AccountId::from_any(user).ok_or(ApiError::InvalidCredentials)?;
    let account = state.directory.account(&id).await?.ok_or(ApiError::InvalidCredentials)?;
    let expected = account.doc.api_key.as_deref().unwrap_or_default();
    // compare without leaking where the keys differ
    let same = !expected.is_empty()
        && expected.len() == key.len()
        && expected.bytes().zip(key.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        tracing::info!("basic authentication refused");
        return Err(ApiError::InvalidCredentials);
    }
    Ok(Arc::new(Caller { account, owner_id: None, expires: i64::MAX }))
}

/// An authenticated request; as itself, one whose body is not JSON (uploads) or not read at
/// all: the token comes from the headers or the query string.
pub struct Authed {
    pub state: web::Data<AppState>,
    pub query: Map<String, Value>,
    pub caller: Arc<Caller>,
    /// The caller as the one asking for a change.
    pub who: Who,
    pub request_id: String,
    pub if_match: Option<String>,
}

impl Authed {
    fn new(req: &HttpRequest, state: web::Data<AppState>, query: Map<String, Value>, caller: Arc<Caller>) -> Self {
        Authed { state, query, who: caller.who(), caller, request_id: request_id(req), if_match: if_match(req) }
    }

    /// Authorizes the caller on `/v2/accounts/{raw}/...` (see `authorize_account`).
    pub async fn account(&self, raw: &str) -> Result<Arc<Account>, ApiError> {
        authorize_account(&self.state, &self.caller, raw).await
    }

    /// What a change of a request reached through `account` is asked with.
    pub fn ask<'a>(&'a self, account: &'a Account) -> Ask<'a> {
        let (state, who, request_id) = (&self.state, &self.who, &self.request_id);
        Ask { state, who, through: account, request_id, if_match: self.if_match.as_deref() }
    }
}

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            let token = req.extensions().get::<RequestMeta>().and_then(|m| m.auth_token.clone());
            let caller = authenticate(&req, token).await?;
            Ok(Authed::new(&req, state, parse_query(req.query_string()), caller))
        })
    }
}

/// Authenticates the request's token (as `Ctx` does) without touching the body.
pub async fn authenticate(req: &HttpRequest, token: Option<String>) -> Result<Arc<Caller>, ApiError> {
    let state = app_state(req)?;
    let token = token.filter(|t| !t.is_empty()).ok_or(ApiError::InvalidCredentials)?;
    if let Some(m) = req.extensions_mut().get_mut::<RequestMeta>() {
        m.auth_token = Some(token.clone());
    }
    let caller = state.auth.authenticate(&token).await?;
    if let Some(claimed) = req.headers().get("x-auth-account-id").and_then(|v| v.to_str().ok())
        && claimed != caller.account_id().as_str()
    {
        return Err(ApiError::InvalidCredentials);
    }
    Ok(caller)
}

impl FromRequest for Ctx {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let state = app_state(&req)?;
            let raw = read_body(&req, &mut payload, MAX_BODY_BYTES).await?;
            let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let body = parse_body(content_type, &raw)?;
            let query = parse_query(req.query_string());
            let token = find_token(&req, &body, &query);
            let caller = authenticate(&req, token).await?;
            Ok(Ctx { authed: Authed::new(&req, state, query, caller), body })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_flags_and_values() {
        let q = parse_query("reason=approved+by+Jane&paginate&by_number=%2B1202");
        assert_eq!(q["reason"], "approved by Jane");
        assert_eq!(q["paginate"], true);
        assert_eq!(q["by_number"], "+1202");
    }

    #[test]
    fn json_bodies() {
        let b = parse_body(Some("application/json"), br#"{"data":{"a":1},"Auth-Token":"x"}"#).unwrap();
        assert_eq!(b.data, json!({"a": 1}));
        assert_eq!(b.envelope["auth_token"], "x");
        assert_eq!(parse_body(None, b"").unwrap().data, json!({}));
    }

    #[test]
    fn form_encoded_json_is_read_as_json() {
        let b = parse_body(Some("application/x-www-form-urlencoded"), br#"{"data":{"n":"a+b"}}"#).unwrap();
        assert_eq!(b.data, json!({"n": "a+b"}));
    }

    fn error_data(r: Result<Body, ApiError>) -> Value {
        match r {
            Err(e) => e.parts().2,
            Ok(b) => panic!("expected an error, got {b:?}"),
        }
    }

    #[test]
    fn bad_bodies() {
        let d = error_data(parse_body(None, br#"{"data":"#));
        assert_eq!(d["json"]["invalid"]["target"], "body");
        assert!(d["json"]["invalid"]["message"].as_str().unwrap().starts_with("truncated_json around"));
        let d = error_data(parse_body(None, br#"{"data" x}"#));
        assert!(d["json"]["invalid"]["message"].as_str().unwrap().starts_with("invalid_json around"));
        let d = error_data(parse_body(None, b"[1]"));
        assert_eq!(d["json"]["invalid"]["message"], "All JSON must be valid");
        let d = error_data(parse_body(None, br#"{"name":"x"}"#));
        assert_eq!(d["data"]["required"]["message"], "Field is required but missing");
        let d = error_data(parse_body(None, br#"{"data":5}"#));
        assert!(d["data"]["type"].is_object());
        let d = error_data(parse_body(Some("application/x-www-form-urlencoded"), b"name=x"));
        assert!(d["data"]["required"].is_object());
        assert!(matches!(parse_body(Some("text/csv"), b"a,b"), Err(ApiError::UnsupportedMediaType(_))));
        assert!(parse_body(None, b"\xff\xfe").is_err());
    }
}
