//! Notifications derived from the saved requests: real MailDev, real HTTP receivers.

use crate::helpers::{
    OwnMaildev, Ports, TestApp, assert_error, mails_to, receiver, spawn_app, spawn_app_with, subjects, support_email,
    tree, wait_mails,
};
use crate::kazoo::{Account, hex32, now_gregorian, random_number};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

fn maildev() -> String {
    std::env::var("MAILDEV_URL").expect("MAILDEV_URL is set: run the tests with scripts/test.sh")
}

fn customer_address() -> String {
    format!("customer-{}@example.com", &hex32()[..12])
}

/// A request whose submitter gets mail at `to`, optionally with a webhook.
async fn create(app: &TestApp, account: &Account, to: &str, webhook: Option<&str>) -> String {
    let mut data = json!({"name": format!("Port for {to}"), "numbers": {random_number(): {}},
                          "notifications": {"email": {"send_to": to}}});
    if let Some(url) = webhook {
        data["notifications"]["webhook"] = json!({"url": url});
    }
    let (status, body) =
        app.call(Method::PUT, &Ports::new(app, account).path(""), &app.token(account), Some(data)).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

fn comment(text: &str, private: bool) -> Value {
    json!({"comments": [{"author": "x", "content": text, "timestamp": now_gregorian() + 5, "is_private": private}]})
}

#[tokio::test]
async fn each_transition_and_comment_sends_kazoos_emails() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let (to, support) = (customer_address(), support_email(&t.reseller));
    let id = create(&app, &t.customer, &to, None).await;
    let resp = app
        .request(Method::PUT, &ports.path(&format!("/{id}/attachments?filename=bill.pdf")), Some(&member))
        .header("content-type", "application/pdf")
        .body(b"%PDF-1.4 bill".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let (status, _) = ports.to(&member, &id, "submitted", Some(json!({"reason": "ready to go"}))).await;
    assert_eq!(status, 200);
    let mine = wait_mails(&maildev(), &to, 1).await;
    assert_eq!(subjects(&mine), ["Number port request for account 'Customer'"]);
    assert!(mine[0]["text"].as_str().unwrap().contains("ready to go"));
    assert_eq!(mine[0]["attachments"][0]["fileName"], "bill.pdf");
    let theirs = wait_mails(&maildev(), &support, 2).await;
    assert_eq!(
        subjects(&theirs),
        ["Number port request for account 'Customer'", "Number port request for account 'Customer' (Details)",]
    );

    ports.walk(&authority, &id, &["pending"]).await;
    app.call(Method::PUT, &ports.path(&format!("/{id}/comments")), &authority, Some(comment("need your bill", false)))
        .await;
    app.call(Method::PUT, &ports.path(&format!("/{id}/comments")), &authority, Some(comment("carrier is slow", true)))
        .await;
    ports.walk(&authority, &id, &["scheduled", "completed"]).await;

    let name = format!("Port for {to}");
    let mine = wait_mails(&maildev(), &to, 5).await;
    assert_eq!(
        subjects(&mine),
        [
            format!("New comment for port request '{name}'"),
            format!("Number port request '{name}' completed"),
            "Number port request for account 'Customer'".to_owned(),
            format!("Port request '{name}' has been scheduled"),
            format!("Port request: '{name}' is now pending"),
        ]
    );
    let public = mine.iter().find(|m| m["subject"].as_str().unwrap().starts_with("New comment")).unwrap();
    assert!(public["text"].as_str().unwrap().contains("need your bill"));
    assert!(
        !mine.iter().any(|m| m["text"].as_str().unwrap().contains("carrier is slow")),
        "private comments never reach the submitter"
    );
    let theirs = wait_mails(&maildev(), &support, 4).await;
    assert_eq!(theirs.iter().filter(|m| m["subject"].as_str().unwrap().starts_with("New comment")).count(), 2);

    // rejected and canceled go to both
    let other = create(&app, &t.customer, &to, None).await;
    ports.walk(&authority, &other, &["submitted", "rejected", "canceled"]).await;
    let mine = wait_mails(&maildev(), &to, 8).await;
    let other_name = format!("Port for {to}");
    assert!(subjects(&mine).contains(&format!("Port request '{other_name}' has been rejected")));
    assert!(subjects(&mine).contains(&format!("Port request '{other_name}' has been canceled")));
    let theirs = wait_mails(&maildev(), &support, 9).await;
    assert!(subjects(&theirs).contains(&format!("Port request '{other_name}' has been canceled")));

    // the delivery records, for the authority only
    let (status, body) = app.call(Method::GET, &ports.path(&format!("/{id}/notifications")), &authority, None).await;
    assert_eq!(status, 200);
    let records = body["data"].as_array().unwrap();
    assert!(records.iter().all(|r| r["status"] == "delivered"), "{body}");
    assert!(records.iter().any(|r| r["event"] == "port_request_admin" && r["recipients"] == json!([support])));
    let (status, body) = app.call(Method::GET, &ports.path(&format!("/{id}/notifications")), &member, None).await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test]
async fn nothing_is_lost_while_the_mail_relay_is_down() {
    let mut mail = OwnMaildev::start().await;
    let smtp = mail.smtp_url();
    let app =
        spawn_app_with(move |s| s.smtp_url = kazoo_port_requests::configuration::SmtpUrl::parse(&smtp).unwrap()).await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let to = customer_address();
    mail.stop();
    let id = create(&app, &t.customer, &to, None).await;
    for (token, state) in
        [(&member, "submitted"), (&authority, "pending"), (&authority, "scheduled"), (&authority, "completed")]
    {
        let (status, body) = ports.to(token, &id, state, None).await;
        assert_eq!(status, 200, "{state} while SMTP is down: {body}");
    }
    let (status, _) =
        app.call(Method::PUT, &ports.path(&format!("/{id}/comments")), &authority, Some(comment("hello", false))).await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (_, body) = app.call(Method::GET, &ports.path(&format!("/{id}/notifications")), &authority, None).await;
    let pending: Vec<&Value> = body["data"].as_array().unwrap().iter().filter(|r| r["status"] == "pending").collect();
    assert!(!pending.is_empty() && pending.iter().any(|r| r["last_error"].is_string()), "{body}");

    mail.restart().await;
    let mine = wait_mails(&mail.url(), &to, 5).await;
    assert_eq!(mine.len(), 5, "{:?}", subjects(&mine));
    let support = wait_mails(&mail.url(), &support_email(&t.reseller), 3).await;
    assert_eq!(support.len(), 3, "{:?}", subjects(&support));
    let ids: std::collections::BTreeSet<&str> =
        mine.iter().chain(&support).map(|m| m["messageId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 8, "each email once");
}

fn verify(secret: &str, body: &[u8], sig: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes()) == sig
}

#[tokio::test]
async fn signed_webhooks_are_retried_until_accepted() {
    let hook = receiver(3).await;
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let id = create(&app, &t.customer, &customer_address(), Some(&format!("{}/hooks/ports", hook.url))).await;
    ports.to(&member, &id, "submitted", Some(json!({"reason": "go"}))).await;
    ports.walk(&authority, &id, &["pending"]).await;
    app.call(Method::PUT, &ports.path(&format!("/{id}/comments")), &member, Some(comment("public note", false))).await;
    app.call(Method::PUT, &ports.path(&format!("/{id}/comments")), &authority, Some(comment("private note", true)))
        .await;

    let hits = hook.wait(3).await;
    assert_eq!(hits.len(), 3, "each event once after the receiver recovered: {hits:?}");
    let bodies: Vec<Value> = hits.iter().map(|h| serde_json::from_slice(&h.body).unwrap()).collect();
    for (hit, body) in hits.iter().zip(&bodies) {
        assert_eq!(hit.path, "/hooks/ports");
        assert!(verify("test-webhook-secret", &hit.body, &hit.headers["x-signature-sha256"]), "bad signature");
        assert_eq!(body["port_request_id"], id);
        assert_eq!(body["account_id"], t.customer.id);
        assert!(body["timestamp"].is_i64());
    }
    let submitted = bodies.iter().find(|b| b["port_state"] == "submitted" && b["event"] == "transition").unwrap();
    assert_eq!(submitted["previous_state"], "unconfirmed");
    assert_eq!(submitted["reason"], "go");
    assert!(bodies.iter().any(|b| b["event"] == "comment"));
    assert!(!hits.iter().any(|h| String::from_utf8_lossy(&h.body).contains("private note")));
}

#[tokio::test]
async fn two_instances_deliver_each_email_once() {
    let queue = hex32();
    let (q1, q2) = (queue.clone(), queue.clone());
    let first = spawn_app_with(move |s| s.jobs.delivery.queue = q1).await;
    let second = spawn_app_with(move |s| s.jobs.delivery.queue = q2).await;
    let t = tree(&first).await;
    let to = customer_address();
    let mut ids = Vec::new();
    for app in [&first, &second, &first, &second] {
        let id = create(app, &t.customer, &to, None).await;
        let (status, _) = Ports::new(app, &t.customer).to(&app.token(&t.customer), &id, "submitted", None).await;
        assert_eq!(status, 200);
        ids.push(id);
    }
    let mine = wait_mails(&maildev(), &to, 4).await;
    assert_eq!(mine.len(), 4, "{:?}", subjects(&mine));
    let support = wait_mails(&maildev(), &support_email(&t.reseller), 8).await;
    assert_eq!(support.len(), 8);
}

#[tokio::test]
async fn the_carrier_push_is_retried_and_marks_the_request_sent() {
    let carrier = receiver(1).await;
    let app = spawn_app().await;
    let t = tree(&app).await;
    let customer = app
        .sys
        .account(Some(&t.reseller), "Pushy", json!({"submitted_port_requests_url": format!("{}/ports", carrier.url)}))
        .await;
    let ports = Ports::new(&app, &customer);
    let member = app.token(&customer);
    let id = create(&app, &customer, &customer_address(), None).await;
    app.request(Method::PUT, &ports.path(&format!("/{id}/attachments?filename=loa.pdf")), Some(&member))
        .header("content-type", "application/pdf")
        .body(b"%PDF-1.4 signed".to_vec())
        .send()
        .await
        .unwrap();
    app.call(
        Method::PUT,
        &ports.path(&format!("/{id}/comments")),
        &app.token(&t.reseller),
        Some(comment("internal", true)),
    )
    .await;
    ports.to(&member, &id, "submitted", None).await;

    let hits = carrier.wait(2).await;
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[0].path, format!("/ports/{id}"));
    let body: Value = serde_json::from_slice(&hits[0].body).unwrap();
    assert_eq!(body["id"], id);
    assert_eq!(body["port_state"], "submitted");
    assert_eq!(body["account_id"], customer.id);
    assert!(body.get("_rev").is_none() && body.get("pvt_type").is_none() && body.get("_attachments").is_none());
    assert!(!hits[0].body.windows(8).any(|w| w == b"internal"), "private comments are not pushed");
    assert_eq!(hits[1].path, format!("/ports/{id}/loa.pdf"));
    assert_eq!(hits[1].body, b"%PDF-1.4 signed");
    assert_eq!(hits[1].headers["content-type"], "application/pdf");
    let mut sent = false;
    for _ in 0..20 {
        if ports.get(&member, &id).await.1["data"]["sent"] == true {
            sent = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(sent, "sent becomes true once every call returned 200");
}

#[tokio::test]
async fn old_unconfirmed_requests_get_one_reminder_per_period() {
    let app = spawn_app_with(|s| s.jobs.reminders.interval = std::time::Duration::from_secs(1)).await;
    let t = tree(&app).await;
    let to = customer_address();
    let id = create(&app, &t.customer, &to, None).await;
    // ten days old, as if it had been forgotten
    let mut doc = app.sys.couch.get("port_requests", &id).await.unwrap();
    doc["pvt_created"] = json!(now_gregorian() - 10 * 86_400);
    assert_eq!(app.sys.couch.put("port_requests", &doc).await["ok"], true);
    let mails = wait_mails(&maildev(), &to, 1).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let mails = if mails.len() == 1 { mails_to(&maildev(), &to).await } else { mails };
    assert_eq!(subjects(&mails), [format!("Unfinished port request 'Port for {to}' reminder")]);
}

/// A webhook URL whose host resolves to a private address is refused on create and edit
/// (SSRF), naming the field; nothing is stored.
#[tokio::test]
async fn webhooks_to_private_addresses_are_refused_on_create_and_edit() {
    let app = spawn_app_with(|s| s.webhooks.allow_private = false).await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    for url in ["http://localhost:9/hooks", "http://10.1.2.3/hooks", "http://169.254.169.254/latest/meta-data"] {
        let data =
            json!({"name": "hook", "numbers": {random_number(): {}}, "notifications": {"webhook": {"url": url}}});
        let (status, body) = app.call(Method::PUT, &ports.path(""), &member, Some(data)).await;
        let errors = assert_error(status, &body, 400, "validation error");
        assert!(
            errors["notifications.webhook.url"]["forbidden"]["message"].as_str().unwrap().contains("private network"),
            "{body}"
        );
    }
    let id = create(&app, &t.customer, &customer_address(), None).await;
    let before = app.sys.couch.get("port_requests", &id).await.unwrap();
    let (status, body) = app
        .call(
            Method::PATCH,
            &ports.path(&format!("/{id}")),
            &member,
            Some(json!({"notifications": {"webhook": {"url": "http://127.0.0.1:1/x"}}})),
        )
        .await;
    assert_error(status, &body, 400, "validation error");
    assert_eq!(app.sys.couch.get("port_requests", &id).await.unwrap()["_rev"], before["_rev"], "nothing stored");
}

/// DNS can change after a URL was accepted: the delivery checks again, never calls a private
/// address, and the skip shows in the request's delivery records.
#[tokio::test]
async fn webhooks_to_private_addresses_are_skipped_at_delivery() {
    let hook = receiver(0).await;
    // one instance accepted the URL (private addresses allowed there), another delivers
    let queue = hex32();
    let (q1, q2) = (queue.clone(), queue);
    let writer = spawn_app_with(move |s| {
        s.jobs.delivery.queue = q1;
        s.jobs.delivery.worker = false;
    })
    .await;
    let app = spawn_app_with(move |s| {
        s.jobs.delivery.queue = q2;
        s.webhooks.allow_private = false;
    })
    .await;
    let t = tree(&app).await;
    let ports = Ports::new(&writer, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    // a name, not a literal address: the check follows DNS
    let url = hook.url.replace("127.0.0.1", "localhost");
    let id = create(&writer, &t.customer, &customer_address(), Some(&format!("{url}/hooks"))).await;
    ports.to(&member, &id, "submitted", None).await;
    let path = ports.path(&format!("/{id}/notifications"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let webhook = loop {
        let (_, body) = app.call(Method::GET, &path, &authority, None).await;
        let item = body["data"].as_array().unwrap().iter().find(|i| i["channel"] == "webhook").cloned();
        if let Some(item) = item.filter(|i| i["status"] != "pending") {
            break item;
        }
        assert!(std::time::Instant::now() < deadline, "the webhook item was never settled: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(webhook["status"], "skipped", "{webhook}");
    assert!(webhook["last_error"].as_str().unwrap().contains("private network"), "{webhook}");
    assert!(hook.hits.lock().unwrap().is_empty(), "the private receiver was called");
}
