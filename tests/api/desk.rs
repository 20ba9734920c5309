//! The port authority's desk: the rejection catalogue (shipped and overridden in the
//! authority's `configs_port_authority_desk`), rejections with a code (stored, mailed, in the
//! webhook and the timeline), and what a resubmission changed.

use crate::helpers::{Ports, TestApp, assert_error, receiver, spawn_app, tree, wait_mails};
use crate::kazoo::{Account, account_db, hex32, random_number};
use reqwest::Method;
use serde_json::{Value, json};

fn maildev() -> String {
    std::env::var("MAILDEV_URL").expect("MAILDEV_URL is set: run the tests with scripts/test.sh")
}

/// Writes the authority's desk configuration.
pub async fn configure_desk(app: &TestApp, authority: &Account, config: Value) {
    let db = account_db(&authority.id);
    let mut doc = config;
    doc["_id"] = json!("configs_port_authority_desk");
    if let Some(old) = app.sys.couch.get(&db, "configs_port_authority_desk").await {
        doc["_rev"] = old["_rev"].clone();
    }
    let r = app.sys.couch.put(&db, &doc).await;
    assert_eq!(r["ok"], true, "{r}");
}

/// A submitted request of `account` mailing `to`, with a webhook when given.
async fn submitted(app: &TestApp, account: &Account, to: &str, webhook: Option<String>) -> String {
    let mut data = json!({"name": "Desk port", "numbers": {random_number(): {}},
        "bill": {"name": "Jo Doe", "carrier": "Pacific Bell", "account_number": "A-1", "pin": "1111"},
        "notifications": {"email": {"send_to": to}}});
    if let Some(url) = webhook {
        data["notifications"]["webhook"] = json!({"url": url});
    }
    let ports = Ports::new(app, account);
    let (status, body) = app.call(Method::PUT, &ports.path(""), &app.token(account), Some(data)).await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let (status, body) = ports.to(&app.token(account), &id, "submitted", None).await;
    assert_eq!(status, 200, "{body}");
    id
}

