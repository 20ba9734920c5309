//! The port authority's desk: `/v2/accounts/{A}/port_requests/rejection_codes`, `.../attention`
//! (and under `descendants`), `.../report` (`app::desk`). Registered before a request's own
//! routes, which would take these words for request ids.

use super::port_requests::BASE;
use super::resource;
use crate::app::desk;
use crate::http::envelope::Reply;
use crate::http::errors::ApiError;
use crate::http::request::Ctx;
use actix_web::web;
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(&format!("{BASE}/rejection_codes")).route(web::get().to(rejection_codes)));
}

/// `GET .../rejection_codes`: the catalogue in effect for the account's requests.
pub async fn rejection_codes(ctx: Ctx, path: web::Path<String>) -> Result<Reply, ApiError> {
    let account = ctx.account(&path).await?;
    let codes = desk::rejection_codes(&ctx.state, &account).await?;
    Ok(Reply::ok(json!(codes)).with_automatic_revision())
}
