//! Uploads on a port request (CouchDB attachments) and the generated LOA PDF.

use super::port_requests::{BASE, request_id, request_reply};
use super::resource;
use crate::app::attachments::{self, Upload};
use crate::app::error::AppError;
use crate::app::write::{Ask, load_in_scope};
use crate::domain::attachments::{accepted_list, accepted_type};
use crate::domain::port_request::PortRequest;
use crate::domain::port_request::uploads;
use crate::http::envelope::Reply;
use crate::http::errors::ApiError;
use crate::http::request::{Authed, MAX_BODY_BYTES, max_size_error, read_chunks};
use crate::store::couch::encode;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;

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
    let doc = load_in_scope(&auth.state, &account.id, &request_id(&id)?).await?;
    Ok(Reply::ok(uploads(&doc)).with_revision(doc.rev()))
}

/// An upload's type, checked before its body is read.
pub fn upload_type(req: &HttpRequest) -> Result<&'static str, ApiError> {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(max_size_error());
    }
    let raw_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    accepted_type(raw_type).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!("'{raw_type}' is not accepted; send one of {}", accepted_list()))
    })
}

/// Reads an upload aimed at request `id` (which must be there, at the revision `If-Match`
/// names, before its body is read), named as `name` says, and stores it.
pub async fn store_upload(
    ask: &Ask<'_>,
    id: &str,
    req: &HttpRequest,
    payload: web::Payload,
    name: Named<'_>,
) -> Result<Stored, ApiError> {
    let content_type = upload_type(req)?;
    let id = request_id(id)?;
    let doc = load_in_scope(ask.state, &ask.through.id, &id).await?;
    if let Some(tag) = ask.if_match
        && tag != "*"
        && Some(tag) != doc.rev()
    {
        return Err(AppError::PreconditionFailed.into());
    }
    let name = attachments::name_of(name.in_path, name.given, content_type)?;
    // the chunks as they arrived go to CouchDB as they are: the file is never copied
    let chunks = read_chunks(req, &mut payload.into_inner(), MAX_BODY_BYTES).await?;
    let upload = Upload { name: name.clone(), content_type: content_type.to_owned(), chunks };
    Ok(Stored { doc: attachments::attach(ask, &id, upload).await?, name })
}

/// How an upload is named: as the path says, or by `?filename=`.
pub struct Named<'a> {
    pub in_path: Option<String>,
    pub given: Option<&'a str>,
}

/// An upload stored: the request as it is now, and the name it went under.
pub struct Stored {
    pub doc: std::sync::Arc<PortRequest>,
    pub name: String,
}

/// `PUT /{id}/attachments?filename=NAME` with the raw file as body.
pub async fn upload(
    auth: Authed,
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = auth.account(&account_id).await?;
    let given = auth.query.get("filename").and_then(|v| v.as_str());
    let named = Named { in_path: None, given };
    let Stored { doc, name } = store_upload(&auth.ask(&account), &id, &req, payload, named).await?;
    let location = format!("{}/{}", req.path().trim_end_matches('/'), encode(&name));
    let reply = request_reply(&doc, auth.who.is_authority(&doc));
    Ok(reply.created_at(&location))
}

/// `POST /{id}/attachments/{name}`: replaces (or adds) the attachment, name kept as given.
pub async fn replace(
    auth: Authed,
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String, String)>,
) -> Result<Reply, ApiError> {
    let (account_id, id, name) = path.into_inner();
    let account = auth.account(&account_id).await?;
    let named = Named { in_path: Some(name), given: None };
    let Stored { doc, .. } = store_upload(&auth.ask(&account), &id, &req, payload, named).await?;
    Ok(request_reply(&doc, auth.who.is_authority(&doc)))
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
    let doc = load_in_scope(&auth.state, &account.id, &request_id(&id)?).await?;
    let stub = doc.attachment(&name).ok_or_else(|| ApiError::BadIdentifier(Some(name.clone())))?;
    let content_type = stub.content_type.as_deref().unwrap_or("application/octet-stream").to_owned();
    if !accepts(&req, &content_type) {
        return Err(ApiError::NotAcceptable(format!("this attachment is {content_type}")));
    }
    let resp = auth.state.port_requests.attachment(doc.id.as_str(), &name).await?;
    if !resp.status().is_success() {
        return Err(ApiError::BadIdentifier(Some(name)));
    }
    let mut out = HttpResponse::Ok();
    out.insert_header((header::CONTENT_TYPE, content_type)).insert_header(disposition(&name));
    if let Some(len) = resp.content_length() {
        out.no_chunking(len);
    }
    if let Some(rev) = doc.rev() {
        out.insert_header((header::ETAG, format!("\"{rev}\"")));
    }
    let stream =
        resp.bytes_stream().map(|chunk| chunk.map_err(|e| actix_web::error::ErrorServiceUnavailable(e.to_string())));
    Ok(out.streaming(stream))
}

/// `DELETE /{id}/attachments/{name}`: only where the request itself may be deleted.
pub async fn remove(auth: Authed, path: web::Path<(String, String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id, name) = path.into_inner();
    let account = auth.account(&account_id).await?;
    attachments::detach(&auth.ask(&account), &request_id(&id)?, &name).await?;
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
    let doc = load_in_scope(&auth.state, &account.id, &request_id(&id)?).await?;
    let pdf = crate::app::letter::render(&auth.state, &account, &doc, None).await?.pdf;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header(disposition(&format!("loa-{id}.pdf")))
        .body(pdf))
}
