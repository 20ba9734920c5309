//! Kazoo's AMQP bus: the port events on a real RabbitMQ (the one scripts/test.sh starts, or a
//! test's own), checked as Kazoo's consumers take them.

use crate::helpers::{Ports, TestApp, receiver, spawn_app_with, tree};
use crate::kazoo::{Account, hex32, now_gregorian, random_number};
use futures_util::StreamExt;
use kazoo_port_requests::configuration::{BusSettings, Settings};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn amqp_url() -> String {
    std::env::var("KPR_AMQP_URL").expect("KPR_AMQP_URL is set: run the tests with scripts/test.sh")
}

/// One message as a consumer got it.
#[derive(Debug, Clone)]
pub struct Heard {
    pub routing_key: String,
    pub content_type: Option<String>,
    pub body: Value,
}

/// A consumer bound to exchange `notifications` as teletype binds (`notifications.*.*`).
pub struct Listener {
    _channel: Channel,
    pub heard: Arc<Mutex<Vec<Heard>>>,
    _connection: Connection,
}

pub async fn connect(url: &str) -> Connection {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    Connection::connect(url, properties).await.expect("the broker answers")
}

fn kazoo_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { durable: false, auto_delete: false, ..ExchangeDeclareOptions::default() }
}

pub async fn listen(url: &str, queue: &str, durable: bool) -> Listener {
    let connection = connect(url).await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare("notifications", ExchangeKind::Topic, kazoo_exchange(), FieldTable::default())
        .await
        .unwrap();
    let options = QueueDeclareOptions { durable, exclusive: !durable, auto_delete: !durable, ..Default::default() };
    channel.queue_declare(queue, options, FieldTable::default()).await.unwrap();
    channel
        .queue_bind(queue, "notifications", "notifications.*.*", QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut consumer =
        channel.basic_consume(queue, "", BasicConsumeOptions::default(), FieldTable::default()).await.unwrap();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let h = heard.clone();
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let body = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
            let content_type = d.properties.content_type().as_ref().map(|c| c.to_string());
            h.lock().unwrap().push(Heard { routing_key: d.routing_key.to_string(), content_type, body });
            let _ = d.acker.ack(BasicAckOptions::default()).await;
        }
    });
    Listener { _channel: channel, heard, _connection: connection }
}

impl Listener {
    /// What was heard about request `id`.
    pub fn about(&self, id: &str) -> Vec<Heard> {
        self.heard.lock().unwrap().iter().filter(|h| h.body["Port-Request-ID"] == id).cloned().collect()
    }

    /// Waits for `n` messages about `id`, then a little longer to catch one too many.
    pub async fn wait(&self, id: &str, n: usize) -> Vec<Heard> {
        for _ in 0..200 {
            if self.about(id).len() >= n {
                tokio::time::sleep(Duration::from_millis(1000)).await;
                return self.about(id);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.about(id)
    }
}

/// `kapi_notifications`' definition of a port event: its required and optional keys (with
/// `kz_api`'s defaults), and the value rules.
pub fn check_kapi(h: &Heard) {
    let b = h.body.as_object().unwrap_or_else(|| panic!("a JSON object: {h:?}"));
    let event = b["Event-Name"].as_str().unwrap();
    assert_eq!(h.routing_key, format!("notifications.number.{event}"));
    assert_eq!(h.content_type.as_deref(), Some("application/json"));
    let mut required =
        vec!["App-Name", "App-Version", "Event-Category", "Event-Name", "Msg-ID", "Account-ID", "Port-Request-ID"];
    if event == "port_comment" {
        required.push("Comment");
    }
    let mut optional = vec!["Authorized-By", "Local-Number", "Number", "Number-State", "Port", "Version"];
    if event != "port_comment" {
        optional.push("Reason");
    }
    optional.extend(["To", "Cc", "Bcc", "From", "Reply-To", "Subject", "HTML", "Text", "Account-DB", "Preview"]);
    optional.extend(["Attachment-URL", "Server-ID", "Node", "Defer-Response", "Access-Group", "Destination-Server"]);
    optional.extend(["Geo-Location", "Log-ID", "API-Account-ID", "API-Call-ID", "Queue-ID", "Raw-Headers"]);
    for k in &required {
        let v = b.get(*k).unwrap_or_else(|| panic!("{k} is required: {h:?}"));
        assert!(!v.is_null() && v != "", "{k} is set: {h:?}");
    }
    for k in b.keys() {
        assert!(
            required.contains(&k.as_str()) || optional.contains(&k.as_str()),
            "{k} is not in the definition: {h:?}"
        );
    }
    assert_eq!(b["Event-Category"], "notification");
    assert!(
        [
            "port_request",
            "port_pending",
            "port_scheduled",
            "ported",
            "port_rejected",
            "port_cancel",
            "port_comment",
            "port_unconfirmed"
        ]
        .contains(&event)
    );
    if let Some(r) = b.get("Reason") {
        assert!(r.is_object(), "Reason is an object: {h:?}");
    }
    if let Some(c) = b.get("Comment") {
        assert!(c.is_object() && c["content"].is_string(), "{h:?}");
    }
    for k in ["App-Name", "App-Version", "Msg-ID", "Account-ID", "Port-Request-ID", "Server-ID", "Node", "Version"] {
        if let Some(v) = b.get(k) {
            assert!(v.is_string(), "{k} is a string: {h:?}");
        }
    }
}

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
    ports.walk(&authority, &other, &["submitted", "rejected"]).await;
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
    let others: Vec<String> =
        listener.wait(&other, 2).await.iter().map(|h| h.body["Event-Name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(others, ["port_request", "port_rejected"]);
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
    let connection = connect(url).await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare("notifications", ExchangeKind::Topic, kazoo_exchange(), FieldTable::default())
        .await
        .unwrap();
    let queue = format!("teletype-{}", hex32());
    let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    channel.queue_declare(&queue, options, FieldTable::default()).await.unwrap();
    channel
        .queue_bind(&queue, "notifications", "notifications.*.*", QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut consumer =
        channel.basic_consume(&queue, "", BasicConsumeOptions::default(), FieldTable::default()).await.unwrap();
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
