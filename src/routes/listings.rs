//! Listings: the port authority's requests (`/v2/port_requests`), an account's, an account's
//! descendants' (`app::listings`), as JSON pages in the envelope, or exported as CSV or JSON
//! lines (`accept=csv|jsonl`, or the `Accept` header).

use super::resource;
use crate::app::listings::{self, Listed, Listing, ListingAsk, Of, Scope, Types};
use crate::domain::export::Format;
use crate::http::envelope::Reply;
use crate::http::errors::ApiError;
use crate::http::request::Ctx;
use actix_web::{Either, HttpRequest, HttpResponse, web};
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v2/port_requests").route(web::get().to(agent_list)).route(web::put().to(agent_forbidden)))
        .service(
            resource("/v2/accounts/{account_id}/descendants/port_requests").route(web::get().to(descendants_list)),
        );
}

/// What a listing is asked, from the request (the direction from the query string only, as in
/// crossbar_view).
pub(super) fn asked(ctx: &Ctx) -> ListingAsk {
    let flag = |k: &str| ctx.query.get(k).map(|v| v == &json!(true) || v == &json!("true"));
    let descending = match (flag("descending"), flag("ascending")) {
        (Some(d), _) => Some(d),
        (None, Some(a)) => Some(!a),
        (None, None) => None,
    };
    let int = |k: &str| ctx.req_str(k).and_then(|v| v.parse::<i64>().ok());
    ListingAsk {
        page_size: ctx.req_str("page_size"),
        start_key: ctx.req_str("start_key"),
        descending,
        of: match ctx.req_str("by_number") {
            Some(number) => Of::Number(number),
            None => Of::Types(ctx.req_str("by_types")),
        },
        modified: (int("modified_from"), int("modified_to")),
    }
}

/// A listing in the envelope (a paged one with `page_size`, `start_key`, `next_start_key`).
pub(super) fn reply(listed: Listed) -> Reply {
    let reply = Reply::ok(listed.data).with_automatic_revision();
    match listed.paged {
        None => reply,
        Some(p) => {
            let reply = reply.with_envelope("page_size", json!(p.count)).with_envelope("start_key", json!(p.start_key));
            match p.next_start_key {
                Some(next) => reply.with_envelope("next_start_key", json!(next)),
                None => reply,
            }
        }
    }
}

/// A listing, or its export when CSV or JSON lines are asked for.
async fn listing_or_export(ctx: Ctx, req: &HttpRequest, scope: Scope) -> Result<Either<Reply, HttpResponse>, ApiError> {
    let ask = asked(&ctx);
    let header = req.headers().get(actix_web::http::header::ACCEPT).and_then(|v| v.to_str().ok());
    match Format::asked(ctx.req_str("accept").as_deref(), header) {
        Some(format) if matches!(ask.of, Of::Types(_)) => {
            let state = ctx.state.clone().into_inner();
            let pages = listings::export(state, ctx.who.clone(), &scope, &ask, format)?;
            Ok(Either::Right(HttpResponse::Ok().content_type(format.content_type()).streaming(pages)))
        }
        _ => {
            let listing = Listing { state: &ctx.state, who: &ctx.who, scope: &scope, ask: &ask };
            Ok(Either::Left(reply(listing.answer(None).await?)))
        }
    }
}

/// `GET /v2/accounts/{A}/port_requests`
pub async fn account_list(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<Either<Reply, HttpResponse>, ApiError> {
    let account = ctx.account(&path).await?;
    let scope = Scope::Account(account.id.clone());
    listing_or_export(ctx, &req, scope).await
}

/// `GET /v2/accounts/{A}/port_requests/{state}` and `.../last_submitted` (seed 002).
pub async fn account_list_by_path(ctx: Ctx, account_id: String, token: String) -> Result<Reply, ApiError> {
    let account = ctx.account(&account_id).await?;
    let scope = Scope::Account(account.id.clone());
    let ask = asked(&ctx);
    let listing = Listing { state: &ctx.state, who: &ctx.who, scope: &scope, ask: &ask };
    Ok(reply(listing.answer(Types::of_path(&token)).await?))
}

/// `GET /v2/accounts/{A}/descendants/port_requests`
pub async fn descendants_list(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<Either<Reply, HttpResponse>, ApiError> {
    let account = ctx.account(&path).await?;
    let scope = Scope::Descendants(account.id.clone());
    listing_or_export(ctx, &req, scope).await
}

/// `GET /v2/port_requests`: only for port authorities and superduper admins.
pub async fn agent_list(ctx: Ctx, req: HttpRequest) -> Result<Either<Reply, HttpResponse>, ApiError> {
    let scope = listings::agent_scope(&ctx.state, &ctx.who, &ctx.caller.account).await?;
    listing_or_export(ctx, &req, scope).await
}

/// `PUT /v2/port_requests`: requests are created under an account.
pub async fn agent_forbidden(_ctx: Ctx) -> Result<Reply, ApiError> {
    Err(ApiError::Forbidden(None))
}
