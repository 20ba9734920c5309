//! Uploads on a port request (CouchDB attachments) and the generated LOA PDF.

use super::port_requests::BASE;
use super::resource;
use crate::couch::{NewAttachment, StoreError, dbs, encode};
use crate::directory::Account;
use crate::domain::attachments::{accepted_list, accepted_type, check_name, upload_name};
use crate::domain::port_request::{uploads, view_for};
use crate::domain::port_state::PortState;
use crate::domain::time::now_gregorian;
use crate::error::ApiError;
use crate::http::envelope::Reply;
use crate::http::request::{Authed, MAX_BODY_BYTES, max_size_error, read_chunks};
use crate::port_requests::changes::{ATTEMPTS, pause_after_conflict};
use crate::port_requests::{self as store, is_authority};
use crate::state::AppState;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::{Value, json};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource(&format!("{BASE}/{{id}}/attachments")).route(web::get().to(list)).route(web::put().to(upload)),
    )
    .service(
        resource(&format!("{BASE}/{{id}}/attachments/{{name}}"))
            .route(web::get().to(download))
            .route(web::post().to(replace))
            .route(web::delete().to(remove)),
    )
    .service(resource(&format!("{BASE}/{{id}}/loa")).route(web::get().to(loa)));
}

/// `GET /{id}/attachments`: the `uploads` map.
pub async fn list(auth: Authed, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = auth.account(&account_id).await?;
    let doc = store::load_in_scope(&auth.state, &account, &id).await?;
    Ok(Reply::ok(uploads(&doc)).with_revision(doc["_rev"].as_str()))
}

fn bad_name(name: &str) -> ApiError {
    ApiError::validation(
        "filename",
        "invalid",
        json!({ "message": "attachment names are at most 255 bytes, do not start with '_', and hold no '/', '..' or control characters", "value": name }),
    )
}

/// Adds or replaces attachment `name`. Only the attachment changes: a concurrent change of the
/// document (another upload, a transition) is retried, never overwritten, and a failure never
/// touches the request itself.
async fn store_attachment(
    auth: &Authed,
    req: &HttpRequest,
    payload: web::Payload,
    account_id: &str,
    id: &str,
    name: Option<String>,
) -> Result<(Value, String), ApiError> {
    let account = auth.account(account_id).await?;
    let upload = Upload {
        account: &account,
        id,
        if_match: auth.if_match.as_deref(),
        name,
        given: auth.query.get("filename").and_then(Value::as_str),
    };
    store_upload(&auth.state, req, payload, upload).await
}

/// An upload's target.
pub struct Upload<'a> {
    pub account: &'a Account,
    pub id: &'a str,
    pub if_match: Option<&'a str>,
    /// The name to store it under, as given in the path.
    pub name: Option<String>,
    /// `?filename=`, checked, or a name made from the time and type.
    pub given: Option<&'a str>,
}

/// Stores an upload of accepted type and size as attachment of the request; the API's and the
/// customer page's.
pub async fn store_upload(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    upload: Upload<'_>,
) -> Result<(Value, String), ApiError> {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(max_size_error());
    }
    let Upload { account, id, if_match, name, given } = upload;
    let raw_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let content_type = accepted_type(raw_type).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!("'{raw_type}' is not accepted; send one of {}", accepted_list()))
    })?;
    let mut doc = store::load_in_scope(state, account, id).await?;
    store::check_if_match(if_match, &doc)?;
    let name = match name {
        Some(n) => {
            check_name(&n).map_err(|_| bad_name(&n))?;
            n
        }
        None => upload_name(given, content_type, now_gregorian()).map_err(|_| bad_name(given.unwrap_or_default()))?,
    };
    // the chunks as they arrived go to CouchDB as they are: the file is never copied
    let chunks = read_chunks(req, &mut payload.into_inner(), MAX_BODY_BYTES).await?;
    let place = state.writes.enter(id, state.couch.timeout()).await;
    if place.waited() {
        doc = store::load_in_scope(state, account, id).await?;
        store::check_if_match(if_match, &doc)?;
    }
    let length: usize = chunks.iter().map(bytes::Bytes::len).sum();
    let body = || {
        let stream = futures_util::stream::iter(chunks.clone().into_iter().map(Ok::<_, std::io::Error>));
        reqwest::Body::wrap_stream(stream)
    };
    for n in 1..=ATTEMPTS {
        let rev = doc["_rev"].as_str().unwrap_or_default().to_owned();
        let file = NewAttachment { name: &name, content_type, length };
        match state.couch.put_attachment((dbs::PORT_REQUESTS, id, &rev), &file, &body).await {
            Ok(_) => {
                let saved = store::load(state, id).await?;
                return Ok((Value::clone(&saved), name));
            }
            Err(StoreError::Conflict) if if_match.is_none() && n < ATTEMPTS => {
                pause_after_conflict(n).await;
                doc = store::load_in_scope(state, account, id).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict)
}

/// `PUT /{id}/attachments?filename=NAME` with the raw file as body.
pub async fn upload(
    auth: Authed,
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let (doc, name) = store_attachment(&auth, &req, payload, &account_id, &id, None).await?;
    let location = format!("{}/{}", req.path().trim_end_matches('/'), encode(&name));
    let view = view_for(&doc, is_authority(&auth.caller, &doc));
    Ok(Reply::created(view, &location).with_revision(doc["_rev"].as_str()))
}

/// `POST /{id}/attachments/{name}`: replaces (or adds) the attachment, name kept as given.
pub async fn replace(
    auth: Authed,
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String, String)>,
) -> Result<Reply, ApiError> {
    let (account_id, id, name) = path.into_inner();
    let (doc, _) = store_attachment(&auth, &req, payload, &account_id, &id, Some(name)).await?;
    let view = view_for(&doc, is_authority(&auth.caller, &doc));
    Ok(Reply::ok(view).with_revision(doc["_rev"].as_str()))
}

