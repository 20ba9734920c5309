//! /openapi.json and /metrics.

use crate::helpers::{Ports, spawn_app, tree};
use crate::kazoo::random_number;
use reqwest::Method;
use serde_json::Value;

#[tokio::test]
async fn the_openapi_document_is_served_and_covers_the_api() {
    let app = spawn_app().await;
    let doc: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v2/port_requests",
        "/v2/accounts/{account_id}/port_requests",
        "/v2/accounts/{account_id}/descendants/port_requests",
        "/v2/accounts/{account_id}/port_requests/{port_request_id}",
        "/v2/accounts/{account_id}/port_requests/{port_request_id}/{state}",
        "/v2/accounts/{account_id}/port_requests/{port_request_id}/timeline",
        "/v2/accounts/{account_id}/port_requests/{port_request_id}/comments",
        "/v2/accounts/{account_id}/port_requests/{port_request_id}/notifications",
        "/v2/accounts/{account_id}/port_requests/{port_request_id}/attachments",
        "/v2/accounts/{account_id}/port_requests/{port_request_id}/attachments/{attachment_name}",
        "/v2/accounts/{account_id}/port_requests/{port_request_id}/loa",
        "/v2/accounts/{account_id}/port_requests/{port_request_id}/customer_link",
        "/v2/accounts/{account_id}/port_requests/rejection_codes",
        "/v2/accounts/{account_id}/port_requests/attention",
        "/v2/accounts/{account_id}/descendants/port_requests/attention",
        "/v2/port_requests/attention",
        "/v2/accounts/{account_id}/port_requests/report",
        "/v2/Properties/{sid}/Porting",
        "/v2/Properties/{sid}/Porting/Status",
        "/v2/Accounts/{sid}/Porting/Status",
        "/healthz",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} is not documented");
    }
}

#[tokio::test]
async fn metrics_count_requests_couchdb_calls_and_deliveries() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let token = app.token(&t.customer);
    let id = ports.create(&token, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    ports.get(&token, &id).await;
    app.call(Method::GET, "/v2/accounts/nope/port_requests", &token, None).await;
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for expected in [
        r#"kpr_http_requests_total{method="PUT",route="/v2/accounts/{account_id}/port_requests",status="201"}"#,
        r#"kpr_http_requests_total{method="GET",route="/v2/accounts/{account_id}/port_requests",status="404"}"#,
        r#"kpr_http_request_duration_seconds_bucket{method="GET",route="/v2/accounts/{account_id}/port_requests/{id}""#,
        r#"kpr_couchdb_request_duration_seconds_count{operation="save"}"#,
        "kpr_outbox_pending ",
        "kpr_outbox_failed ",
        "# TYPE kpr_loa_renders_total counter",
    ] {
        assert!(text.contains(expected), "metrics lack {expected}:\n{text}");
    }
}
