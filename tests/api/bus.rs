//! Kazoo's AMQP bus: the port events on a real RabbitMQ (the one scripts/test.sh starts, or a
//! test's own), checked as Kazoo's consumers take them.

use crate::amqp::{amqp_url, bound_as_teletype, check_kapi, listen};
use crate::helpers::{Ports, TestApp, receiver, spawn_app_with, tree};
use crate::kazoo::{Account, hex32, now_gregorian, random_number};
use futures_util::StreamExt;
use kazoo_port_requests::configuration::{BusSettings, Settings};
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicPublishOptions};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn with_bus(extra: impl FnOnce(&mut Settings)) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.bus = BusSettings::parse(&amqp_url(), Duration::from_secs(30)).unwrap();
        extra(s);
    }
}

async fn create(app: &TestApp, account: &Account, webhook: Option<&str>) -> String {
    let mut data = json!({"name": "Bus", "numbers": {random_number(): {}}});
    if let Some(url) = webhook {
        data["notifications"] = json!({"webhook": {"url": url}});
    }
    let (status, body) =
        app.call(Method::PUT, &Ports::new(app, account).path(""), &app.token(account), Some(data)).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_port_event_is_published_once_as_kazoo_takes_it() {
    let listener = listen(&amqp_url(), &format!("kpr-test-{}", hex32()), false).await;
    let app = spawn_app_with(with_bus(|_| {})).await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let id = create(&app, &t.customer, None).await;
    let (status, _) = ports.to(&member, &id, "submitted", Some(json!({"reason": "go"}))).await;
    assert_eq!(status, 200);
    let comment = json!({"comments": [{"author": "x", "content": "need the bill", "timestamp": now_gregorian() + 5}]});
    let (status, body) =
        app.call(Method::PUT, &ports.path(&format!("/{id}/comments")), &authority, Some(comment)).await;
    assert_eq!(status, 200, "{body}");
    ports.walk(&authority, &id, &["pending", "scheduled", "completed"]).await;
    let other = create(&app, &t.customer, None).await;
    ports.walk(&authority, &other, &["submitted"]).await;
    let (status, body) =
        ports.to(&authority, &other, "rejected", Some(json!({"reason_code": "bill_missing_or_old"}))).await;
    assert_eq!(status, 200, "{body}");
    let dropped = create(&app, &t.customer, None).await;
    ports.walk(&member, &dropped, &["canceled"]).await;

    let heard = listener.wait(&id, 5).await;
    let names: Vec<&str> = heard.iter().map(|h| h.body["Event-Name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["port_request", "port_comment", "port_pending", "port_scheduled", "ported"],
        "each once, in order"
    );
    for h in &heard {
        check_kapi(h);
        assert_eq!(h.body["Account-ID"], t.customer.id.as_str());
    }
    let submitted = &heard[0].body;
    assert_eq!(submitted["Reason"]["content"], "go");
    assert_eq!(submitted["Authorized-By"], t.customer.id.as_str());
    assert_eq!(submitted["Version"], "v2");
    assert!(heard[2].body.get("Reason").is_none(), "no reason given, no Reason");
    assert_eq!(heard[1].body["Comment"]["content"], "need the bill");
    let ids: std::collections::HashSet<&str> = heard.iter().map(|h| h.body["Msg-ID"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5, "each event its own Msg-ID");
    let others = listener.wait(&other, 2).await;
    let names: Vec<&str> = others.iter().map(|h| h.body["Event-Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["port_request", "port_rejected"]);
    // a coded rejection: the code's title is the reason, the code and its fix beside it
    let reason = &others[1].body["Reason"];
    assert_eq!(reason["content"], "Bill missing or too old");
    assert_eq!(reason["reason_code"], "bill_missing_or_old");
    assert_eq!(reason["rejection"]["fields"], json!(["attachments.bill"]));
    check_kapi(&others[1]);
    let canceled = listener.wait(&dropped, 1).await;
    assert_eq!(canceled.len(), 1);
    assert_eq!(canceled[0].body["Event-Name"], "port_cancel");
    check_kapi(&canceled[0]);

    // the delivery log shows the publications, and the mails still go
    let (_, log) = app.call(Method::GET, &ports.path(&format!("/{id}/notifications")), &authority, None).await;
    let on_bus: Vec<&Value> = log["data"].as_array().unwrap().iter().filter(|r| r["channel"] == "bus").collect();
    assert_eq!(on_bus.len(), 5);
    assert!(on_bus.iter().all(|r| r["status"] == "delivered"), "{on_bus:?}");
    assert!(log["data"].as_array().unwrap().iter().any(|r| r["channel"] == "email"));
}

#[tokio::test]
async fn webhook_calls_and_bus_messages_keep_the_order_of_events() {
    let listener = listen(&amqp_url(), &format!("kpr-test-{}", hex32()), false).await;
    // the first calls fail: the later events wait for the earlier ones' retries
    let hook = receiver(3).await;
    let app = spawn_app_with(with_bus(|_| {})).await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let authority = app.token(&t.reseller);
    let id = create(&app, &t.customer, Some(&hook.url)).await;
    ports.walk(&authority, &id, &["submitted", "pending", "scheduled", "completed"]).await;
    let hits = hook.wait(4).await;
    let states: Vec<String> = hits
        .iter()
        .map(|h| {
            serde_json::from_slice::<Value>(&h.body).unwrap()["port_state"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(states, ["submitted", "pending", "scheduled", "completed"], "in order, each once");
    let names: Vec<String> =
        listener.wait(&id, 4).await.iter().map(|h| h.body["Event-Name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["port_request", "port_pending", "port_scheduled", "ported"]);
}

/// A stand-in for teletype: answers each publication on `targeted` with the status `answer`
/// picks (none: no answer).
async fn teletype(
    url: &str,
    answer: impl Fn(&Value, usize) -> Option<&'static str> + Send + 'static,
) -> Arc<Mutex<Vec<Value>>> {
    let queue = format!("teletype-{}", hex32());
    let (connection, channel, mut consumer) = bound_as_teletype(url, &queue, false).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        let _keep = connection;
        while let Some(Ok(d)) = consumer.next().await {
            let body: Value = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
            let _ = d.acker.ack(BasicAckOptions::default()).await;
            let times = {
                let mut seen = s.lock().unwrap();
                seen.push(body.clone());
                seen.iter().filter(|b| b["Msg-ID"] == body["Msg-ID"]).count()
            };
            let (Some(status), Some(server)) = (answer(&body, times), body["Server-ID"].as_str()) else { continue };
            let reply = json!({"Event-Category": "notification", "Event-Name": "notify_update", "Msg-ID": body["Msg-ID"],
                               "Status": status, "Failure-Message": if status == "failed" { json!("no template") } else { Value::Null },
                               "App-Name": "teletype", "App-Version": "4.3.0", "Node": "teletype@test"});
            channel
                .basic_publish(
                    "targeted",
                    server,
                    BasicPublishOptions::default(),
                    reply.to_string().as_bytes(),
                    BasicProperties::default().with_content_type("application/json".into()),
                )
                .await
                .unwrap();
        }
    });
    seen
}

#[tokio::test]
async fn with_teletype_mailing_its_answers_are_in_the_delivery_log() {
    let seen = teletype(&amqp_url(), |body, times| match body["Event-Name"].as_str() {
        Some("port_request") => Some("completed"),
        Some("port_pending") => Some("disabled"),
        // no answer the first time: published again after the reply timeout
        Some("port_scheduled") if times == 1 => None,
        Some("port_scheduled") => Some("completed"),
        _ => Some("ignored"),
    })
    .await;
    let app = spawn_app_with(with_bus(|s| {
        s.emails_by = kazoo_port_requests::configuration::EmailsBy::Teletype;
        if let Some(b) = s.bus.as_mut() {
            b.reply_timeout = Duration::from_secs(2);
        }
    }))
    .await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let authority = app.token(&t.reseller);
    let to = format!("teletype-{}@example.com", &hex32()[..8]);
    let data = json!({"name": "T", "numbers": {random_number(): {}}, "notifications": {"email": {"send_to": to}}});
    let (_, body) = app.call(Method::PUT, &ports.path(""), &app.token(&t.customer), Some(data)).await;
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    ports.walk(&authority, &id, &["submitted", "pending", "scheduled"]).await;

    let mut records = vec![];
    for _ in 0..100 {
        let (_, log) = app.call(Method::GET, &ports.path(&format!("/{id}/notifications")), &authority, None).await;
        records = log["data"].as_array().unwrap().clone();
        if records.len() == 3 && records.iter().all(|r| r["status"] != "pending") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(records.iter().all(|r| r["channel"] == "bus"), "teletype mails: no mail of ours {records:?}");
    let status = |event: &str| records.iter().find(|r| r["event"] == event).map(|r| r["status"].clone()).unwrap();
    assert_eq!(status("port_request"), "delivered");
    assert_eq!(status("port_pending"), "skipped");
    assert_eq!(status("port_scheduled"), "delivered");
    let scheduled = records.iter().find(|r| r["event"] == "port_scheduled").unwrap();
    assert_eq!(scheduled["attempts"], 3, "published, published again, answered: {scheduled}");
    let published: Vec<Value> =
        seen.lock().unwrap().iter().filter(|b| b["Port-Request-ID"] == id.as_str()).cloned().collect();
    assert_eq!(published.len(), 4, "the unanswered one went twice, with one Msg-ID");
    assert!(published.iter().all(|b| b["Server-ID"].as_str().is_some_and(|s| !s.is_empty())));
    let mails: Value =
        reqwest::get(format!("{}/email", std::env::var("MAILDEV_URL").unwrap())).await.unwrap().json().await.unwrap();
    assert!(!mails.to_string().contains(&to), "the service mailed nothing");
}

/// Requests made and submitted by four workers for `secs`: their ids, and the slowest call.
async fn load(app: &TestApp, account: &Account, secs: u64) -> (Vec<String>, Duration) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let worker = async || {
        let (mut ids, mut slowest) = (vec![], Duration::ZERO);
        let ports = Ports::new(app, account);
        let token = app.token(account);
        while tokio::time::Instant::now() < deadline {
            let started = tokio::time::Instant::now();
            let data = json!({"name": "load", "numbers": {random_number(): {}}});
            let (status, body) = app.call(Method::PUT, &ports.path(""), &token, Some(data)).await;
            assert_eq!(status, 201, "the broker's state never fails an API call: {body}");
            let id = body["data"]["id"].as_str().unwrap().to_owned();
            let (status, body) = ports.to(&token, &id, "submitted", None).await;
            assert_eq!(status, 200, "{body}");
            slowest = slowest.max(started.elapsed() / 2);
            ids.push(id);
        }
        (ids, slowest)
    };
    let all = futures_util::future::join_all((0..4).map(|_| worker())).await;
    let slowest = all.iter().map(|(_, s)| *s).max().unwrap_or_default();
    (all.into_iter().flat_map(|(ids, _)| ids).collect(), slowest)
}

#[tokio::test]
async fn the_broker_stopped_under_load_loses_nothing_and_sends_nothing_twice() {
    let _alone = crate::helpers::OUTAGE_UNDER_LOAD.lock().await;
    let outage: u64 = std::env::var("FAULT_OUTAGE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    let mut rabbit = crate::amqp::OwnRabbit::start().await;
    // the service reaches the broker through a gate, so that after the broker's restart the
    // test's consumer is bound again before anything is published
    let gate = crate::amqp::Gate::new(rabbit.port).await;
    let listener = listen(&rabbit.url(), "kpr-outage-before", false).await;
    let gate_url = gate.url();
    let app = spawn_app_with(move |s| s.bus = BusSettings::parse(&gate_url, Duration::from_secs(30)).unwrap()).await;
    let t = tree(&app).await;

    let (before, slowest_before) = load(&app, &t.customer, 3).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while before.iter().any(|id| listener.about(id).is_empty()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &before {
        assert_eq!(listener.about(id).len(), 1, "{id}");
    }
    let t0 = tokio::time::Instant::now();
    gate.close();
    rabbit.stop();
    eprintln!("broker outage: stopped in {:?}", t0.elapsed());
    let (during, slowest_during) = load(&app, &t.customer, outage).await;
    assert!(during.iter().all(|id| listener.about(id).is_empty()));
    let t0 = tokio::time::Instant::now();
    rabbit.restart().await;
    eprintln!("broker outage: started again in {:?}", t0.elapsed());
    let listener = listen(&rabbit.url(), "kpr-outage-after", false).await;
    gate.open();
    let (after, _) = load(&app, &t.customer, 3).await;
    eprintln!(
        "broker outage: {} requests before, {} during {outage} s down, {} after; slowest call {:?} before, {:?} during",
        before.len(),
        during.len(),
        after.len(),
        slowest_before,
        slowest_during
    );
    assert!(slowest_during < Duration::from_secs(3), "the broker away never slows an API call: {slowest_during:?}");
    let caught_up = tokio::time::Instant::now();
    let deadline = caught_up + Duration::from_secs(90);
    for id in during.iter().chain(&after) {
        while listener.about(id).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!("broker outage: every event heard {:?} after the load", caught_up.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in during.iter().chain(&after) {
        let heard = listener.about(id);
        assert_eq!(heard.len(), 1, "{id}: each event once after the outage: {heard:?}");
        assert_eq!(heard[0].body["Event-Name"], "port_request");
    }
}
