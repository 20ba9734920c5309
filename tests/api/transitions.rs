//! The transition table of Kazoo 4.3's `knm_port_request` (`docs/api.md`), every row, allowed and refused, by the port
//! authority and by the account itself; the authority walk; scheduling; completion; charges;
//! concurrent transitions.

use crate::helpers::{Ports, assert_error, path_to, spawn_app, spawn_app_with, tree};
use crate::kazoo::{account_db, random_number};
use reqwest::Method;
use serde_json::{Value, json};

const STATES: [&str; 7] = ["unconfirmed", "submitted", "pending", "scheduled", "completed", "rejected", "canceled"];

fn allowed_from(to: &str) -> &'static [&'static str] {
    match to {
        "submitted" => &["unconfirmed", "rejected"],
        "pending" => &["submitted"],
        "scheduled" => &["pending"],
        "completed" => &["pending", "scheduled", "rejected"],
        "rejected" => &["submitted", "pending", "scheduled"],
        "canceled" => &["unconfirmed", "submitted", "pending", "scheduled", "rejected"],
        _ => &[],
    }
}

fn member_may(from: &str, to: &str) -> bool {
    to == "submitted" || (to == "canceled" && from == "unconfirmed")
}

#[tokio::test]
async fn every_row_of_the_transition_table() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    for from in STATES {
        let mut current: Option<String> = None;
        for to in STATES.iter().filter(|s| **s != "unconfirmed") {
            for (who, token) in [("member", &member), ("authority", &authority)] {
                let id = match &current {
                    Some(id) => id.clone(),
                    None => {
                        let created = ports.create(&member, &[&random_number()]).await;
                        let id = created["id"].as_str().unwrap().to_owned();
                        ports.walk(&authority, &id, path_to(from)).await;
                        current = Some(id.clone());
                        id
                    }
                };
                let (status, body) = ports.to(token, &id, to, None).await;
                let permitted = who == "authority" || member_may(from, to);
                let valid = allowed_from(to).contains(&from);
                if permitted && valid {
                    assert_eq!(status, 200, "{who}: {from} -> {to}: {body}");
                    assert_eq!(body["data"]["port_state"], *to);
                    current = None;
                } else {
                    let data = assert_error(status, &body, 400, "validation error");
                    let message = if permitted {
                        "Cannot move to new state from current state"
                    } else {
                        "you're not allowed to change to new state from current state, please contact your port authority"
                    };
                    assert_eq!(
                        data,
                        json!({"port_state": {"enum": {"message": message, "cause": to}}}),
                        "{who}: {from} -> {to}"
                    );
                    let (_, unchanged) = ports.get(&member, &id).await;
                    assert_eq!(unchanged["data"]["port_state"], from);
                }
            }
        }
    }
}

