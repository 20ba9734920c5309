//! Kazoo's JSON envelope around every answer (Kazoo 4.3's `crossbar_util`).

use crate::http::errors::ApiError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, Responder, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

/// What every envelope says about the server: the node hash and the version.
#[derive(Debug, Clone)]
pub struct EnvelopeInfo {
    pub node: String,
    pub version: String,
}

impl EnvelopeInfo {
    /// `node` is base64url (no padding) of md5 of the node name, 22 characters, as
    /// `kz_nodes:node_encoded`.
    pub fn new(node_name: &str) -> Self {
        Self {
            node: URL_SAFE_NO_PAD.encode(Md5::digest(node_name.as_bytes())),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Per-request facts the envelope repeats: kept in the request's extensions.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: String,
    /// The raw token the caller sent, echoed back as Kazoo does.
    pub auth_token: Option<String>,
}

fn base_envelope(meta: &RequestMeta, info: Option<&EnvelopeInfo>) -> Map<String, Value> {
    let mut env = Map::new();
    env.insert("request_id".into(), json!(meta.request_id));
    env.insert("timestamp".into(), json!(crate::domain::time::iso8601(chrono::Utc::now())));
    if let Some(info) = info {
        env.insert("node".into(), json!(info.node));
        env.insert("version".into(), json!(info.version));
    }
    env
}

fn json_response(status: StatusCode, body: &Map<String, Value>) -> HttpResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    HttpResponse::build(status).insert_header((header::CONTENT_TYPE, "application/json")).body(bytes)
}

/// The error envelope: `auth_token` is always present (`"undefined"` without a token).
pub fn render_error(err: &ApiError, meta: &RequestMeta, info: Option<&EnvelopeInfo>) -> HttpResponse {
    let (status, message, data) = err.parts();
    let mut env = base_envelope(meta, info);
    env.insert("auth_token".into(), json!(meta.auth_token.as_deref().unwrap_or("undefined")));
    env.insert("status".into(), json!("error"));
    env.insert("message".into(), json!(message));
    env.insert("error".into(), json!(status.as_u16().to_string()));
    env.insert("data".into(), data);
    if let Some(extra) = err.extra_members() {
        env.extend(extra);
    }
    json_response(status, &env)
}

/// A successful answer: `data` plus the envelope fields and headers around it.
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    data: Value,
    revision: Option<String>,
    extra: Map<String, Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Reply {
    pub fn ok(data: Value) -> Self {
        Self { status: StatusCode::OK, data, revision: None, extra: Map::new(), headers: Vec::new() }
    }

    /// 201 with a `Location` header, as Cowboy answers a PUT that created something.
    pub fn created(data: Value, location: &str) -> Self {
        Self::ok(data).created_at(location)
    }

    /// This answer as a 201 with a `Location` header.
    pub fn created_at(mut self, location: &str) -> Self {
        self.status = StatusCode::CREATED;
        self.with_header(header::LOCATION, location)
    }

    /// The document's `_rev`: the envelope `revision` and, on GET, the `ETag`.
    pub fn with_revision(mut self, rev: Option<&str>) -> Self {
        self.revision = rev.map(str::to_owned);
        self
    }

    /// A list's revision is opaque: the md5 of its data, as crossbar's `automatic`.
    pub fn with_automatic_revision(mut self) -> Self {
        let bytes = serde_json::to_vec(&self.data).unwrap_or_default();
        self.revision = Some(hex::encode(Md5::digest(bytes)));
        self
    }

    /// Extra envelope members (`page_size`, `start_key`, `next_start_key`).
    pub fn with_envelope(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }
}

impl Responder for Reply {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, req: &HttpRequest) -> HttpResponse {
        let meta = req.extensions().get::<RequestMeta>().cloned().unwrap_or_default();
        let info = req.app_data::<web::Data<EnvelopeInfo>>();
        let mut env = base_envelope(&meta, info.map(|i| i.get_ref()));
        env.insert("status".into(), json!("success"));
        env.insert("data".into(), self.data);
        if let Some(token) = meta.auth_token {
            env.insert("auth_token".into(), json!(token));
        }
        if let Some(rev) = &self.revision {
            env.insert("revision".into(), json!(rev));
        }
        env.extend(self.extra);
        let mut resp = json_response(self.status, &env);
        let headers = resp.headers_mut();
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        if req.method() == actix_web::http::Method::GET {
            if let Some(etag) = self.revision.and_then(|r| HeaderValue::from_str(&format!("\"{r}\"")).ok()) {
                headers.insert(header::ETAG, etag);
            }
            headers.insert(header::EXPIRES, HeaderValue::from_static("Fri, 01 Jan 1999 00:00:00 GMT"));
        }
        resp
    }
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    /// A bare rendering; the envelope middleware re-renders it with the request's id and token.
    fn error_response(&self) -> actix_web::HttpResponse {
        render_error(self, &RequestMeta::default(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_is_22_chars() {
        assert_eq!(EnvelopeInfo::new("kazoo_port_requests@host").node.len(), 22);
    }
}
