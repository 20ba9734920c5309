//! The notification settings and bodies operators keep in CouchDB (`notification.<template>`,
//! as Kazoo's notifications API and Monster UI's Branding app write them), on a reseller, a
//! child and `system_config`: real MailDev, real CouchDB.

use crate::helpers::{Ports, TestApp, default_settings, spawn_app, start, tree};
use crate::kazoo::{Account, Couch, System, account_db, hex32, random_number};
use reqwest::Method;
use serde_json::{Value, json};

fn maildev() -> String {
    std::env::var("MAILDEV_URL").expect("MAILDEV_URL is set: run the tests with scripts/test.sh")
}

/// Every mail of `template` MailDev holds that was sent to `address` (as To, Cc or Bcc).
async fn mails_for(address: &str, template: &str) -> Vec<Value> {
    let all: Value = reqwest::get(format!("{}/email", maildev())).await.unwrap().json().await.unwrap();
    let of = format!(":email:{template}:");
    all.as_array()
        .unwrap()
        .iter()
        .filter(|m| m["envelope"]["to"].as_array().is_some_and(|to| to.iter().any(|t| t["address"] == address)))
        .filter(|m| m["headers"]["x-kazoo-port-delivery"].as_str().is_some_and(|d| d.contains(&of)))
        .cloned()
        .collect()
}

