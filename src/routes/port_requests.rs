//! `/v2/accounts/{A}/port_requests/...`: one request's life cycle. Each handler parses what it
//! is asked, calls one use case of `app`, and answers in the envelope.

use super::{listings, resource};
use crate::app::error::NumberRefused;
use crate::app::import;
use crate::app::requests::{self, MoveAsk, Saved, data_object};
use crate::app::write::load_in_scope;
use crate::domain::comments;
use crate::domain::documents::port_request::PortRequest;
use crate::domain::ids::{PortRequestId, is_doc_id};
use crate::domain::number_progress;
use crate::domain::port_request::{self as pr, view_for};
use crate::domain::port_state::PortState;
use crate::http::envelope::Reply;
use crate::http::errors::{ApiError, number_errors};
use crate::http::request::Ctx;
use crate::http::request::{Authed, MAX_BODY_BYTES, read_body};
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

/// A request id of the path (one that cannot be an id is as unknown as a missing request).
pub fn request_id(raw: &str) -> Result<PortRequestId, ApiError> {
    PortRequestId::parse(raw).map_err(|_| ApiError::BadIdentifier(Some(raw.to_owned())))
}

/// The request as an answer shows it, with its revision.
pub fn request_reply(doc: &PortRequest, is_authority: bool) -> Reply {
    Reply::ok(view_for(doc, is_authority)).with_revision(doc.rev())
}

fn answer(saved: Saved) -> Reply {
    request_reply(&saved.doc, saved.is_authority)
}

/// `PUT /v2/accounts/{A}/port_requests`
pub async fn create(ctx: Ctx, path: web::Path<String>, req: HttpRequest) -> Result<Reply, ApiError> {
    let account = ctx.account(&path).await?;
    let data = data_object(ctx.data())?;
    let id = match data.get("id") {
        None | Some(Value::Null) => PortRequestId::new_random(),
        Some(Value::String(s)) if is_doc_id(s) => request_id(s)?,
        Some(other) => {
            return Err(ApiError::validation(
                "id",
                "pattern",
                json!({ "message": "Failed to match pattern '^[0-9a-f]{32}$'", "value": other }),
            ));
        }
    };
    let saved = requests::create(&ctx.ask(&account), data.clone(), id, None).await?;
    let location = format!("{}/{}", req.path().trim_end_matches('/'), saved.doc.id);
    Ok(Reply::created(view_for(&saved.doc, saved.is_authority), &location).with_revision(saved.doc.rev()))
}

/// `POST /v2/accounts/{A}/port_requests/import[?dry_run=true]` with a CSV body: a request per
/// run of rows with one `request` value, a row per number (`app::import`).
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
    let report = import::import(&auth.ask(&account), &body, dry_run).await?;
    Ok(Reply::ok(import_report(&report)))
}

/// An import's report as the API shows it.
fn import_report(report: &import::Report) -> Value {
    let row = |o: &import::Outcome| {
        let mut r = json!({ "row": o.line, "request": o.request, "number": o.number, "status": o.status });
        if let Some(id) = &o.id {
            r["id"] = json!(id);
        }
        if !o.errors.is_empty() {
            r["errors"] = json!(o.errors.iter().map(row_error).collect::<Vec<_>>());
        }
        r
    };
    json!({
        "dry_run": report.dry_run,
        "written": report.written,
        "requests": report.requests,
        "counts": {
            "valid": report.count("valid"), "created": report.count("created"), "exists": report.count("exists"),
            "error": report.count("error"), "not_made": report.count("not_made"),
        },
        "rows": report.rows.iter().map(row).collect::<Vec<_>>(),
    })
}

/// A row's error, as the API's own errors would say it.
fn row_error(e: &import::RowError) -> Value {
    match e {
        import::RowError::Message(m) => json!({ "message": m }),
        import::RowError::Field { path, detail } => json!({ path.clone(): detail }),
        import::RowError::Number { raw, why } => {
            number_errors(&[NumberRefused { raw: raw.clone(), why: why.clone() }]).to_value()
        }
        import::RowError::Refused(e) => {
            let (_, text, data) = ApiError::from(e.clone()).parts();
            json!({ "message": text, "data": data })
        }
    }
}

/// `GET /v2/accounts/{A}/port_requests/{id}` — also the per-state and `last_submitted`
/// listings of seed 002, since ids are hex and those are words.
pub async fn read(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    if !is_doc_id(&id) && (PortState::parse(&id).is_some() || id == "last_submitted") {
        return listings::account_list_by_path(ctx, account_id, id).await;
    }
    let account = ctx.account(&account_id).await?;
    Ok(answer(requests::read(&ctx.state, &ctx.who, &account.id, &request_id(&id)?).await?))
}