#[tokio::test]
async fn the_catalogue_in_effect_is_the_shipped_one_with_the_authoritys_changes() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let path = Ports::new(&app, &t.customer).path("/rejection_codes");
    let (status, body) = app.call(Method::GET, &path, &app.token(&t.customer), None).await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<&str> = body["data"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    assert!(codes.len() >= 10 && codes.contains(&"wrong_pin") && codes.contains(&"open_order_at_losing_carrier"));
    let pin = body["data"].as_array().unwrap().iter().find(|c| c["code"] == "wrong_pin").unwrap();
    assert_eq!(pin["fields"], json!(["bill.pin"]));
    assert!(pin["title"].is_string() && pin["meaning"].is_string() && pin["fix"].is_string());

    // another authority's changes: one code withdrawn, one reworded, one added
    let other = app.sys.account(None, "Other reseller", json!({"pvt_reseller": true})).await;
    app.sys.whitelabel(&other, &other.id, None).await;
    let theirs = app.sys.account(Some(&other), "Their customer", json!({})).await;
    configure_desk(
        &app,
        &other,
        json!({"rejection_codes": {
            "wrong_btn": null,
            "wrong_pin": {"fix": "Call 555-0100 for the PIN"},
            "csr_mismatch": {"title": "CSR does not match", "meaning": "m", "fix": "f", "fields": ["bill.name"]},
        }}),
    )
    .await;
    let path = Ports::new(&app, &theirs).path("/rejection_codes");
    let (status, body) = app.call(Method::GET, &path, &app.token(&theirs), None).await;
    assert_eq!(status, 200, "{body}");
    let list = body["data"].as_array().unwrap();
    assert!(list.iter().all(|c| c["code"] != "wrong_btn"));
    assert_eq!(list.iter().find(|c| c["code"] == "wrong_pin").unwrap()["fix"], "Call 555-0100 for the PIN");
    assert_eq!(list.iter().find(|c| c["code"] == "csr_mismatch").unwrap()["fields"], json!(["bill.name"]));
    // the first authority's catalogue is untouched
    let path = Ports::new(&app, &t.customer).path("/rejection_codes");
    let (_, body) = app.call(Method::GET, &path, &app.token(&t.customer), None).await;
    assert!(body["data"].as_array().unwrap().iter().any(|c| c["code"] == "wrong_btn"));
    // another account's catalogue is not for this caller
    let (status, _) = app.call(Method::GET, &path, &app.token(&theirs), None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_unknown_code_is_refused_naming_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let id = submitted(&app, &t.customer, &format!("desk-{}@example.com", &hex32()[..8]), None).await;
    let before = app.sys.couch.get("port_requests", &id).await.unwrap();
    let authority = app.token(&t.reseller);
    let (status, body) = ports.to(&authority, &id, "rejected", Some(json!({"reason_code": "no_such_code"}))).await;
    let errors = assert_error(status, &body, 400, "validation error");
    assert_eq!(errors["reason_code"]["enum"]["value"], "no_such_code", "{body}");
    // a code belongs to a rejection only
    let (status, body) = ports.to(&authority, &id, "pending", Some(json!({"reason_code": "wrong_pin"}))).await;
    assert!(assert_error(status, &body, 400, "validation error")["reason_code"].is_object(), "{body}");
    let after = app.sys.couch.get("port_requests", &id).await.unwrap();
    assert_eq!(before["_rev"], after["_rev"]);
    // Kazoo's clients send no code: a free-text rejection works as it always did
    let (status, body) = ports.to(&authority, &id, "rejected", Some(json!({"reason": "call us"}))).await;
    assert_eq!(status, 200, "{body}");
    let doc = app.sys.couch.get("port_requests", &id).await.unwrap();
    assert_eq!(doc["pvt_transitions"][0]["reason"], "call us");
    assert!(doc["pvt_transitions"][0].get("reason_code").is_none());
}

#[tokio::test]
async fn a_coded_rejection_is_stored_mailed_hooked_and_shown_and_the_resubmission_lists_the_fix() {
    let hook = receiver(0).await;
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let to = format!("desk-{}@example.com", &hex32()[..8]);
    let id = submitted(&app, &t.customer, &to, Some(format!("{}/hooks/desk", hook.url))).await;
    let (authority, member) = (app.token(&t.reseller), app.token(&t.customer));
    let (status, body) = ports
        .to(
            &authority,
            &id,
            "rejected",
            Some(json!({"reason": "PIN refused by Pacific Bell", "reason_code": "wrong_pin"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // kept in the transition Kazoo stores
    let doc = app.sys.couch.get("port_requests", &id).await.unwrap();
    let entry = &doc["pvt_transitions"][0];
    assert_eq!(entry["transition"]["new"], "rejected");
    assert_eq!(entry["reason"], "PIN refused by Pacific Bell");
    assert_eq!(entry["reason_code"], "wrong_pin");
    assert_eq!(entry["rejection"]["fields"], json!(["bill.pin"]));
    assert!(!entry.to_string().contains("1111"), "the fingerprint copies no value: {entry}");

    // the mail says what it means and the fix
    let mails = wait_mails(&maildev(), &to, 2).await;
    let rejected = mails.iter().find(|m| m["subject"].as_str().unwrap_or_default().contains("rejected")).unwrap();
    let text = rejected["text"].as_str().unwrap();
    assert!(
        text.contains("Wrong PIN or passcode") && text.contains("port-out PIN") && text.contains("bill.pin"),
        "{text}"
    );
    assert!(rejected["html"].as_str().unwrap().contains("Wrong PIN or passcode"));

    // the webhook carries it
    let hits = hook.wait(2).await;
    let bodies: Vec<Value> = hits.iter().map(|h| serde_json::from_slice(&h.body).unwrap()).collect();
    let hooked = bodies.iter().find(|b| b["port_state"] == "rejected").expect("the rejection's webhook");
    assert_eq!(hooked["rejection"]["code"], "wrong_pin");
    assert!(hooked["rejection"]["fix"].as_str().unwrap().contains("PIN"));

    // the customer fixes the PIN and the name, and submits again
    let (status, body) = app
        .call(
            Method::PATCH,
            &ports.path(&format!("/{id}")),
            &member,
            Some(json!({"bill": {"pin": "2222", "name": "Jo A. Doe"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ports.to(&member, &id, "submitted", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.call(Method::GET, &ports.path(&format!("/{id}/timeline")), &authority, None).await;
    assert_eq!(status, 200, "{body}");
    let entries = body["data"].as_array().unwrap();
    let rejection = entries.iter().find(|e| e["transition"]["new"] == "rejected").unwrap();
    assert_eq!(rejection["rejection"]["title"], "Wrong PIN or passcode");
    assert!(rejection.get("fingerprint").is_none(), "{rejection}");
    let again = entries.iter().rev().find(|e| e["transition"]["new"] == "submitted").unwrap();
    assert_eq!(again["changed_since_rejection"], json!(["bill.name", "bill.pin"]), "{again}");
    // a first submission lists nothing
    let first = entries.iter().find(|e| e["transition"]["new"] == "submitted").unwrap();
    assert!(first.get("changed_since_rejection").is_none());
}
