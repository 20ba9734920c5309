//! The port authority's desk: `/v2/accounts/{A}/port_requests/rejection_codes`, `.../attention`
//! (and under `descendants`), `.../report` (`app::desk`). Registered before a request's own
//! routes, which would take these words for request ids.

use super::port_requests::BASE;
use super::{listings, resource};
use crate::app::desk;
use crate::app::listings::{Scope, agent_scope};
use crate::domain::desk::report;
use crate::domain::export::Format;
use crate::http::envelope::Reply;
use crate::http::errors::ApiError;
use crate::http::request::Ctx;
use crate::store::directory::Account;
use actix_web::{Either, HttpRequest, HttpResponse, web};
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(&format!("{BASE}/rejection_codes")).route(web::get().to(rejection_codes)))
        .service(resource(&format!("{BASE}/attention")).route(web::get().to(account_attention)))
        .service(
            resource("/v2/accounts/{account_id}/descendants/port_requests/attention")
                .route(web::get().to(descendants_attention)),
        )
        .service(resource("/v2/port_requests/attention").route(web::get().to(agent_attention)))
        .service(resource(&format!("{BASE}/report")).route(web::get().to(report)));
}

async fn attention_reply(ctx: &Ctx, scope: Scope, account: &Account, who: Option<String>) -> Result<Reply, ApiError> {
    let desk = desk::desk_for_scope(&ctx.state, &scope, account).await?;
    let ask = listings::asked(ctx);
    Ok(listings::reply(desk::attention(&ctx.state, &scope, &desk, &ask, who.as_deref()).await?))
}

/// `GET .../port_requests/attention`: the account's own requests that need attention.
pub async fn account_attention(ctx: Ctx, path: web::Path<String>) -> Result<Reply, ApiError> {
    let account = ctx.account(&path).await?;
    let scope = Scope::Account(account.id.clone());
    attention_reply(&ctx, scope, &account, ctx.req_str("who")).await
}

/// `GET .../descendants/port_requests/attention`: its descendants' requests.
pub async fn descendants_attention(ctx: Ctx, path: web::Path<String>) -> Result<Reply, ApiError> {
    let account = ctx.account(&path).await?;
    let scope = Scope::Descendants(account.id.clone());
    attention_reply(&ctx, scope, &account, ctx.req_str("who")).await
}

/// `GET /v2/port_requests/attention`: what a port authority must act on across its accounts
/// (`who=authority` unless asked otherwise; `who=all` for every rule).
pub async fn agent_attention(ctx: Ctx) -> Result<Reply, ApiError> {
    let scope = agent_scope(&ctx.state, &ctx.who, &ctx.caller.account).await?;
    let who = match ctx.req_str("who") {
        None => Some("authority".to_owned()),
        Some(all) if all == "all" => None,
        Some(w) => Some(w),
    };
    attention_reply(&ctx, scope, &ctx.caller.account, who).await
}

/// `GET .../rejection_codes`: the catalogue in effect for the account's requests.
pub async fn rejection_codes(ctx: Ctx, path: web::Path<String>) -> Result<Reply, ApiError> {
    let account = ctx.account(&path).await?;
    let codes = desk::rejection_codes(&ctx.state, &account).await?;
    Ok(Reply::ok(json!(codes)).with_automatic_revision())
}

/// `GET .../report?created_from=&created_to=`: per losing carrier, as JSON or (`accept=csv`,
/// or the `Accept` header) CSV.
pub async fn report(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<Either<Reply, HttpResponse>, ApiError> {
    let account = ctx.account(&path).await?;
    let ask = desk::ReportAsk { created_from: ctx.req_str("created_from"), created_to: ctx.req_str("created_to") };
    let figures = desk::report(&ctx.state, &account, &ask).await?;
    let header = req.headers().get(actix_web::http::header::ACCEPT).and_then(|v| v.to_str().ok());
    match Format::asked(ctx.req_str("accept").as_deref(), header) {
        Some(Format::Csv) => {
            let body = report::csv(&figures)
                .map_err(|e| ApiError::from(crate::app::error::AppError::Unavailable(e.to_string())))?;
            Ok(Either::Right(HttpResponse::Ok().content_type(Format::Csv.content_type()).body(body)))
        }
        _ => Ok(Either::Left(Reply::ok(json!(figures)).with_automatic_revision())),
    }
}
