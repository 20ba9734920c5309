//! Uploads: byte-exact round trips, refusals, replacement, deletion rules, concurrency.

use crate::helpers::{Ports, TestApp, assert_error, send, spawn_app, tree};
use crate::kazoo::random_number;
use rand::RngCore;
use reqwest::Method;
use serde_json::{Value, json};

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

async fn upload(
    app: &TestApp,
    token: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value, Option<String>) {
    let resp = app
        .request(Method::PUT, path, Some(token))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null), location)
}

#[tokio::test]
async fn every_accepted_type_round_trips_byte_for_byte() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let token = app.token(&t.customer);
    let id = ports.create(&token, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let cases = [
        ("application/pdf", "bill", "bill.pdf", 200_000),
        ("application/x-pdf", "loa.pdf", "loa.pdf", 1000),
        ("application/octet-stream", "blob", "blob.bin", 4096),
        ("text/plain", "my notes", "mynotes.txt", 10),
        ("image/png", "scan.png", "scan.png", 5000),
        ("image/jpeg", "photo", "photo.jpg", 7000),
        ("image/tiff", "fax", "fax.tiff", 7_999_000),
    ];
    for (ct, given, stored, size) in cases {
        let body = random_bytes(size);
        let path = ports.path(&format!("/{id}/attachments?filename={}", given.replace(' ', "%20")));
        let (status, resp, location) = upload(&app, &token, &path, ct, body.clone()).await;
        assert_eq!(status, 201, "{ct}: {resp}");
        assert_eq!(location.unwrap(), ports.path(&format!("/{id}/attachments/{stored}")));
        assert_eq!(resp["data"]["uploads"][stored], json!({"content_type": ct, "length": size}));

        let got = app
            .request(Method::GET, &ports.path(&format!("/{id}/attachments/{stored}")), Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(got.headers()["content-type"], ct);
        assert_eq!(got.headers()["content-disposition"], format!("attachment; filename=\"{stored}\""));
        assert!(got.headers().get("x-request-id").is_some());
        assert_eq!(got.bytes().await.unwrap().to_vec(), body, "{ct}: bytes out differ from bytes in");
    }
    let (status, body) = app.call(Method::GET, &ports.path(&format!("/{id}/attachments")), &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_object().unwrap().len(), cases.len());
    // the request itself is untouched
    let (_, doc) = ports.get(&token, &id).await;
    assert_eq!(doc["data"]["port_state"], "unconfirmed");
    assert_eq!(doc["data"]["uploads"].as_object().unwrap().len(), cases.len());
}

#[tokio::test]
async fn refusals() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let token = app.token(&t.customer);
    let id = ports.create(&token, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let before = app.sys.couch.get("port_requests", &id).await.unwrap();
    let path = |q: &str| ports.path(&format!("/{id}/attachments{q}"));

    for ct in ["application/json", "text/html", "image/gif", "multipart/form-data; boundary=x"] {
        let (status, body, _) = upload(&app, &token, &path("?filename=x"), ct, b"data".to_vec()).await;
        assert_error(status, &body, 415, "unsupported_media_type");
    }
    let (status, body) =
        send(app.request(Method::PUT, &path("?filename=x"), Some(&token)).body(b"no type".to_vec())).await;
    assert_error(status, &body, 415, "unsupported_media_type");

    let (status, body, _) = upload(&app, &token, &path("?filename=big"), "application/pdf", vec![0; 8_000_001]).await;
    let data = assert_error(status, &body, 400, "validation error");
    assert_eq!(data["file"]["maxSize"]["target"], 8_000_000);

    let long = "x".repeat(300);
    for name in
        ["..%2Fetc%2Fpasswd", "a%2Fb.pdf", "bad%07name.pdf", long.as_str(), "..", "a%5Cb.pdf", "_y", "_attachments"]
    {
        let (status, body, _) =
            upload(&app, &token, &path(&format!("?filename={name}")), "application/pdf", b"%PDF".to_vec()).await;
        assert!(assert_error(status, &body, 400, "validation error")["filename"].is_object(), "{name}");
    }
    let (status, _) = app.call(Method::GET, &path("/missing.pdf"), &token, None).await;
    assert_eq!(status, 404);
    // nothing of that reached the request
    assert_eq!(app.sys.couch.get("port_requests", &id).await.unwrap(), before);
}

#[tokio::test]
async fn replace_download_and_delete_by_state() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let id = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let file = ports.path(&format!("/{id}/attachments/bill.pdf"));
    upload(
        &app,
        &member,
        &ports.path(&format!("/{id}/attachments?filename=bill.pdf")),
        "application/pdf",
        b"%PDF-1 old".to_vec(),
    )
    .await;

    let resp = app
        .request(Method::POST, &file, Some(&member))
        .header("content-type", "application/pdf")
        .body(b"%PDF-1 new".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = app.request(Method::GET, &file, Some(&member)).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"%PDF-1 new");
    let wrong_accept =
        app.request(Method::GET, &file, Some(&member)).header("accept", "image/png").send().await.unwrap();
    assert_eq!(wrong_accept.status(), 406);

    ports.walk(&authority, &id, &["submitted"]).await;
    let (status, body) = app.call(Method::DELETE, &file, &member, None).await;
    assert_error(status, &body, 405, "invalid_method");
    ports.walk(&authority, &id, &["rejected"]).await;
    let (status, body) = app.call(Method::DELETE, &file, &member, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!({"_read_only": {"deleted": true}}));
    let (_, doc) = ports.get(&member, &id).await;
    assert_eq!(doc["data"]["uploads"], json!({}));
}

#[tokio::test]
async fn concurrent_uploads_lose_nothing() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let token = app.token(&t.customer);
    let created = ports.create(&token, &[&random_number()]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let files: Vec<(String, Vec<u8>)> = (0..12).map(|i| (format!("file{i}.pdf"), random_bytes(20_000 + i))).collect();
    let paths: Vec<String> =
        files.iter().map(|(name, _)| ports.path(&format!("/{id}/attachments?filename={name}"))).collect();
    let calls =
        files.iter().zip(&paths).map(|((_, body), path)| upload(&app, &token, path, "application/pdf", body.clone()));
    for (status, body, _) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 201, "{body}");
    }
    let (_, doc) = ports.get(&token, &id).await;
    assert_eq!(doc["data"]["uploads"].as_object().unwrap().len(), 12);
    assert_eq!(doc["data"]["name"], created["name"]);
    assert_eq!(doc["data"]["numbers"], created["numbers"]);
    for (name, body) in &files {
        let got = app
            .request(Method::GET, &ports.path(&format!("/{id}/attachments/{name}")), Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(got.bytes().await.unwrap().to_vec(), *body);
    }
}
