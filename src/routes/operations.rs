//! What operators and tools read: health, the OpenAPI document, Prometheus metrics. No token.

use crate::http::envelope::Reply;
use crate::http::errors::ApiError;
use crate::state::AppState;
use crate::store::{dbs, views};
use actix_web::{HttpResponse, web};
use serde_json::json;

const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// `GET /healthz`: 200 when CouchDB answers, 503 otherwise.
pub async fn healthz(state: web::Data<AppState>) -> Result<Reply, ApiError> {
    state.couch.server_info().await?;
    Ok(Reply::ok(json!({ "couchdb": "ok" })))
}

/// `GET /openapi.json`
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

/// `GET /metrics`: the delivery gauges are read when scraped; CouchDB being down does not stop
/// the other metrics from being served.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let m = crate::metrics::get();
    m.couch_nodes_up.set(state.couch.nodes_up().0 as i64);
    let queue = state.settings.jobs.delivery.queue.as_str();
    for (status, gauge) in [("pending", &m.deliveries_pending), ("failed", &m.deliveries_failed)] {
        let key = json!([queue, status]);
        if let Ok(n) = state.couch.view_count(dbs::SERVICE, views::SERVICE_DDOC, "by_status", key.clone(), key).await {
            gauge.set(n as i64);
        }
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(m.render())
}