/// Waits for `n` mails of `template` to `address`, then a little longer to catch a copy too many.
async fn wait_for(address: &str, template: &str, n: usize) -> Vec<Value> {
    for _ in 0..150 {
        if mails_for(address, template).await.len() >= n {
            tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
            return mails_for(address, template).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    mails_for(address, template).await
}

fn address(what: &str) -> String {
    format!("{what}-{}@example.com", &hex32()[..10])
}

/// Writes `notification.<template>` in `db` with `settings` and the given bodies (as Kazoo's
/// notifications API stores them: attachments `template.text/html` and `template.text/plain`).
async fn store(couch: &Couch, db: &str, template: &str, settings: Value, html: Option<&str>, text: Option<&str>) {
    let mut doc = settings;
    doc["_id"] = json!(format!("notification.{template}"));
    doc["pvt_type"] = json!("notification");
    if let Some(old) = couch.get(db, &format!("notification.{template}")).await {
        doc["_rev"] = old["_rev"].clone();
    }
    let mut rev = couch.put(db, &doc).await["rev"].as_str().unwrap().to_owned();
    for (name, ct, body) in [("template.text/html", "text/html", html), ("template.text/plain", "text/plain", text)] {
        if let Some(body) = body {
            let r = couch.put_attachment(db, &format!("notification.{template}"), &rev, name, ct, body.into()).await;
            rev = r["rev"].as_str().unwrap().to_owned();
        }
    }
}

/// A request of `account` mailing `to`, moved to `state` by `authority`.
async fn request_moved(
    app: &TestApp,
    account: &Account,
    authority: &Account,
    to: &str,
    name: &str,
    state: &str,
) -> String {
    let ports = Ports::new(app, account);
    let data = json!({"name": name, "numbers": {random_number(): {}}, "notifications": {"email": {"send_to": to}},
                      "bill": {"name": "Jo <Doe>", "carrier": "PACIFIC BELL", "locality": "San Francisco"}});
    let (status, body) = app.call(Method::PUT, &ports.path(""), &app.token(account), Some(data)).await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    ports.walk(&app.token(authority), &id, crate::helpers::path_to(state)).await;
    id
}

async fn log(app: &TestApp, account: &Account, token: &str, id: &str) -> Vec<Value> {
    let ports = Ports::new(app, account);
    let (status, body) = app.call(Method::GET, &ports.path(&format!("/{id}/notifications")), token, None).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

// Our own fixtures, with the constructs Kazoo's shipped port templates use.
const HTML: &str = r#"<h1>{{ account.name }}: {{ port_request.name }}</h1>
{% if port_request.port_scheduled_date %}<p>Scheduled {{ port_request.port_scheduled_date.local|date:"l, F j, Y" }}</p>{% elif port_request.requested_port_date %}<p>Requested</p>{% else %}<p>Not scheduled yet</p>{% endif %}
<p>Numbers: {{ port_request.numbers|join:", " }}</p>
<p>Signee: {% firstof port_request.signee_name "-" %}</p>
<p>Bill: {{ port_request.bill.address.name }} / {{ port_request.bill.address.region }}</p>"#;
const TEXT: &str = r#"{{ port_request.name }} is {{ port_request.port_state }}.
Numbers: {{ port_request.numbers|join:", "|stringformat:"s"|wordwrap:40 }}
{% if port_request.transition_reason.content or port_request.comment %}Note: {{ port_request.transition_reason.content|default:"none" }}{% endif %}"#;

#[tokio::test]
async fn a_resellers_settings_and_bodies_are_used_with_its_cc_and_bcc() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let (to, cc, bcc) = (address("submitter"), address("cc"), address("bcc"));
    store(
        &app.sys.couch,
        &account_db(&t.reseller.id),
        "port_pending",
        json!({"enabled": true, "subject": "Pending: {{ port_request.name }} for {{ account.name }}",
               "from": "ports@reseller.example.com", "reply_to": "help@reseller.example.com",
               "cc": {"type": "specified", "email_addresses": [cc]},
               "bcc": {"type": "specified", "email_addresses": [bcc]}}),
        Some(HTML),
        Some(TEXT),
    )
    .await;
    let id = request_moved(&app, &t.customer, &t.reseller, &to, "Move <b>now</b>", "pending").await;

    let mine = wait_for(&to, "port_pending", 1).await;
    assert_eq!(mine.len(), 1, "one mail: {mine:?}");
    let m = &mine[0];
    // subjects are escaped, as Kazoo escapes them
    assert_eq!(m["subject"], "Pending: Move &lt;b&gt;now&lt;/b&gt; for Customer");
    assert_eq!(m["from"][0]["address"], "ports@reseller.example.com");
    assert_eq!(m["replyTo"][0]["address"], "help@reseller.example.com", "{m}");
    // an account's body is escaped
    let html = m["html"].as_str().unwrap();
    assert!(html.contains("<h1>Customer: Move &lt;b&gt;now&lt;/b&gt;</h1>"), "{html}");
    assert!(html.contains("<p>Not scheduled yet</p>"), "{html}");
    assert!(html.contains("<p>Signee: -</p>"), "{html}");
    assert!(html.contains("<p>Bill: Jo &lt;Doe&gt; / -</p>"), "{html}");
    let text = m["text"].as_str().unwrap();
    assert!(text.starts_with("Move &lt;b&gt;now&lt;/b&gt; is pending."), "{text}");
    // cc and bcc got the same message, once each
    assert_eq!(wait_for(&cc, "port_pending", 1).await.len(), 1);
    assert_eq!(wait_for(&bcc, "port_pending", 1).await.len(), 1);
    assert!(m["cc"].as_array().unwrap().iter().any(|c| c["address"] == cc.as_str()), "{m}");

    let log = log(&app, &t.customer, &app.token(&t.reseller), &id).await;
    let pending = log.iter().find(|r| r["event"] == "port_pending").unwrap();
    assert_eq!(pending["status"], "delivered");
    assert!(pending["attempts_log"][0].get("notes").is_none(), "nothing to note: {pending}");
}

#[tokio::test]
async fn a_child_overrides_settings_bodies_or_both() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let couch = &app.sys.couch;
    let (reseller_db, customer_db) = (account_db(&t.reseller.id), account_db(&t.customer.id));
    // the reseller has bodies and settings; the child only a subject: the child's settings,
    // the reseller's bodies
    store(
        couch,
        &reseller_db,
        "port_scheduled",
        json!({"subject": "R: {{ port_request.name }}"}),
        Some(HTML),
        Some(TEXT),
    )
    .await;
    store(couch, &customer_db, "port_scheduled", json!({"subject": "C: {{ port_request.name|safe }}"}), None, None)
        .await;
    let to = address("child-settings");
    request_moved(&app, &t.customer, &t.reseller, &to, "Sched <1>", "scheduled").await;
    let m = &wait_for(&to, "port_scheduled", 1).await[0];
    assert_eq!(m["subject"], "C: Sched <1>");
    assert!(m["html"].as_str().unwrap().contains("<h1>Customer: Sched &lt;1&gt;</h1>"), "{m}");

    // bodies only on the child (no subject anywhere): teletype's default subject, its bodies
    store(couch, &customer_db, "ported", json!({}), None, Some("Done: {{ port_request.name }}")).await;
    let to = address("child-bodies");
    request_moved(&app, &t.customer, &t.reseller, &to, "Fin", "completed").await;
    let m = &wait_for(&to, "ported", 1).await[0];
    assert_eq!(m["subject"], "Number port request 'Fin' completed");
    assert_eq!(m["text"].as_str().unwrap().trim(), "Done: Fin");
    assert!(m.get("html").is_none_or(|h| h.is_null() || h == false), "a text-only template sends text only: {m}");
}

#[tokio::test]
async fn enabled_false_stops_a_mail_where_it_is_found_first() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let couch = &app.sys.couch;
    let reseller_db = account_db(&t.reseller.id);
    // switched off on the reseller: no port_scheduled for its customers
    store(couch, &reseller_db, "port_scheduled", json!({"enabled": false}), None, None).await;
    let to = address("off");
    let id = request_moved(&app, &t.customer, &t.reseller, &to, "Quiet", "scheduled").await;
    let scheduled = settled(&app, &t.customer, &t.reseller, &id, "port_scheduled").await;
    assert_eq!(scheduled["status"], "skipped", "{scheduled}");
    assert!(scheduled["last_error"].as_str().unwrap().contains("disabled"), "{scheduled}");
    assert!(mails_for(&to, "port_scheduled").await.is_empty());
    // the others still go
    assert_eq!(wait_for(&to, "port_pending", 1).await.len(), 1);

    // a child switches it back on for itself: the first document found decides (another
    // child: what an account has is cached for a little while)
    let loud = app.sys.account(Some(&t.reseller), "Loud", json!({})).await;
    store(couch, &account_db(&loud.id), "port_scheduled", json!({"enabled": true}), None, None).await;
    let to = address("on-again");
    request_moved(&app, &loud, &t.reseller, &to, "Loud", "scheduled").await;
    let mails = wait_for(&to, "port_scheduled", 1).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0]["subject"], "Port request 'Loud' has been scheduled");

    // and a child may switch one off for itself only (Kazoo's string booleans too)
    let hush = app.sys.account(Some(&t.reseller), "Hush", json!({})).await;
    store(couch, &account_db(&hush.id), "port_pending", json!({"enabled": "false"}), None, None).await;
    let to = address("child-off");
    let id = request_moved(&app, &hush, &t.reseller, &to, "Hush", "pending").await;
    let record = settled(&app, &hush, &t.reseller, &id, "port_pending").await;
    assert_eq!(record["status"], "skipped", "{record}");
    assert!(mails_for(&to, "port_pending").await.is_empty());
}

