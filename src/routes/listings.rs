//! Listings of port requests (grown fully in the listings issue).

use crate::couch::{ViewQuery, dbs, design};
use crate::domain::port_request::view_for;
use crate::domain::port_state::{PortState, states_of_type};
use crate::error::ApiError;
use crate::http::envelope::Reply;
use crate::http::request::Ctx;
use crate::port_requests::is_authority;
use actix_web::web;
use serde_json::{Value, json};

async fn list_states(ctx: &Ctx, account_id: &str, states: &[PortState]) -> Result<Reply, ApiError> {
    let account = ctx.account(account_id).await?;
    let mut requests = Vec::new();
    for st in states {
        let q = ViewQuery::range(json!([account.id, st]), json!([account.id, st, {}])).with_docs();
        for row in ctx.state.couch.view(dbs::PORT_REQUESTS, design::KAZOO_DDOC, "listing_by_state", &q).await? {
            if let Some(doc) = row.doc {
                let mut view = view_for(&doc, is_authority(&ctx.caller, &doc));
                view["account_id"] = json!(account.id);
                requests.push(view);
            }
        }
    }
    let data: Value = if requests.is_empty() {
        json!([])
    } else {
        json!([{ "account_id": account.id, "account_name": account.name(), "port_requests": requests }])
    };
    Ok(Reply::ok(data).with_automatic_revision())
}

pub async fn account_list(ctx: Ctx, path: web::Path<String>) -> Result<Reply, ApiError> {
    let states = states_of_type("active").unwrap_or_default();
    list_states(&ctx, &path, states).await
}

pub async fn account_list_by_path(ctx: Ctx, account_id: String, token: String) -> Result<Reply, ApiError> {
    let state = PortState::parse(&token).ok_or(ApiError::NotFound)?;
    list_states(&ctx, &account_id, &[state]).await
}
