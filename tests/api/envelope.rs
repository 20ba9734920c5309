//! The crossbar envelope, request ids, CORS, body parsing, 404/405.

use crate::helpers::{assert_error, send, spawn_app, tree};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn healthz_answers_without_auth() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "success");
}

#[tokio::test]
async fn success_envelope_has_every_field() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let token = app.token(&t.customer);
    let resp = app
        .request(Method::GET, &format!("/v2/accounts/{}/port_requests", t.customer.id), Some(&token))
        .header("X-Request-Id", "my-request-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "my-request-42");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "success");
    assert_eq!(body["request_id"], "my-request-42");
    assert_eq!(body["auth_token"], token);
    assert_eq!(body["node"].as_str().unwrap().len(), 22);
    assert!(body["version"].is_string());
    assert!(body["revision"].is_string());
    let ts = body["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");
    assert!(body["data"].is_array());
}

#[tokio::test]
async fn error_envelope_and_generated_request_id() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/v2/nothing/here")).send().await.unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    let data = assert_error(status, &body, 404, "not_found");
    assert_eq!(data, json!({"message": "not found"}));
    assert_eq!(body["request_id"], id);
    assert_eq!(body["auth_token"], "undefined");
}

#[tokio::test]
async fn wrong_method_is_405_in_the_envelope() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let (status, body) = app
        .call(Method::DELETE, &format!("/v2/accounts/{}/port_requests", t.customer.id), &app.token(&t.customer), None)
        .await;
    let data = assert_error(status, &body, 405, "invalid_method");
    assert_eq!(data["message"], "method not allowed");
}

#[tokio::test]
async fn invalid_json_is_400() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let path = format!("/v2/accounts/{}/port_requests", t.customer.id);
    let (status, body) = send(
        app.request(Method::PUT, &path, Some(&app.token(&t.customer)))
            .header("content-type", "application/json")
            .body(r#"{"data": {"name": "#),
    )
    .await;
    let data = assert_error(status, &body, 400, "validation error");
    assert_eq!(data["json"]["invalid"]["target"], "body");
    assert!(data["json"]["invalid"]["message"].as_str().unwrap().starts_with("truncated_json around"));
}

#[tokio::test]
async fn body_without_data_is_400() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let path = format!("/v2/accounts/{}/port_requests", t.customer.id);
    let (status, body) =
        send(app.request(Method::PUT, &path, Some(&app.token(&t.customer))).json(&json!({"name": "no envelope"})))
            .await;
    let data = assert_error(status, &body, 400, "validation error");
    assert_eq!(data["data"]["required"]["message"], "Field is required but missing");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let path = format!("/v2/accounts/{}/port_requests", t.customer.id);
    let token = app.token(&t.customer);
    let expected = json!({"file": {"maxSize": {"message": "Payload or Files must not be more than 8000000 bytes", "target": 8000000}}});
    // announced by Content-Length
    let (status, body) = send(app.request(Method::PUT, &path, Some(&token)).body(vec![b' '; 8_000_001])).await;
    assert_eq!(assert_error(status, &body, 400, "validation error"), expected);
    // streamed without a length
    let chunks = futures_util::stream::iter((0..100).map(|_| Ok::<_, std::io::Error>(vec![b' '; 100_000])));
    let (status, body) =
        send(app.request(Method::PUT, &path, Some(&token)).body(reqwest::Body::wrap_stream(chunks))).await;
    assert_eq!(assert_error(status, &body, 400, "validation error"), expected);
}

#[tokio::test]
async fn cors_headers_when_asked() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let resp = app.http.get(app.url("/healthz")).header("Origin", "https://ui.example.com").send().await.unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    assert!(resp.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-request-id"));
    let resp = app
        .http
        .request(Method::OPTIONS, app.url("/v2/accounts/x/port_requests"))
        .header("Origin", "https://ui.example.com")
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["access-control-allow-methods"].to_str().unwrap().contains("PUT"));
    assert!(resp.headers()["access-control-allow-headers"].to_str().unwrap().contains("x-auth-token"));
}
