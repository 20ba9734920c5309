//! The Fone Dynamics porting API (`POST /v2/Properties/{PropertySid}/Porting` and the status
//! queries) on the same port requests: a Property is a Kazoo account, an Account any ancestor.

use super::resource;
use crate::auth::Caller;
use crate::couch::{ViewQuery, dbs, design};
use crate::directory::Account;
use crate::domain::fone::{self, FieldError};
use crate::domain::ids::new_doc_id;
use crate::domain::time::unix_to_gregorian;
use crate::error::{ApiError, FoneErrors};
use crate::http::envelope::RequestMeta;
use crate::http::request::{
    Body, Ctx, MAX_BODY_BYTES, authenticate, authenticate_basic, authorize_account, parse_query, read_body,
};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v2/Properties/{sid}/Porting").route(web::post().to(submit)))
        .service(resource("/v2/Properties/{sid}/Porting/Status").route(web::get().to(property_status)))
        .service(resource("/v2/Accounts/{sid}/Porting/Status").route(web::get().to(account_status)));
}

fn fone_error(field: &str, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Fone(FoneErrors(vec![FieldError { field: field.to_owned(), code, message: message.into() }]))
}

/// A Kazoo token, or HTTP Basic with the account id and its API key.
async fn caller(req: &HttpRequest) -> Result<Arc<Caller>, ApiError> {
    let token = req.extensions().get::<RequestMeta>().and_then(|m| m.auth_token.clone());
    if token.is_some() {
        return authenticate(req, token).await;
    }
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::Internal("state".into()))?;
    match req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(basic) => authenticate_basic(state, basic).await,
        None => Err(ApiError::InvalidCredentials),
    }
}

fn timezone(account: &Account) -> chrono_tz::Tz {
    account.own_timezone().and_then(crate::domain::schedule::parse_timezone).unwrap_or(chrono_tz::UTC)
}

/// The `AccountSid` shown for a property's request: the caller's account when it is above the
/// property, else the property's parent.
fn account_sid(caller: &Caller, property: &Account) -> String {
    if property.tree().contains(caller.account_id()) {
        caller.account_id().to_string()
    } else {
        property.tree().last().map_or_else(|| property.id.to_string(), |p| p.to_string())
    }
}

/// Number errors of the Kazoo checks, moved onto the Fone fields.
fn as_fone(err: ApiError, numbers: &[String]) -> ApiError {
    let ApiError::Validation(v) = err else { return err };
    let errors = v
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
                    match numbers.iter().position(|n| n == key) {
                        Some(i) => FieldError {
                            field: format!("PortingNumbers[{i}].Number"),
                            code: "NumberUnavailable",
                            message: message.to_owned(),
                        },
                        None => FieldError { field: key.clone(), code: "Invalid", message: message.to_owned() },
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    ApiError::Fone(FoneErrors(errors))
}

/// `POST /v2/Properties/{PropertySid}/Porting`: creates the port request and submits it.
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| ApiError::Internal("state".into()))?;
    let raw = read_body(&req, &mut payload.into_inner(), MAX_BODY_BYTES).await?;
    let body: Value = serde_json::from_slice(&raw)
        .map_err(|e| fone_error("", "InvalidJson", format!("the body is not JSON: {e}")))?;
    let caller = caller(&req).await?;
    let property = authorize_account(&state, &caller, &path).await?;
    let tz = timezone(&property);
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let submission = fone::check(&body, today).map_err(|errors| ApiError::Fone(FoneErrors(errors)))?;
    let numbers: Vec<String> = submission.numbers.iter().map(|n| n.number.clone()).collect();
    let ctx = Ctx {
        state: state.clone(),
        body: Body { envelope: Map::new(), data: json!({}) },
        query: parse_query(req.query_string()),
        caller: caller.clone(),
        request_id: req.extensions().get::<RequestMeta>().map(|m| m.request_id.clone()).unwrap_or_default(),
        if_match: None,
    };
    let public = fone::to_port_request(&submission, tz);
    let saved = crate::port_requests::changes::create(
        &ctx.change(),
        &property,
        public,
        new_doc_id(),
        Some("submitted through the Fone Dynamics API"),
    )
    .await
    .map_err(|e| as_fone(e, &numbers))?;
    Ok(fone_json(json!({ "PortingRequest": fone::porting_request(&saved.doc, &account_sid(&caller, &property)) })))
}

/// Fone answers are plain JSON, not the crossbar envelope (the request id is a header).
fn fone_json(body: Value) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body.to_string())
}

struct Window {
    from: i64,
    to: i64,
    count: u64,
    skip: u64,
    ids: Option<Vec<String>>,
}

