//! `/v2/accounts/{A}/port_requests/...`: one request's life cycle. Each handler parses, calls
//! one change of `port_requests::changes` (which validates, authorizes and writes), and answers.

use super::{listings, resource};
use crate::domain::comments;
use crate::domain::ids::{is_doc_id, new_doc_id};
use crate::domain::number_progress;
use crate::domain::port_request::{self as pr, client_fields, public_fields, view_for};
use crate::domain::port_state::PortState;
use crate::error::ApiError;
use crate::http::envelope::Reply;
use crate::http::request::Ctx;
use crate::http::request::{Authed, MAX_BODY_BYTES, read_body};
use crate::port_requests::changes::{self, Saved};
use crate::port_requests::{self as store, is_authority};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, web};
use serde_json::{Value, json};

pub const BASE: &str = "/v2/accounts/{account_id}/port_requests";

/// The request and its own sub-resources (registered first: the most asked-for routes).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(BASE).route(web::get().to(listings::account_list)).route(web::put().to(create)))
        .service(resource(&format!("{BASE}/import")).route(web::post().to(import)))
        .service(
            resource(&format!("{BASE}/{{id}}"))
                .route(web::get().to(read))
                .route(web::post().to(update))
                .route(web::patch().to(patch))
                .route(web::delete().to(delete)),
        )
        .service(resource(&format!("{BASE}/{{id}}/timeline")).route(web::get().to(timeline)))
        .service(resource(&format!("{BASE}/{{id}}/notifications")).route(web::get().to(notifications)))
        .service(resource(&format!("{BASE}/{{id}}/numbers")).route(web::get().to(numbers_progress)))
        .service(web::resource(format!("{BASE}/{{id}}/numbers/{{number}}/{{state}}")).to(number_transition))
        .service(
            resource(&format!("{BASE}/{{id}}/comments"))
                .route(web::get().to(comments_list))
                .route(web::put().to(comments_add))
                .route(web::delete().to(comments_forbidden)),
        )
        .service(web::resource(format!("{BASE}/{{id}}/comments/{{n}}")).to(comments_forbidden));
}

/// `/{id}/{state}`: after every other sub-resource of a request, which it would shadow.
pub fn configure_transitions(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(format!("{BASE}/{{id}}/{{state}}")).to(transition));
}

fn answer(saved: Saved) -> Reply {
    Reply::ok(view_for(&saved.doc, saved.is_authority)).with_revision(saved.doc["_rev"].as_str())
}

/// `PUT /v2/accounts/{A}/port_requests`
pub async fn create(ctx: Ctx, path: web::Path<String>, req: HttpRequest) -> Result<Reply, ApiError> {
    let account = ctx.account(&path).await?;
    let data = changes::data_object(ctx.data())?;
    let id = match data.get("id") {
        None | Some(Value::Null) => new_doc_id(),
        Some(Value::String(s)) if is_doc_id(s) => s.clone(),
        Some(other) => {
            return Err(ApiError::validation(
                "id",
                "pattern",
                json!({ "message": "Failed to match pattern '^[0-9a-f]{32}$'", "value": other }),
            ));
        }
    };
    let saved = changes::create(&ctx.change(), &account, client_fields(data), id, None).await?;
    let location = format!("{}/{}", req.path().trim_end_matches('/'), saved.doc["_id"].as_str().unwrap_or_default());
    Ok(Reply::created(view_for(&saved.doc, saved.is_authority), &location).with_revision(saved.doc["_rev"].as_str()))
}

/// `POST /v2/accounts/{A}/port_requests/import[?dry_run=true]` with a CSV body: a request per
/// run of rows with one `request` value, a row per number (`port_requests::import`).
pub async fn import(
    auth: Authed,
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<String>,
) -> Result<Reply, ApiError> {
    let account = auth.account(&path).await?;
    let raw_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media = raw_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if !matches!(media.as_str(), "text/csv" | "application/csv" | "text/plain") {
        return Err(ApiError::UnsupportedMediaType(format!("'{raw_type}' is not accepted; send the file as text/csv")));
    }
    let body = read_body(&req, &mut payload.into_inner(), MAX_BODY_BYTES).await?;
    let dry_run = auth.query.get("dry_run").is_some_and(|v| v == &json!(true) || v == &json!("true"));
    let request = changes::Request {
        state: &auth.state,
        caller: &auth.caller,
        request_id: &auth.request_id,
        if_match: None,
        data: &Value::Null,
        reason: None,
        accept_charges: false,
    };
    Ok(Reply::ok(crate::port_requests::import::import(&request, &account, &body, dry_run).await?))
}

/// `GET /v2/accounts/{A}/port_requests/{id}` — also the per-state and `last_submitted`
/// listings of seed 002, since ids are hex and those are words.
pub async fn read(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    if !is_doc_id(&id) && (PortState::parse(&id).is_some() || id == "last_submitted") {
        return listings::account_list_by_path(ctx, account_id, id).await;
    }
    let account = ctx.account(&account_id).await?;
    let doc = store::load_in_scope(&ctx.state, &account, &id).await?;
    Ok(Reply::ok(view_for(&doc, is_authority(&ctx.caller, &doc))).with_revision(doc["_rev"].as_str()))
}

