//! The Fone Dynamics porting API (`POST /v2/Properties/{PropertySid}/Porting` and the status
//! queries) on the same port requests: a Property is a Kazoo account, an Account any ancestor.

use super::resource;
use crate::app::fone::{self as use_case, StatusScope};
use crate::app::write::Ask;
use crate::auth::Caller;
use crate::domain::fone::{self, FieldError};
use crate::http::envelope::RequestMeta;
use crate::http::errors::{ApiError, FoneErrors, fone_error};
use crate::http::request::{
    MAX_BODY_BYTES, authenticate, authenticate_basic, authorize_account, parse_query, read_body, request_id,
};
use crate::state::AppState;
use crate::store::directory::Account;
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use std::sync::Arc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v2/Properties/{sid}/Porting").route(web::post().to(submit)))
        .service(resource("/v2/Properties/{sid}/Porting/Status").route(web::get().to(property_status)))
        .service(resource("/v2/Accounts/{sid}/Porting/Status").route(web::get().to(account_status)));
}

fn refused(error: FieldError) -> ApiError {
    ApiError::Fone(FoneErrors(vec![error]))
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

/// The `AccountSid` shown for a property's request: the caller's account when it is above the
/// property, else the property's parent.
fn account_sid(caller: &Caller, property: &Account) -> String {
    if property.tree().contains(caller.account_id()) {
        caller.account_id().to_string()
    } else {
        property.tree().last().map_or_else(|| property.id.to_string(), |p| p.to_string())
    }
}

/// `POST /v2/Properties/{PropertySid}/Porting`: creates the port request and submits it.
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| ApiError::Internal("state".into()))?;
    let raw = read_body(&req, &mut payload.into_inner(), MAX_BODY_BYTES).await?;
    let body: Value = serde_json::from_slice(&raw).map_err(|e| {
        refused(FieldError { field: String::new(), code: "InvalidJson", message: format!("the body is not JSON: {e}") })
    })?;
    let caller = caller(&req).await?;
    let property = authorize_account(&state, &caller, &path).await?;
    let who = caller.who();
    let request_id = request_id(&req);
    let ask = Ask { state: &state, who: &who, through: &property, request_id: &request_id, if_match: None };
    // a Kazoo refusal of a number is answered on its place in the body
    let numbers: Vec<String> = body["PortingNumbers"]
        .as_array()
        .map(|list| list.iter().map(|n| n["Number"].as_str().unwrap_or_default().trim().to_owned()).collect())
        .unwrap_or_default();
    let saved = use_case::submit(&ask, &body).await.map_err(|e| fone_error(e, &numbers))?;
    Ok(fone_json(json!({ "PortingRequest": fone::porting_request(&saved.doc, &account_sid(&caller, &property)) })))
}

/// Fone answers are plain JSON, not the crossbar envelope (the request id is a header).
fn fone_json(body: Value) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body.to_string())
}

/// Requests of `scope` updated within the window, a page of them.
async fn status(req: HttpRequest, sid: String, scope: StatusScope) -> Result<HttpResponse, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| ApiError::Internal("state".into()))?;
    let caller = caller(&req).await?;
    let account = authorize_account(&state, &caller, &sid).await?;
    let w = fone::window(&parse_query(req.query_string())).map_err(refused)?;
    let (docs, total) = use_case::status(&state, &account.id, scope, &w).await?;
    let next = (w.skip + (docs.len() as u64) < total && !docs.is_empty())
        .then(|| fone::next_page_token(w.skip + docs.len() as u64));
    let sid = match scope {
        StatusScope::Subtree => account.id.to_string(),
        StatusScope::Property => account_sid(&caller, &account),
    };
    let requests: Vec<Value> = docs.iter().map(|doc| fone::porting_request(doc, &sid)).collect();
    Ok(fone_json(json!({ "PortingRequests": requests, "TotalCount": total, "NextPageToken": next })))
}

/// `GET /v2/Properties/{PropertySid}/Porting/Status`
pub async fn property_status(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    status(req, path.into_inner(), StatusScope::Property).await
}

/// `GET /v2/Accounts/{AccountSid}/Porting/Status`
pub async fn account_status(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    status(req, path.into_inner(), StatusScope::Subtree).await
}
