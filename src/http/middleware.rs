//! One middleware around every request: request id, CORS, a tracing span, and the Kazoo
//! envelope on every error, whatever produced it.

use super::envelope::{EnvelopeInfo, RequestMeta, render_error};
use crate::http::errors::ApiError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use tracing::Instrument;

const REQUEST_ID: &str = "x-request-id";

/// The caller's `X-Request-Id` when it is sane, else a new 32-hex id.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(crate::domain::ids::new_doc_id)
}

/// A token from the headers or the query string; a token in the body is added later
/// by the request extractor.
fn header_token(req: &ServiceRequest) -> Option<String> {
    let headers = req.headers();
    if let Some(t) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        return Some(t.to_owned());
    }
    if let Some(t) = super::request::query_value(req.query_string(), "auth_token") {
        return Some(t);
    }
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_owned())
}

fn is_cors(headers: &HeaderMap) -> bool {
    ["origin", "access-control-request-method", "access-control-request-headers"]
        .iter()
        .any(|h| headers.contains_key(*h))
}

fn add_cors_headers(headers: &mut HeaderMap) {
    let pairs: [(&str, &str); 5] = [
        ("access-control-allow-origin", "*"),
        ("access-control-allow-methods", "OPTIONS, GET, PUT, POST, PATCH, DELETE"),
        (
            "access-control-allow-headers",
            "content-type, depth, user-agent, x-http-method-override, x-file-size, x-requested-with, \
             if-modified-since, x-file-name, cache-control, x-auth-token, x-kazoo-cluster-id, if-match, \
             x-request-id, authorization, idempotency-key",
        ),
        (
            "access-control-expose-headers",
            "content-type, x-auth-token, x-request-id, x-kazoo-cluster-id, location, etag, idempotent-replayed",
        ),
        ("access-control-max-age", "86400"),
    ];
    for (name, value) in pairs {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
}

/// Whatever error reached here becomes an `ApiError`: ours as they are, actix's by status.
fn as_api_error(err: &actix_web::Error) -> ApiError {
    if let Some(api) = err.as_error::<ApiError>() {
        return api.clone();
    }
    match err.as_response_error().status_code() {
        StatusCode::NOT_FOUND => ApiError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::InvalidMethod,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType("unsupported content type".into()),
        s if s.is_client_error() => {
            ApiError::validation("request", "invalid", serde_json::json!({ "message": err.to_string() }))
        }
        _ => ApiError::Internal(err.to_string()),
    }
}

/// Where the end customer's pages are; their path carries the link's secret.
pub const CUSTOMER_PAGES: &str = "/customer/";

/// The path as it may be logged: a customer link's secret never is.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix(CUSTOMER_PAGES) {
        Some(rest) => {
            let tail = rest.split_once('/').map(|(_, t)| t).unwrap_or_default();
            let id = rest.split('-').next().unwrap_or_default();
            let id = if id.len() == 32 { id } else { "…" };
            format!("{CUSTOMER_PAGES}{id}-…/{tail}").into()
        }
        None => path.into(),
    }
}

/// A response whose error (if any) is rendered in the Kazoo envelope.
pub fn rendered(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let Some(err) = res.response().error() else { return res };
    let api = as_api_error(err);
    if let ApiError::Internal(detail) = &api {
        tracing::error!(%detail, "internal error");
    }
    let meta = res.request().extensions().get::<RequestMeta>().cloned().unwrap_or_default();
    let info = res.request().app_data::<web::Data<EnvelopeInfo>>().map(|d| d.get_ref().clone());
    let mut envelope = render_error(&api, &meta, info.as_ref());
    // keep headers a handler set on purpose (e.g. Allow)
    for (name, value) in res.response().headers() {
        if name != actix_web::http::header::CONTENT_TYPE && name != actix_web::http::header::CONTENT_LENGTH {
            envelope.headers_mut().insert(name.clone(), value.clone());
        }
    }
    res.into_response(envelope)
}

pub async fn crossbar(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = request_id(req.headers());
    let customer_page = req.path().starts_with(CUSTOMER_PAGES);
    // the customer's pages are same-origin only
    let cors = is_cors(req.headers()) && !customer_page;
    req.extensions_mut().insert(RequestMeta { request_id: id.clone(), auth_token: header_token(&req) });
    // at ERROR level so the request id is on every line whatever LOG is
    let span =
        tracing::error_span!("request", request_id = %id, method = %req.method(), path = %loggable_path(req.path()));

    if req.method() == Method::OPTIONS {
        let mut resp = HttpResponse::Ok().finish();
        add_cors_headers(resp.headers_mut());
        resp.headers_mut().insert(HeaderName::from_static(REQUEST_ID), HeaderValue::from_str(&id).unwrap());
        return Ok(req.into_response(resp));
    }

    let started = std::time::Instant::now();
    // the request cannot be cloned before routing; errors that escape as `Err` (rare: actix
    // turns handler errors into responses) are at least rendered as an ApiError
    let mut res = match next.call(req).instrument(span.clone()).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(err) => return Err(as_api_error(&err).into()),
    };

    res = span.in_scope(|| rendered(res));

    let headers = res.headers_mut();
    headers.insert(HeaderName::from_static(REQUEST_ID), HeaderValue::from_str(&id).unwrap());
    if cors {
        add_cors_headers(headers);
    }
    let elapsed = started.elapsed();
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let method = res.request().method().as_str().to_owned();
    let metrics = crate::metrics::get();
    metrics.requests.with_label_values(&[route.as_str(), method.as_str(), res.status().as_str()]).inc();
    metrics.request_seconds.with_label_values(&[route.as_str(), method.as_str()]).observe(elapsed.as_secs_f64());
    span.in_scope(|| tracing::info!(status = res.status().as_u16(), elapsed_ms = elapsed.as_millis() as u64, "served"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn customer_link_secrets_are_never_logged() {
        let id = "0123456789abcdef0123456789abcdef";
        let secret = "s".repeat(43);
        assert_eq!(loggable_path(&format!("/customer/{id}-{secret}/sign")), format!("/customer/{id}-…/sign"));
        assert_eq!(loggable_path(&format!("/customer/{id}-{secret}")), format!("/customer/{id}-…/"));
        assert_eq!(loggable_path("/customer/garbage-with-secret"), "/customer/…-…/");
        assert_eq!(loggable_path("/v2/accounts/x"), "/v2/accounts/x");
    }
}