/// Does the `Accept` header allow `content_type`? (no header, `*/*` and `type/*` do)
fn accepts(req: &HttpRequest, content_type: &str) -> bool {
    let Some(accept) = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return true };
    let major = content_type.split('/').next().unwrap_or_default();
    accept
        .split(',')
        .map(|r| r.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .any(|range| range.is_empty() || range == "*/*" || range == content_type || range == format!("{major}/*"))
}

fn disposition(name: &str) -> ContentDisposition {
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(name.to_owned())],
    }
}

/// `GET /{id}/attachments/{name}`: the stored bytes, streamed, with their stored type.
pub async fn download(
    auth: Authed,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, id, name) = path.into_inner();
    let account = auth.account(&account_id).await?;
    let doc = store::load_in_scope(&auth.state, &account, &id).await?;
    let stub = doc
        .get("_attachments")
        .and_then(|a| a.get(&name))
        .ok_or_else(|| ApiError::BadIdentifier(Some(name.clone())))?;
    let content_type =
        stub.get("content_type").and_then(Value::as_str).unwrap_or("application/octet-stream").to_owned();
    if !accepts(&req, &content_type) {
        return Err(ApiError::NotAcceptable(format!("this attachment is {content_type}")));
    }
    let resp = auth.state.couch.attachment(dbs::PORT_REQUESTS, &id, &name).await?;
    if !resp.status().is_success() {
        return Err(ApiError::BadIdentifier(Some(name)));
    }
    let mut out = HttpResponse::Ok();
    out.insert_header((header::CONTENT_TYPE, content_type)).insert_header(disposition(&name));
    if let Some(len) = resp.content_length() {
        out.no_chunking(len);
    }
    if let Some(rev) = doc["_rev"].as_str() {
        out.insert_header((header::ETAG, format!("\"{rev}\"")));
    }
    let stream =
        resp.bytes_stream().map(|chunk| chunk.map_err(|e| actix_web::error::ErrorServiceUnavailable(e.to_string())));
    Ok(out.streaming(stream))
}

/// `DELETE /{id}/attachments/{name}`: only where the request itself may be deleted.
pub async fn remove(auth: Authed, path: web::Path<(String, String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id, name) = path.into_inner();
    check_name(&name).map_err(|_| bad_name(&name))?;
    let account = auth.account(&account_id).await?;
    let _place = auth.state.writes.enter(&id, auth.state.couch.timeout()).await;
    let mut doc = store::load_in_scope(&auth.state, &account, &id).await?;
    store::check_if_match(auth.if_match.as_deref(), &doc)?;
    for n in 1..=ATTEMPTS {
        if !PortState::of_doc(&doc).is_deletable() {
            return Err(ApiError::InvalidMethod);
        }
        if doc.get("_attachments").and_then(|a| a.get(&name)).is_none() {
            break;
        }
        let rev = doc["_rev"].as_str().unwrap_or_default().to_owned();
        match auth.state.couch.delete_attachment(dbs::PORT_REQUESTS, &id, &rev, &name).await {
            Ok(_) | Err(StoreError::NotFound) => {
                auth.state.docs.forget(&id);
                break;
            }
            Err(StoreError::Conflict) if auth.if_match.is_none() && n < ATTEMPTS => {
                pause_after_conflict(n).await;
                doc = store::load_in_scope(&auth.state, &account, &id).await?
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Reply::ok(json!({ "_read_only": { "deleted": true } })))
}

/// `GET /{id}/loa` (Accept: application/pdf or application/x-pdf): the Letter of Authorization.
pub async fn loa(auth: Authed, req: HttpRequest, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (account_id, id) = path.into_inner();
    let content_type = if accepts(&req, "application/pdf") {
        "application/pdf"
    } else if accepts(&req, "application/x-pdf") {
        "application/x-pdf"
    } else {
        return Err(ApiError::NotAcceptable("the LOA is a PDF: send Accept: application/pdf".into()));
    };
    let account = auth.account(&account_id).await?;
    let doc = store::load_in_scope(&auth.state, &account, &id).await?;
    let pdf = crate::port_requests::letter::render(&auth.state, &account, &doc, None).await?.pdf;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header(disposition(&format!("loa-{id}.pdf")))
        .body(pdf))
}
