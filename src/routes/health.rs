//! `GET /healthz`: 200 when CouchDB answers, 503 otherwise. No authentication.

use crate::error::ApiError;
use crate::http::envelope::Reply;
use crate::state::AppState;
use actix_web::web;
use serde_json::json;

pub async fn healthz(state: web::Data<AppState>) -> Result<Reply, ApiError> {
    state.couch.server_info().await?;
    Ok(Reply::ok(json!({ "couchdb": "ok" })))
}