#[tokio::test]
async fn submitted_to_scheduled_is_a_setting() {
    let app = spawn_app_with(|s| s.allow_submitted_to_scheduled = Some(true)).await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let authority = app.token(&t.reseller);
    let id = ports.create(&authority, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    ports.walk(&authority, &id, &["submitted", "scheduled"]).await;
}

#[tokio::test]
async fn kazoo_port_authority_scenario() {
    // pqc_cb_port_requests: normal and authority under master, sub01 under authority
    let app = spawn_app().await;
    let sys = app.sys;
    let normal = sys.account(None, "normal", json!({})).await;
    let authority = sys.account(None, "authority", json!({})).await;
    sys.whitelabel(&authority, &authority.id, Some("support@authority.example.com")).await;
    let sub01 = sys.account(Some(&authority), "sub01", json!({})).await;
    for (account, expected, name) in [
        (&normal, &sys.master.id, &sys.master.name),
        (&authority, &sys.master.id, &sys.master.name),
        (&sub01, &authority.id, &authority.name),
    ] {
        let created = Ports::new(&app, account).create(&app.token(account), &[&random_number()]).await;
        assert_eq!(created["_read_only"]["port_authority"], *expected, "{}", account.name);
        assert_eq!(created["_read_only"]["port_authority_name"], *name);
    }
    // a reseller's sub-account jumps straight to master, past the reseller's ancestors
    let reseller = sys.account(Some(&authority), "reseller", json!({"pvt_reseller": true})).await;
    let child = sys.account(Some(&reseller), "child", json!({})).await;
    let created = Ports::new(&app, &child).create(&app.token(&child), &[&random_number()]).await;
    assert_eq!(created["_read_only"]["port_authority"], sys.master.id);
}

#[tokio::test]
async fn transitions_record_who_why_and_when() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let id = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    // reason in the query string (seed 000) and in the body
    let (status, _) = app
        .call(
            Method::PATCH,
            &ports.path(&format!("/{id}/submitted?reason=this+was+approved+by+Jane+Doe")),
            &member,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = ports
        .to(&authority, &id, "pending", Some(json!({"reason": "sent to carrier", "reference_number": "LNP-1"})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["reference_number"], "LNP-1");
    assert!(body["data"].get("reason").is_none());

    let (status, body) = app.call(Method::GET, &ports.path(&format!("/{id}/timeline")), &member, None).await;
    assert_eq!(status, 200);
    let timeline = body["data"].as_array().unwrap();
    assert_eq!(timeline.len(), 3);
    assert_eq!(timeline[1]["reason"], "this was approved by Jane Doe");
    assert_eq!(timeline[1]["transition"], json!({"new": "submitted", "previous": "unconfirmed"}));
    assert_eq!(timeline[1]["authorization"]["account"], json!({"id": t.customer.id, "name": "Customer"}));
    assert_eq!(timeline[1]["authorization"]["user"]["full_name"], "Admin Customer");
    assert_eq!(timeline[2]["authorization"]["reason"], "sent to carrier");
    assert_eq!(timeline[2]["authorization"]["account"]["name"], "Reseller");
    // an API-key token (no user) records no user
    let (_, body) = ports.to(&app.sys.token(&t.reseller, false), &id, "rejected", None).await;
    assert_eq!(body["data"]["port_state"], "rejected");
    let doc = app.sys.couch.get("port_requests", &id).await.unwrap();
    assert!(doc["pvt_transitions"][0]["authorization"].get("user").is_none());
    assert_eq!(doc["pvt_transitions"][0]["transition"]["new"], "rejected");
}

#[tokio::test]
async fn scheduling_converts_local_time_in_any_zone() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let authority = app.token(&t.reseller);
    let id = ports.create(&authority, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    ports.walk(&authority, &id, &["submitted", "pending"]).await;
    let (status, body) = ports.to(&authority, &id, "scheduled", Some(json!({}))).await;
    assert!(!assert_error(status, &body, 400, "validation error").as_object().unwrap().is_empty());
    let (status, body) = ports
        .to(
            &authority,
            &id,
            "scheduled",
            Some(json!({"schedule_on": {"timezone": "Australia/Sydney", "date_time": "2031-01-15 09:30"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // 09:30 AEDT (UTC+11) = 22:30 UTC the day before
    let expected =
        chrono::NaiveDate::from_ymd_opt(2031, 1, 14).unwrap().and_hms_opt(22, 30, 0).unwrap().and_utc().timestamp()
            + 62_167_219_200;
    assert_eq!(body["data"]["scheduled_date"], expected);
    assert_eq!(body["data"]["schedule_on"]["timezone"], "Australia/Sydney");
}

#[tokio::test]
async fn completion_writes_number_documents() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let authority = app.token(&t.reseller);
    let (n1, n2) = (random_number(), random_number());
    let id = ports.create(&authority, &[&n1, &n2]).await["id"].as_str().unwrap().to_owned();
    ports.walk(&authority, &id, &["submitted", "pending", "scheduled"]).await;
    let (status, body) = ports.to(&authority, &id, "completed", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["numbers"], json!({}));
    assert_eq!(body["data"]["_read_only"]["ported_numbers"], json!({n1.clone(): {}, n2.clone(): {}}));
    for n in [&n1, &n2] {
        let db = format!("numbers/{}", &n[..5]);
        let doc = app.sys.couch.get(&db, n).await.expect("number doc in the numbers database");
        assert_eq!(doc["pvt_state"], "in_service");
        assert_eq!(doc["pvt_assigned_to"], t.customer.id);
        assert_eq!(doc["pvt_ported_in"], true);
        assert_eq!(doc["pvt_module_name"], "knm_local");
        assert_eq!(doc["pvt_type"], "number");
        assert_eq!(doc["port_id"], id);
        assert_eq!(doc["pvt_features"], json!({"local": {}}));
        assert_eq!(doc["pvt_db_name"], format!("numbers%2F%2B{}", &n[1..5]));
        let copy = app.sys.couch.get(&account_db(&t.customer.id), n).await.expect("number doc in the account database");
        assert_eq!(copy["port_id"], id);
    }
    // the numbers are taken now: a new request for them is refused
    let (status, body) = app
        .call(Method::PUT, &ports.path(""), &authority, Some(json!({"name": "again", "numbers": {n1.clone(): {}}})))
        .await;
    let data = assert_error(status, &body, 400, "validation error");
    assert_eq!(data[&n1]["type"]["message"], "Number exists on the system already");
}

#[tokio::test]
async fn failed_completion_leaves_nothing_behind_and_can_be_repeated() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let authority = app.token(&t.reseller);
    let (n1, n2) = (random_number(), random_number());
    let id = ports.create(&authority, &[&n1, &n2]).await["id"].as_str().unwrap().to_owned();
    ports.walk(&authority, &id, &["submitted", "pending"]).await;
    // meanwhile someone else got n2
    let other = app.sys.account(None, "Other", json!({})).await;
    app.sys.assign_number(&n2, &other, "in_service").await;

    let (status, body) = ports.to(&authority, &id, "completed", None).await;
    let data = assert_error(status, &body, 400, "validation error");
    assert_eq!(data.as_object().unwrap().keys().collect::<Vec<_>>(), vec![&n2]);
    assert!(app.sys.couch.get(&format!("numbers/{}", &n1[..5]), &n1).await.is_none(), "no partial number docs");
    assert!(app.sys.couch.get(&account_db(&t.customer.id), &n1).await.is_none());
    let (_, still) = ports.get(&authority, &id).await;
    assert_eq!(still["data"]["port_state"], "pending");

    // n2 is released: completing again works
    let db = format!("numbers/{}", &n2[..5]);
    let mut doc = app.sys.couch.get(&db, &n2).await.unwrap();
    doc["pvt_assigned_to"] = json!("");
    doc["pvt_state"] = json!("available");
    app.sys.couch.put(&db, &doc).await;
    let (status, body) = ports.to(&authority, &id, "completed", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.sys.couch.get(&db, &n2).await.unwrap()["pvt_assigned_to"], t.customer.id);
}

#[tokio::test]
async fn charges_have_to_be_accepted() {
    let app = spawn_app_with(|s| s.port_activation_charge = Some(10.0)).await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let id = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let (status, body) = ports.to(&member, &id, "submitted", None).await;
    let data = assert_error(status, &body, 402, "accept charges");
    // what Monster UI 4.3's charges dialog (monster.ui.charges) reads: a list of invoices
    let invoices = data.as_array().expect("a list of invoices, as Kazoo's service 402s");
    assert_eq!(invoices.len(), 1);
    let invoice = &invoices[0];
    assert_eq!(invoice["bookkeeper"]["type"], "default");
    let items: Vec<&Value> =
        invoice["items"].as_array().unwrap().iter().filter(|i| i["quantity"].as_u64() > Some(0)).collect();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0]["item"].as_str(), items[0]["rate"].as_f64(), items[0]["total"].as_f64()),
        (Some("port"), Some(10.0), Some(10.0))
    );
    for key in ["activation_charges", "summary", "plan", "taxes"] {
        assert!(invoice.get(key).is_some(), "{key} missing from {invoice}");
    }
    let (_, still) = ports.get(&member, &id).await;
    assert_eq!(still["data"]["port_state"], "unconfirmed");
    // the dialog's retry: Monster UI's SDK puts accept_charges next to data
    let resp = app
        .request(Method::PATCH, &ports.path(&format!("/{id}/submitted")), Some(&member))
        .json(&json!({"data": {}, "accept_charges": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["_read_only"]["accepted_charges"]["activation_charges"], 10.0);
    // the query string works as well (on another request)
    let other = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let (status, body) =
        app.call(Method::PATCH, &ports.path(&format!("/{other}/submitted?accept_charges=true")), &member, None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn fifty_concurrent_transitions_one_winner() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let id = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let calls = (0..50).map(|_| ports.to(&member, &id, "submitted", None));
    let results: Vec<(u16, Value)> = futures_util::future::join_all(calls).await;
    let winners = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(winners, 1, "{:?}", results.iter().map(|r| r.0).collect::<Vec<_>>());
    for (status, body) in &results {
        assert!(matches!(status, 200 | 409 | 400), "{status} {body}");
    }
    let (_, body) = app.call(Method::GET, &ports.path(&format!("/{id}/timeline")), &member, None).await;
    let submitted = body["data"].as_array().unwrap().iter().filter(|e| e["transition"]["new"] == "submitted").count();
    assert_eq!(submitted, 1);
}