/// The delivery record of `event`, once it is no longer pending.
async fn settled(app: &TestApp, account: &Account, authority: &Account, id: &str, event: &str) -> Value {
    for _ in 0..100 {
        let records = log(app, account, &app.token(authority), id).await;
        if let Some(r) = records.iter().find(|r| r["event"] == event && r["status"] != "pending") {
            return r.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{event} was never settled");
}

#[tokio::test]
async fn a_template_that_does_not_parse_falls_back_and_is_noted() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let couch = &app.sys.couch;
    let (reseller_db, customer_db) = (account_db(&t.reseller.id), account_db(&t.customer.id));
    // the child's body is broken, the reseller's is fine: the reseller's is used
    store(couch, &customer_db, "port_rejected", json!({}), Some("{% if port_request.name %}never closed"), None).await;
    store(couch, &reseller_db, "port_rejected", json!({}), None, Some("Rejected: {{ port_request.name }}")).await;
    let to = address("broken");
    let id = request_moved(&app, &t.customer, &t.reseller, &to, "Oops", "rejected").await;
    let m = &wait_for(&to, "port_rejected", 1).await[0];
    assert_eq!(m["text"].as_str().unwrap().trim(), "Rejected: Oops");
    let record = settled(&app, &t.customer, &t.reseller, &id, "port_rejected").await;
    let notes = record["attempts_log"][0]["notes"].to_string();
    assert!(notes.contains("template.text/html") && notes.contains(&t.customer.id), "{record}");

    // nothing on the walk renders, and the subject is broken too: this service's own mail
    store(couch, &reseller_db, "port_cancel", json!({"subject": "{{ x|nope }}"}), Some("{% frobnicate %}"), None).await;
    let to = address("all-broken");
    let id = request_moved(&app, &t.customer, &t.reseller, &to, "Gone", "canceled").await;
    let m = &wait_for(&to, "port_cancel", 1).await[0];
    assert_eq!(m["subject"], "Port request 'Gone' has been canceled", "teletype's default subject");
    assert!(m["text"].as_str().unwrap().contains("Gone"), "{m}");
    let record = settled(&app, &t.customer, &t.reseller, &id, "port_cancel").await;
    assert_eq!(record["status"], "delivered");
    assert_eq!(record["attempts_log"][0]["notes"].as_array().unwrap().len(), 2, "{record}");
}

#[tokio::test]
async fn cc_to_the_accounts_admins() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let admin = format!("admin-{}@example.com", &hex32()[..10]);
    let user = json!({"_id": hex32(), "pvt_type": "user", "priv_level": "admin", "email": admin, "username": admin});
    app.sys.couch.put(&account_db(&t.customer.id), &user).await;
    store(&app.sys.couch, &account_db(&t.customer.id), "port_pending", json!({"cc": {"type": "admins"}}), None, None)
        .await;
    let to = address("with-admins");
    request_moved(&app, &t.customer, &t.reseller, &to, "Admins", "pending").await;
    assert_eq!(wait_for(&to, "port_pending", 1).await.len(), 1);
    let copies = wait_for(&admin, "port_pending", 1).await;
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0]["subject"], "Port request: 'Admins' is now pending");
}

