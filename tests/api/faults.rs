//! Faults: CouchDB going away under load, the service killed under load, and concurrent
//! writers on one request. Acknowledged writes are never lost, nothing is half-written.

use crate::helpers::{OwnCouch, Ports, TestApp, default_settings, free_port, receiver, send, spawn_app, start, tree};
use crate::kazoo::{Account, Couch, System, account_db, hex32, now_gregorian, random_number};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHAIN: [&str; 4] = ["unconfirmed", "submitted", "pending", "completed"];

/// What the load was told had happened.
#[derive(Default)]
struct Acks {
    states: BTreeMap<String, &'static str>,
    attachments: Vec<(String, String)>,
    statuses: BTreeMap<u16, usize>,
}

struct Load {
    base: String,
    account: Account,
    member: String,
    authority: String,
    webhook: Option<String>,
}

async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut req = http.request(method, url).header("X-Auth-Token", token).timeout(Duration::from_secs(10));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.json().await.unwrap_or(Value::Null)))
}

/// One worker of the steady load: create, upload, submit, pend, complete, over and over.
async fn worker(load: Arc<Load>, acks: Arc<Mutex<Acks>>, until: Instant) {
    let http = reqwest::Client::new();
    let base = format!("{}/v2/accounts/{}/port_requests", load.base, load.account.id);
    let record = |status: Option<u16>| {
        let mut a = acks.lock().unwrap();
        *a.statuses.entry(status.unwrap_or(0)).or_default() += 1;
    };
    while Instant::now() < until {
        let mut data = json!({"name": "load", "numbers": {random_number(): {}, random_number(): {}}});
        if let Some(url) = &load.webhook {
            data["notifications"] = json!({"webhook": {"url": url}});
        }
        let created = call(&http, Method::PUT, &base, &load.member, Some(json!({"data": data}))).await;
        record(created.as_ref().map(|c| c.0));
        let Some((201, body)) = created else {
            check_failure(&created);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let id = body["data"]["id"].as_str().unwrap().to_owned();
        acks.lock().unwrap().states.insert(id.clone(), "unconfirmed");
        let upload = http
            .put(format!("{base}/{id}/attachments?filename=bill.pdf"))
            .header("X-Auth-Token", &load.member)
            .header("content-type", "application/pdf")
            .body(b"%PDF-1.4 load".to_vec())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(r) = upload {
            record(Some(r.status().as_u16()));
            if r.status() == 201 {
                acks.lock().unwrap().attachments.push((id.clone(), "bill.pdf".into()));
            }
        }
        for (state, token) in
            [("submitted", &load.member), ("pending", &load.authority), ("completed", &load.authority)]
        {
            let moved = call(&http, Method::PATCH, &format!("{base}/{id}/{state}"), token, None).await;
            record(moved.as_ref().map(|m| m.0));
            match moved {
                Some((200, _)) => {
                    let s = CHAIN.iter().find(|c| **c == state).unwrap();
                    acks.lock().unwrap().states.insert(id.clone(), s);
                }
                other => {
                    check_failure(&other);
                    break;
                }
            }
        }
    }
}

/// A failed call is a 503 in the envelope (or no answer at all while the service restarts).
fn check_failure(answer: &Option<(u16, Value)>) {
    if let Some((status, body)) = answer {
        assert_eq!(*status, 503, "only CouchDB being away may fail a call: {status} {body}");
        assert!(body["message"].as_str().unwrap_or_default().starts_with("datastore"), "{body}");
    }
}

/// Every acknowledged write is there; completed requests have all their number documents and
/// the others none.
async fn verify(couch: &Couch, account: &Account, acks: &Acks) {
    assert!(!acks.states.is_empty(), "the load did something");
    for (id, acked) in &acks.states {
        let doc =
            couch.get("port_requests", id).await.unwrap_or_else(|| panic!("acknowledged request {id} is missing"));
        let state = doc["pvt_port_state"].as_str().unwrap();
        let (at, was) =
            (CHAIN.iter().position(|c| *c == state).unwrap(), CHAIN.iter().position(|c| c == acked).unwrap());
        assert!(at >= was, "{id} acknowledged {acked} but is {state}");
    }
    for (id, name) in &acks.attachments {
        let doc = couch.get("port_requests", id).await.unwrap();
        assert!(doc["_attachments"].get(name).is_some(), "acknowledged upload {name} of {id} is missing");
    }
    // every request the load touched, acknowledged or not
    for id in acks.states.keys() {
        let doc = couch.get("port_requests", id).await.unwrap();
        let completed = doc["pvt_port_state"] == "completed";
        let numbers = if completed { &doc["pvt_ported_numbers"] } else { &doc["numbers"] };
        for number in numbers.as_object().unwrap().keys() {
            let in_db = couch.get(&format!("numbers/{}", &number[..5]), number).await;
            let in_account = couch.get(&account_db(&account.id), number).await;
            if completed {
                assert_eq!(in_db.as_ref().map(|d| d["port_id"].clone()), Some(json!(id)), "{number} of completed {id}");
                assert!(in_account.is_some(), "{number} of completed {id} is missing in the account database");
            } else {
                assert!(
                    in_db.is_none_or(|d| d["port_id"] != json!(id)),
                    "{number} of {state} {id} was half-activated",
                    state = doc["pvt_port_state"]
                );
            }
        }
    }
}

async fn wait_deliveries_done(couch: &Couch, queue: &str) {
    let url = format!(
        "{}/kazoo_port_requests/_design/deliveries/_view/by_status?key={}",
        couch.url,
        crate::kazoo::enc(&json!([queue, "pending"]).to_string())
    );
    for _ in 0..150 {
        let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        if body["rows"].as_array().is_none_or(|r| r.is_empty() || r[0]["value"] == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let due = format!(
        "{}/kazoo_port_requests/_design/deliveries/_view/due?include_docs=true&start_key={}&end_key={}",
        couch.url,
        crate::kazoo::enc(&json!([queue, 0]).to_string()),
        crate::kazoo::enc(&json!([queue, {}]).to_string())
    );
    let left: Value = reqwest::get(&due).await.unwrap().json().await.unwrap();
    panic!("the deliveries did not drain: {left}");
}

fn outage_secs() -> u64 {
    std::env::var("FAULT_OUTAGE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(4)
}

#[tokio::test]
async fn couchdb_stopped_under_load() {
    let _alone = crate::helpers::OUTAGE_UNDER_LOAD.lock().await;
    let mut own = OwnCouch::start().await;
    let sys: &'static System = Box::leak(Box::new(System::install(Couch::new(&own.url())).await));
    let reseller = sys.account(None, "Reseller", json!({})).await;
    sys.whitelabel(&reseller, &reseller.id, None).await;
    let customer = sys.account(Some(&reseller), "Customer", json!({})).await;
    let mut settings = default_settings(&own.url());
    settings.couchdb.timeout = Duration::from_secs(2);
    let queue = settings.jobs.delivery.queue.clone();
    let address = start(settings).await;
    let load = Arc::new(Load {
        base: address.clone(),
        member: sys.token(&customer, true),
        authority: sys.token(&reseller, true),
        account: customer.clone(),
        webhook: None,
    });
    let acks = Arc::new(Mutex::new(Acks::default()));
    let outage = outage_secs();
    let until = Instant::now() + Duration::from_secs(outage + 5);
    let workers: Vec<_> = (0..4).map(|_| tokio::spawn(worker(load.clone(), acks.clone(), until))).collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    own.stop();
    tokio::time::sleep(Duration::from_secs(outage)).await;
    own.restart().await;
    for w in workers {
        w.await.unwrap();
    }
    // the deliveries finish; completions whose request write was cut off are undone
    wait_deliveries_done(&sys.couch, &queue).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    assert!(acks.statuses.get(&503).copied().unwrap_or(0) > 0, "the outage was felt: {:?}", acks.statuses);
    verify(&sys.couch, &customer, &acks).await;
    assert_eq!(reqwest::get(format!("{address}/healthz")).await.unwrap().status(), 200, "recovered without a restart");
}

pub fn spawn_service(couch: &str, port: u16, queue: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_kazoo-port-requests"))
        .arg("serve")
        .env("COUCHDB_URL", couch)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("OUTBOX_QUEUE", queue)
        .env("OUTBOX_POLL_MS", "200")
        .env("OUTBOX_RETRY_BASE_MS", "200")
        .env("OUTBOX_RETRY_MAX", "1")
        .env("OUTBOX_LEASE", "3")
        .env("COMPLETION_GRACE", "3")
        .env("WEBHOOK_ALLOW_PRIVATE", "true")
        .env("TEMPLATES_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/templates"))
        .env("LOG", "error")
        .spawn()
        .expect("the service starts")
}

pub async fn wait_healthy(address: &str) {
    for _ in 0..100 {
        if reqwest::get(format!("{address}/healthz")).await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the service did not come up");
}

#[tokio::test]
async fn service_killed_under_load() {
    let _alone = crate::helpers::OUTAGE_UNDER_LOAD.lock().await;
    let sys = crate::kazoo::system().await;
    let hook = receiver(0).await;
    let reseller = sys.account(None, "Reseller", json!({})).await;
    sys.whitelabel(&reseller, &reseller.id, None).await;
    let customer = sys.account(Some(&reseller), "Customer", json!({})).await;
    let (port, queue) = (free_port(), hex32());
    let address = format!("http://127.0.0.1:{port}");
    let mut service = spawn_service(&sys.couch.url, port, &queue);
    wait_healthy(&address).await;
    let load = Arc::new(Load {
        base: address.clone(),
        member: sys.token(&customer, true),
        authority: sys.token(&reseller, true),
        account: customer.clone(),
        webhook: Some(format!("{}/hooks", hook.url)),
    });
    let acks = Arc::new(Mutex::new(Acks::default()));
    let until = Instant::now() + Duration::from_secs(5);
    let workers: Vec<_> = (0..4).map(|_| tokio::spawn(worker(load.clone(), acks.clone(), until))).collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    service.kill().unwrap(); // SIGKILL
    service.wait().unwrap();
    let mut service = spawn_service(&sys.couch.url, port, &queue);
    wait_healthy(&address).await;
    for w in workers {
        w.await.unwrap();
    }
    wait_deliveries_done(&sys.couch, &queue).await;
    // a completion cut off by the kill is undone by the repair pass, after its grace
    tokio::time::sleep(Duration::from_secs(8)).await;
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    verify(&sys.couch, &customer, &acks).await;
    // every acknowledged move reaches the webhook, after the restart too
    let expected: usize = acks.states.values().map(|s| CHAIN.iter().position(|c| c == s).unwrap()).sum();
    let mut delivered = 0;
    for _ in 0..100 {
        let events: std::collections::BTreeSet<String> =
            hook.hits().iter().filter_map(|h| h.headers.get("x-kazoo-port-event-id").cloned()).collect();
        delivered = events.len();
        if delivered >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(delivered >= expected, "{delivered} of {expected} acknowledged transitions reached the webhook");
    let _ = service.kill();
    let _ = service.wait();
}

#[tokio::test]
async fn concurrent_writers_lose_nothing() {
    let app: TestApp = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let id = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let one = ports.path(&format!("/{id}"));
    let mut calls = Vec::new();
    for i in 0..10 {
        calls.push((
            "edit",
            i,
            app.request(Method::PATCH, &one, Some(&member)).json(&json!({"data": {format!("key{i}"): i}})),
        ));
        calls.push((
            "comment",
            i,
            app.request(Method::PUT, &format!("{one}/comments"), Some(&member))
                .json(&json!({"data": {"comments": [{"author": "a", "content": format!("comment {i}"), "timestamp": now_gregorian() + i as i64}]}})),
        ));
    }
    for i in 0..5 {
        calls.push((
            "upload",
            i,
            app.request(Method::PUT, &format!("{one}/attachments?filename=f{i}.pdf"), Some(&member))
                .header("content-type", "application/pdf")
                .body(format!("%PDF {i}").into_bytes()),
        ));
        calls.push(("submit", i, app.request(Method::PATCH, &format!("{one}/submitted"), Some(&member))));
    }
    let results = futures_util::future::join_all(
        calls.into_iter().map(|(kind, i, req)| async move { (kind, i, send(req).await) }),
    )
    .await;
    let doc = app.sys.couch.get("port_requests", &id).await.unwrap();
    let mut submits = 0;
    for (kind, i, (status, body)) in &results {
        match (*kind, *status) {
            (_, 409) => assert_eq!(body["message"], "datastore_conflict"),
            ("edit", 200) => assert_eq!(doc[format!("key{i}")], json!(i), "edit {i} was acknowledged but is lost"),
            ("comment", 200) => assert!(
                doc["comments"].as_array().unwrap().iter().any(|c| c["content"] == format!("comment {i}")),
                "comment {i} was acknowledged but is lost"
            ),
            ("upload", 201) => assert!(doc["_attachments"].get(format!("f{i}.pdf")).is_some(), "upload {i} is lost"),
            ("submit", 200) => submits += 1,
            ("submit", 400) => {
                assert_eq!(body["data"]["port_state"]["enum"]["message"], "Cannot move to new state from current state")
            }
            other => panic!("unexpected {other:?}: {body}"),
        }
    }
    // every loser got a 409 (or was refused by the state machine): at most one move won
    assert!(submits <= 1);
    let transitions = doc["pvt_transitions"].as_array().unwrap();
    assert_eq!(transitions.iter().filter(|t| t["transition"]["new"] == "submitted").count(), submits);
}

/// A request read once through the service, then renamed in CouchDB behind the service's
/// back, as another instance or Kazoo itself would. Returns its id.
async fn renamed_elsewhere(ports: &Ports<'_>, member: &str) -> String {
    let id = ports.create(member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let (status, _) = ports.get(member, &id).await;
    assert_eq!(status, 200);
    let mut doc = ports.app.sys.couch.get("port_requests", &id).await.unwrap();
    doc["name"] = json!("renamed elsewhere");
    ports.app.sys.couch.put("port_requests", &doc).await;
    id
}

/// Another instance (or Kazoo itself) writing the same request: the very next read and edit
/// see it.
#[tokio::test]
async fn writes_made_elsewhere_are_seen() {
    let app: TestApp = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let id = renamed_elsewhere(&ports, &member).await;
    let (_, body) = ports.get(&member, &id).await;
    assert_eq!(body["data"]["name"], "renamed elsewhere", "the next read sees it");
    let (status, body) =
        app.call(Method::PATCH, &ports.path(&format!("/{id}")), &member, Some(json!({"data": {"extra": 1}}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["name"], "renamed elsewhere");
}

/// A move right after another writer changed the request is made on that revision, once, and
/// notified once.
#[tokio::test]
async fn a_move_right_after_a_write_elsewhere_is_made_once() {
    let app: TestApp = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let id = renamed_elsewhere(&ports, &member).await;
    let (status, body) = ports.to(&member, &id, "submitted", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["name"], "renamed elsewhere");
    let stored = app.sys.couch.get("port_requests", &id).await.unwrap();
    assert_eq!(stored["pvt_transitions"].as_array().unwrap().len(), 2, "one move: {stored}");
    let records = notification_records(&app, &ports, &authority, &id).await;
    let distinct: std::collections::BTreeSet<String> =
        records.iter().map(|r| format!("{}/{}/{}", r["channel"], r["event"], r["audience"])).collect();
    assert_eq!(distinct.len(), records.len(), "{records:?}");
}

/// The delivery records of a request, once the delivery worker made any. Should none show, the
/// failure says what our database holds for the request.
async fn notification_records(app: &TestApp, ports: &Ports<'_>, token: &str, id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.call(Method::GET, &ports.path(&format!("/{id}/notifications")), token, None).await;
        assert_eq!(status, 200, "{body}");
        let records = body["data"].as_array().cloned().unwrap_or_default();
        if !records.is_empty() {
            return records;
        }
        if Instant::now() > deadline {
            let all: Value =
                app.sys.couch.get_raw("/kazoo_port_requests/_all_docs?include_docs=true").await.json().await.unwrap();
            let stored: Vec<&Value> = all["rows"]
                .as_array()
                .map(|rows| rows.iter().map(|r| &r["doc"]).filter(|d| d["port_request_id"] == id).collect())
                .unwrap_or_default();
            panic!("no notification records for {id}; our database holds {stored:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With the document cache off every read is a plain CouchDB read.
#[tokio::test]
async fn without_the_cache_reads_are_couchdbs_own() {
    let app: TestApp = crate::helpers::spawn_app_with(|s| s.doc_cache = 0).await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let id = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let (status, _) = ports.get(&member, &id).await;
    assert_eq!(status, 200);
    let mut doc = app.sys.couch.get("port_requests", &id).await.unwrap();
    doc["name"] = json!("renamed elsewhere");
    app.sys.couch.put("port_requests", &doc).await;
    let (_, body) = ports.get(&member, &id).await;
    assert_eq!(body["data"]["name"], "renamed elsewhere", "the very next read sees it");
}