fn window(query: &Map<String, Value>) -> Result<Window, ApiError> {
    let get = |k: &str| query.get(k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
    let int = |k: &str| -> Result<Option<i64>, ApiError> {
        get(k)
            .map(|v| v.parse::<i64>().map_err(|_| fone_error(k, "InvalidValue", format!("{k} must be Unix seconds"))))
            .transpose()
    };
    let from = int("From")?.ok_or_else(|| fone_error("From", "Required", "From (Unix seconds) is required"))?;
    let to = int("To")?.ok_or_else(|| fone_error("To", "Required", "To (Unix seconds) is required"))?;
    if from > to {
        return Err(fone_error("From", "InvalidRange", "From is after To"));
    }
    let count = match get("Results_Count") {
        None => 20,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|c| (1..=1000).contains(c))
            .ok_or_else(|| fone_error("Results_Count", "InvalidValue", "Results_Count must be from 1 to 1000"))?,
    };
    let token_skip = match get("NextPageToken").or_else(|| get("PageToken")) {
        None => None,
        Some(t) => Some(
            URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("skip:").and_then(|n| n.parse::<u64>().ok()))
                .ok_or_else(|| {
                    fone_error("NextPageToken", "InvalidValue", "NextPageToken is not one this service handed out")
                })?,
        ),
    };
    let skip = match (token_skip, get("Results_Skip")) {
        (Some(s), _) => s,
        (None, None) => 0,
        (None, Some(v)) => v
            .parse::<u64>()
            .map_err(|_| fone_error("Results_Skip", "InvalidValue", "Results_Skip must be a whole number"))?,
    };
    let ids = get("PortingRequestNumbers")
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());
    Ok(Window { from, to, count, skip, ids })
}

/// Requests of `kind` (`account` or `subtree`) `id` updated within the window, a page of them.
async fn status(req: HttpRequest, sid: String, kind: &'static str) -> Result<HttpResponse, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| ApiError::Internal("state".into()))?;
    let caller = caller(&req).await?;
    let account = authorize_account(&state, &caller, &sid).await?;
    let w = window(&parse_query(req.query_string()))?;
    let (lo, hi) = (unix_to_gregorian(w.from), unix_to_gregorian(w.to));
    let in_scope = |doc: &Value| match kind {
        "account" => doc["pvt_account_id"] == json!(account.id),
        _ => crate::port_requests::in_scope(doc, &account.id),
    };
    let (docs, total) = match &w.ids {
        Some(ids) => {
            let wanted: Vec<String> = ids.iter().filter(|i| crate::domain::ids::is_doc_id(i)).cloned().collect();
            let mut docs: Vec<Value> = state
                .couch
                .get_many(dbs::PORT_REQUESTS, &wanted)
                .await?
                .into_iter()
                .filter(|d| {
                    d["pvt_type"] == "port_request" && d.get("pvt_deleted") != Some(&json!(true)) && in_scope(d)
                })
                .filter(|d| d["pvt_modified"].as_i64().is_some_and(|m| (lo..=hi).contains(&m)))
                .collect();
            docs.sort_by_key(|d| d["pvt_modified"].as_i64());
            let total = docs.len() as u64;
            (docs.into_iter().skip(w.skip as usize).take(w.count as usize).collect::<Vec<_>>(), total)
        }
        None => {
            let (start, end) = (json!([kind, account.id, lo]), json!([kind, account.id, hi]));
            let total = state
                .couch
                .view_count(
                    dbs::PORT_REQUESTS,
                    design::OWN_DDOC,
                    "listing_by_scope_modified",
                    start.clone(),
                    end.clone(),
                )
                .await?;
            let query =
                ViewQuery { limit: Some(w.count), skip: Some(w.skip), ..ViewQuery::range(start, end).with_docs() };
            let rows =
                state.couch.view(dbs::PORT_REQUESTS, design::OWN_DDOC, "listing_by_scope_modified", &query).await?;
            (rows.into_iter().filter_map(|r| r.doc).collect(), total)
        }
    };
    let next = (w.skip + (docs.len() as u64) < total && !docs.is_empty())
        .then(|| URL_SAFE_NO_PAD.encode(format!("skip:{}", w.skip + docs.len() as u64)));
    let mut requests = Vec::new();
    for doc in &docs {
        let sid = match kind {
            "subtree" => account.id.to_string(),
            _ => account_sid(&caller, &account),
        };
        requests.push(fone::porting_request(doc, &sid));
    }
    Ok(fone_json(json!({ "PortingRequests": requests, "TotalCount": total, "NextPageToken": next })))
}

/// `GET /v2/Properties/{PropertySid}/Porting/Status`
pub async fn property_status(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    status(req, path.into_inner(), "account").await
}

/// `GET /v2/Accounts/{AccountSid}/Porting/Status`
pub async fn account_status(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    status(req, path.into_inner(), "subtree").await
}