/// `POST /{id}`: full replace of the public fields.
pub async fn update(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    Ok(answer(changes::replace(&ctx.change(), &account, &id).await?))
}

/// `PATCH /{id}`: deep merge.
pub async fn patch(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    Ok(answer(changes::patch(&ctx.change(), &account, &id).await?))
}

/// `PATCH /{id}/{state}`: body fields and comments are merged first, then the move.
pub async fn transition(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String, String)>,
) -> Result<Reply, ApiError> {
    let (account_id, id, token) = path.into_inner();
    let to = PortState::parse(&token).filter(|s| *s != PortState::Unconfirmed).ok_or(ApiError::NotFound)?;
    if req.method() != actix_web::http::Method::PATCH {
        return Err(ApiError::InvalidMethod);
    }
    let ctx = Ctx::from_request(&req, &mut payload.into_inner()).await?;
    let account = ctx.account(&account_id).await?;
    Ok(answer(changes::move_to(&ctx.change(), &account, &id, to).await?))
}

/// `GET /{id}/numbers`: where each number of the request is (on it, ported or canceled), with
/// the progress of those that moved on their own.
pub async fn numbers_progress(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let doc = store::load_in_scope(&ctx.state, &account, &id).await?;
    Ok(Reply::ok(Value::Object(number_progress::all(&doc))).with_revision(doc["_rev"].as_str()))
}

/// `PATCH /{id}/numbers/{number}/{state}`: one number moves on its own.
pub async fn number_transition(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String, String, String)>,
) -> Result<Reply, ApiError> {
    let (account_id, id, number, token) = path.into_inner();
    let to = PortState::parse(&token).filter(|s| *s != PortState::Unconfirmed).ok_or(ApiError::NotFound)?;
    if req.method() != actix_web::http::Method::PATCH {
        return Err(ApiError::InvalidMethod);
    }
    let ctx = Ctx::from_request(&req, &mut payload.into_inner()).await?;
    let account = ctx.account(&account_id).await?;
    Ok(answer(changes::move_number(&ctx.change(), &account, &id, &number, to).await?))
}

/// `DELETE /{id}`: soft delete. Crossbar answers with the document as it was, marked deleted,
/// at its old revision.
pub async fn delete(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let Saved { doc, is_authority } = changes::delete(&ctx.change(), &account, &id).await?;
    let mut data = Value::Object(public_fields(&doc));
    comments::filter_view(&mut data, is_authority);
    data["_read_only"] = json!({ "deleted": true });
    Ok(Reply::ok(data).with_revision(doc["_rev"].as_str()))
}

/// `GET /{id}/timeline`: transitions and visible comments by time.
pub async fn timeline(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let doc = store::load_in_scope(&ctx.state, &account, &id).await?;
    Ok(Reply::ok(json!(pr::timeline(&doc, is_authority(&ctx.caller, &doc)))).with_automatic_revision())
}

/// `GET /{id}/notifications`: the delivery records of the request's emails, webhooks and
/// carrier pushes. For the port authority and superduper admins only.
pub async fn notifications(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let doc = store::load_in_scope(&ctx.state, &account, &id).await?;
    if !is_authority(&ctx.caller, &doc) {
        return Err(ApiError::Forbidden(None));
    }
    let records = crate::notify::log(&ctx.state, &doc).await?;
    Ok(Reply::ok(json!(records)).with_automatic_revision())
}

/// `GET /{id}/comments`
pub async fn comments_list(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let doc = store::load_in_scope(&ctx.state, &account, &id).await?;
    let visible = comments::visible(comments::of(&doc), is_authority(&ctx.caller, &doc));
    Ok(Reply::ok(json!({ "comments": visible })).with_revision(doc["_rev"].as_str()))
}

/// `PUT /{id}/comments`: appends the comments of the body.
pub async fn comments_add(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let Saved { doc, is_authority } = changes::add_comments(&ctx.change(), &account, &id).await?;
    let visible = comments::visible(comments::of(&doc), is_authority);
    Ok(Reply::ok(json!({ "comments": visible })).with_revision(doc["_rev"].as_str()))
}

/// Comments are append-only: deleting them, or touching a single one, is refused.
pub async fn comments_forbidden(ctx: Ctx, req: HttpRequest) -> Result<Reply, ApiError> {
    let message = if req.match_info().get("n").is_some() {
        "operation on a single comment is not allowed"
    } else {
        "delete operation on comments is not allowed"
    };
    let account_id = req.match_info().get("account_id").unwrap_or_default();
    let id = req.match_info().get("id").unwrap_or_default();
    let account = ctx.account(account_id).await?;
    store::load_in_scope(&ctx.state, &account, id).await?;
    Err(ApiError::validation("comments", "forbidden", json!({ "message": message, "cause": "comments" })))
}