#[tokio::test]
async fn system_settings_and_bodies_apply_to_accounts_without_their_own() {
    // system_config is shared by every test of a database: this one has its own
    let own = crate::helpers::OwnCouch::start().await;
    let sys: &'static System = Box::leak(Box::new(System::install(Couch::new(&own.url())).await));
    let reseller = sys.account(None, "Reseller & Co", json!({})).await;
    sys.whitelabel(&reseller, &reseller.id, None).await;
    let customer = sys.account(Some(&reseller), "Customer", json!({})).await;
    store(
        &sys.couch,
        "system_config",
        "port_pending",
        json!({"subject": "System: {{ account.name }}"}),
        Some("<b>{{ account.name }}</b> {{ port_request.name }}"),
        None,
    )
    .await;
    // switched off for the whole system
    store(&sys.couch, "system_config", "port_scheduled", json!({"enabled": false}), None, None).await;
    let app = TestApp { address: start(default_settings(&own.url())).await, http: reqwest::Client::new(), sys };
    let to = address("system");
    let id = request_moved(&app, &customer, &reseller, &to, "A & B", "scheduled").await;
    let m = &wait_for(&to, "port_pending", 1).await[0];
    assert_eq!(m["html"], "<b>Customer</b> A & B", "the system's bodies are not escaped");
    assert_eq!(m["subject"], "System: Customer");
    let scheduled = settled(&app, &customer, &reseller, &id, "port_scheduled").await;
    assert_eq!(scheduled["status"], "skipped", "{scheduled}");
    assert!(mails_for(&to, "port_scheduled").await.is_empty());
}