/// `POST /{id}`: full replace of the public fields.
pub async fn update(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    Ok(answer(requests::replace(&ctx.ask(&account), &request_id(&id)?, ctx.data()).await?))
}

/// `PATCH /{id}`: deep merge.
pub async fn patch(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    Ok(answer(requests::patch(&ctx.ask(&account), &request_id(&id)?, ctx.data()).await?))
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
    // a code is a string: anything else is refused, not taken for no code
    if let Some(code) = ctx.req_value("reason_code").filter(|v| !v.is_string() && !v.is_null()) {
        return Err(ApiError::validation(
            "reason_code",
            "type",
            json!({ "message": "Value did not match type(s): string", "target": "string", "value": code }),
        ));
    }
    let asked = MoveAsk {
        data: ctx.data(),
        reason: ctx.req_str("reason"),
        accept_charges: ctx.req_true("accept_charges"),
        reason_code: ctx.req_str("reason_code"),
    };
    Ok(answer(requests::move_to(&ctx.ask(&account), &request_id(&id)?, to, &asked).await?))
}

/// `GET /{id}/numbers`: where each number of the request is (on it, ported or canceled), with
/// the progress of those that moved on their own.
pub async fn numbers_progress(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let doc = load_in_scope(&ctx.state, &account.id, &request_id(&id)?).await?;
    Ok(Reply::ok(Value::Object(number_progress::all(&doc))).with_revision(doc.rev()))
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
    let reason = ctx.req_str("reason");
    let saved = requests::move_number(&ctx.ask(&account), &request_id(&id)?, &number, to, reason.as_deref()).await?;
    Ok(answer(saved))
}

/// `DELETE /{id}`: soft delete. Crossbar answers with the document as it was, marked deleted,
/// at its old revision.
pub async fn delete(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let Saved { doc, is_authority } = requests::delete(&ctx.ask(&account), &request_id(&id)?).await?;
    let mut data = Value::Object(doc.public_fields());
    data["id"] = json!(doc.id);
    pr::filter_comments(&mut data, &doc, is_authority);
    data["_read_only"] = json!({ "deleted": true });
    Ok(Reply::ok(data).with_revision(doc.rev()))
}

/// `GET /{id}/timeline`: transitions and visible comments by time.
pub async fn timeline(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let Saved { doc, is_authority } = requests::read(&ctx.state, &ctx.who, &account.id, &request_id(&id)?).await?;
    let mut entries = pr::timeline(&doc, is_authority);
    entries.extend(crate::app::desk::attention_timeline(&ctx.state, &doc).await?);
    // stable: same-second entries keep their order, attention after the change that caused it
    entries.sort_by_key(|e| e["timestamp"].as_i64().unwrap_or(0));
    Ok(Reply::ok(json!(entries)).with_automatic_revision())
}

/// `GET /{id}/notifications`: the delivery records of the request's emails, webhooks and
/// carrier pushes. For the port authority and superduper admins only.
pub async fn notifications(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let Saved { doc, is_authority } = requests::read(&ctx.state, &ctx.who, &account.id, &request_id(&id)?).await?;
    if !is_authority {
        return Err(ApiError::Forbidden(None));
    }
    let records = crate::jobs::delivery::log(&ctx.state, &doc).await?;
    Ok(Reply::ok(json!(records)).with_automatic_revision())
}

/// `GET /{id}/comments`
pub async fn comments_list(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let Saved { doc, is_authority } = requests::read(&ctx.state, &ctx.who, &account.id, &request_id(&id)?).await?;
    Ok(comments_reply(&doc, is_authority))
}

fn comments_reply(doc: &PortRequest, is_authority: bool) -> Reply {
    let visible = comments::visible(doc.comments(), is_authority);
    Reply::ok(json!({ "comments": visible })).with_revision(doc.rev())
}

/// `PUT /{id}/comments`: appends the comments of the body.
pub async fn comments_add(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let Saved { doc, is_authority } = requests::add_comments(&ctx.ask(&account), &request_id(&id)?, ctx.data()).await?;
    Ok(comments_reply(&doc, is_authority))
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
    load_in_scope(&ctx.state, &account.id, &request_id(id)?).await?;
    Err(ApiError::validation("comments", "forbidden", json!({ "message": message, "cause": "comments" })))
}
