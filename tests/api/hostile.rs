//! Hostile input: every write endpoint answers it with a 4xx in the envelope, stores nothing,
//! and the process stays well. A short fuzz run over the whole API; slow clients are cut off.

use crate::helpers::{Ports, TestApp, send, spawn_app, tree};
use crate::kazoo::random_number;
use reqwest::Method;
use serde_json::json;
use std::io::{Read, Write};

#[path = "../../benches/support/fuzz.rs"]
mod fuzz;

fn hostile_bodies() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let deep = format!("{{\"data\":{}1{}}}", "[".repeat(20_000), "]".repeat(20_000));
    vec![
        ("malformed JSON", "application/json", b"{\"data\": {\"name\": ".to_vec()),
        ("deeply nested JSON", "application/json", deep.into_bytes()),
        ("invalid UTF-8", "application/json", vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']),
        ("a JSON array", "application/json", b"[1,2,3]".to_vec()),
        ("data of the wrong type", "application/json", br#"{"data": "drop table"}"#.to_vec()),
        (
            "wrong field types",
            "application/json",
            br#"{"data": {"name": 12, "numbers": [1], "bill": "x", "comments": {}}}"#.to_vec(),
        ),
        (
            "a huge name",
            "application/json",
            json!({"data": {"name": "x".repeat(3_000_000), "numbers": {"+12025550123": {}}}}).to_string().into_bytes(),
        ),
        ("a form", "application/x-www-form-urlencoded", b"name=x&numbers=y".to_vec()),
        ("XML", "application/xml", b"<data/>".to_vec()),
        ("oversized", "application/json", vec![b' '; 8_000_001]),
    ]
}

#[tokio::test]
async fn hostile_bodies_are_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let token = app.token(&t.customer);
    let id = ports.create(&token, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let before = app.sys.couch.get("port_requests", &id).await.unwrap();
    let a = &t.customer.id;
    let endpoints = [
        (Method::PUT, format!("/v2/accounts/{a}/port_requests")),
        (Method::POST, format!("/v2/accounts/{a}/port_requests/{id}")),
        (Method::PATCH, format!("/v2/accounts/{a}/port_requests/{id}")),
        (Method::PATCH, format!("/v2/accounts/{a}/port_requests/{id}/submitted")),
        (Method::PUT, format!("/v2/accounts/{a}/port_requests/{id}/comments")),
        (Method::PUT, format!("/v2/accounts/{a}/port_requests/{id}/attachments?filename=..%2F..%2Fetc%2Fpasswd")),
        (Method::POST, format!("/v2/accounts/{a}/port_requests/{id}/attachments/..%2F..%2Fx")),
        (Method::POST, format!("/v2/Properties/{a}/Porting")),
    ];
    for (method, path) in &endpoints {
        for (what, ct, body) in hostile_bodies() {
            let (status, resp) =
                send(app.request(method.clone(), path, Some(&token)).header("content-type", ct).body(body)).await;
            assert!((400..500).contains(&status), "{what} on {method} {path}: {status} {resp}");
            assert_eq!(resp["status"], "error", "{what} on {method} {path}: {resp}");
        }
    }
    assert_eq!(app.sys.couch.get("port_requests", &id).await.unwrap(), before, "nothing was stored");
    let (_, list) = app.call(Method::GET, &ports.path("?by_types=all"), &token, None).await;
    assert_eq!(list["data"][0]["port_requests"].as_array().unwrap().len(), 1, "nothing was created");
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
}

async fn fuzz_target(app: &TestApp) -> fuzz::Target {
    let t = tree(app).await;
    let token = app.token(&t.customer);
    let id = Ports::new(app, &t.customer).create(&token, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    fuzz::Target { account: t.customer.id.clone(), port_request: id, token }
}

#[tokio::test]
async fn a_short_fuzz_run_finds_no_server_error() {
    use rand::SeedableRng;
    let app = spawn_app().await;
    let target = fuzz_target(&app).await;
    let runs: usize = std::env::var("FUZZ_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1500);
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261124);
    let requests: Vec<fuzz::FuzzRequest> = (0..runs).map(|_| fuzz::request(&mut rng, &target)).collect();
    let mut failures = Vec::new();
    for chunk in requests.chunks(8) {
        let calls = chunk.iter().map(|r| fuzz::send(&app.http, &app.address, r));
        for result in futures_util::future::join_all(calls).await {
            if let Err(e) = result {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{} failures, first ones: {:#?}", failures.len(), &failures[..failures.len().min(5)]);
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let token = app.token(&t.customer);
    let addr = app.address.trim_start_matches("http://").to_owned();
    let path = format!("/v2/accounts/{}/port_requests", t.customer.id);
    // announces a body, sends a little of it, then nothing
    let handle = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(40))).unwrap();
        write!(s, "PUT {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"data\"").unwrap();
        let started = std::time::Instant::now();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        (started.elapsed(), answer)
    });
    // meanwhile the service serves others
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    let (elapsed, answer) = tokio::task::spawn_blocking(move || handle.join().unwrap()).await.unwrap();
    assert!(elapsed < std::time::Duration::from_secs(30), "cut off after {elapsed:?}");
    assert!(answer.starts_with("HTTP/1.1 408") || answer.is_empty(), "{answer}");
}
