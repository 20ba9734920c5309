//! `/{id}/customer_link`: the API that makes, lists and revokes a request's customer links
//! (`app::customer`); the pages a link opens are `pages::customer`.

use super::port_requests::{BASE, request_id};
use super::resource;
use crate::app::customer as use_case;
use crate::app::write::load_in_scope;
use crate::domain::customer::Link;
use crate::domain::documents::port_request::PortRequest;
use crate::domain::time::now_gregorian;
use crate::http::envelope::Reply;
use crate::http::errors::ApiError;
use crate::http::request::Ctx;
use actix_web::{HttpRequest, web};
use serde_json::{Value, json};

/// The link sub-resource of a request (registered before `/{id}/{state}`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource(&format!("{BASE}/{{id}}/customer_link"))
            .route(web::get().to(links))
            .route(web::put().to(create_link))
            .route(web::delete().to(revoke_links)),
    );
}

/// The request's links, newest last (never their secrets).
fn link_views(doc: &PortRequest) -> Vec<Value> {
    let now = now_gregorian();
    doc.links().map(|l| l.view(now)).collect::<Vec<_>>()
}

/// The evidence of the request's signatures, oldest first.
fn signature_views(doc: &PortRequest) -> Value {
    json!(doc.signature_list().collect::<Vec<_>>())
}

/// `PUT /{id}/customer_link`: `{expires_in_days, recipient, submit_when_signed}`.
pub async fn create_link(ctx: Ctx, path: web::Path<(String, String)>, req: HttpRequest) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let made = use_case::create_link(&ctx.ask(&account), &request_id(&id)?, ctx.data()).await?;
    let mut data = Link::view(&made.link, now_gregorian());
    data["url"] = json!(made.url);
    match &made.mailed {
        Some(Ok(())) => data["mailed"] = json!(true),
        Some(Err(why)) => {
            tracing::warn!(link = %made.link.id, %why, "the customer link mail was not sent");
            data["mailed"] = json!(false);
            data["mail_error"] = json!("the mail could not be sent; give the customer the link yourself");
        }
        None => data["mailed"] = json!(false),
    }
    Ok(Reply::created(data, req.path()).with_revision(made.doc.rev()))
}

/// `GET /{id}/customer_link`: the request's links, newest last (never their secrets).
pub async fn links(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let doc = load_in_scope(&ctx.state, &account.id, &request_id(&id)?).await?;
    Ok(Reply::ok(json!({ "links": link_views(&doc), "signatures": signature_views(&doc) })).with_revision(doc.rev()))
}

/// `DELETE /{id}/customer_link`: every live link revoked.
pub async fn revoke_links(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let account = ctx.account(&account_id).await?;
    let doc = use_case::revoke_links(&ctx.ask(&account), &request_id(&id)?).await?;
    Ok(Reply::ok(json!({ "links": link_views(&doc) })).with_revision(doc.rev()))
}
