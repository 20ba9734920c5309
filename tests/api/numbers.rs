//! A number is on at most one open request in the whole system, and never one in service.

use crate::helpers::{Ports, assert_error, spawn_app, spawn_app_with, tree};
use crate::kazoo::random_number;

const SERVICE_DB: &str = "kazoo_port_requests";
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn conflicts_are_reported_per_number_with_kazoo_messages() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let other = app.sys.account(None, "Elsewhere", json!({})).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let (same_account, other_account, in_service, free) =
        (random_number(), random_number(), random_number(), random_number());
    let first = ports.create(&member, &[&same_account]).await;
    Ports::new(&app, &other).create(&app.token(&other), &[&other_account]).await;
    app.sys.assign_number(&in_service, &other, "in_service").await;

    let ten = &same_account[2..];
    let (status, body) = app
        .call(
            Method::PUT,
            &ports.path(""),
            &member,
            Some(json!({"name": "x", "numbers": {
                ten: {}, other_account.clone(): {}, in_service.clone(): {}, free.clone(): {}
            }})),
        )
        .await;
    let data = assert_error(status, &body, 400, "validation error");
    assert_eq!(
        data,
        json!({
            ten: {"type": {"message": format!("Number is on a port request already: {}", first["id"].as_str().unwrap()), "cause": ten}},
            other_account.clone(): {"type": {"message": "Number is being ported for a different account", "cause": other_account}},
            in_service.clone(): {"type": {"message": "Number exists on the system already", "cause": in_service}},
        })
    );
}

#[tokio::test]
async fn every_open_state_holds_its_numbers_and_closed_ones_release_them() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    for path in [&[][..], &["submitted"], &["submitted", "pending"], &["submitted", "rejected"]] {
        let n = random_number();
        let id = ports.create(&member, &[&n]).await["id"].as_str().unwrap().to_owned();
        ports.walk(&authority, &id, path).await;
        let (status, _) = app
            .call(Method::PUT, &ports.path(""), &member, Some(json!({"name": "dup", "numbers": {n.clone(): {}}})))
            .await;
        assert_eq!(status, 400, "after {path:?}");
    }
    let n = random_number();
    let id = ports.create(&member, &[&n]).await["id"].as_str().unwrap().to_owned();
    ports.walk(&authority, &id, &["canceled"]).await;
    ports.create(&member, &[&n]).await;
}

#[tokio::test]
async fn edits_and_submissions_are_checked_too() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let (a, b) = (random_number(), random_number());
    let first = ports.create(&member, &[&a]).await;
    let second = ports.create(&member, &[&b]).await;
    let second_id = second["id"].as_str().unwrap();
    // editing the second to take the first's number
    let (status, body) = app
        .call(
            Method::POST,
            &ports.path(&format!("/{second_id}")),
            &member,
            Some(json!({"name": "x", "numbers": {a.clone(): {}}})),
        )
        .await;
    let data = assert_error(status, &body, 400, "validation error");
    assert!(data[&a]["type"]["message"].as_str().unwrap().ends_with(first["id"].as_str().unwrap()));
    let (status, _) = app
        .call(Method::PATCH, &ports.path(&format!("/{second_id}")), &member, Some(json!({"numbers": {a.clone(): {}}})))
        .await;
    assert_eq!(status, 400);
    // keeping its own number is fine
    let (status, _) = app
        .call(
            Method::POST,
            &ports.path(&format!("/{second_id}")),
            &member,
            Some(json!({"name": "y", "numbers": {b.clone(): {}}})),
        )
        .await;
    assert_eq!(status, 200);
    // a number that went into service after creation blocks the submission
    let other = app.sys.account(None, "Elsewhere", json!({})).await;
    app.sys.assign_number(&b, &other, "in_service").await;
    let (status, body) = ports.to(&member, second_id, "submitted", None).await;
    assert_eq!(
        assert_error(status, &body, 400, "validation error")[&b]["type"]["message"],
        "Number exists on the system already"
    );
}

/// Requests racing for one number: exactly one wins, every other gets the number's error;
/// a refused request gives its other numbers back at once.
#[tokio::test]
async fn simultaneous_requests_for_one_number_have_one_winner() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let (contested, spare) = (random_number(), random_number());
    let path = ports.path("");
    let calls = (0..8).map(|i| {
        let numbers =
            if i == 0 { json!({contested.clone(): {}}) } else { json!({contested.clone(): {}, spare.clone(): {}}) };
        app.call(Method::PUT, &path, &member, Some(json!({"name": format!("racer {i}"), "numbers": numbers})))
    });
    let results = futures_util::future::join_all(calls).await;
    let winners: Vec<_> = results.iter().filter(|(status, _)| *status == 201).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (status, body) in results.iter().filter(|(status, _)| *status != 201) {
        let data = assert_error(*status, body, 400, "validation error");
        let message = data[&contested]["type"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("Number is on a port request already: "), "{body}");
    }
    let (_, listed) = app.call(Method::GET, &ports.path("?by_types=all"), &member, None).await;
    assert_eq!(listed["data"][0]["port_requests"].as_array().unwrap().len(), 1);
    // the losers' claims on the spare number are gone: it is free for the next request
    if winners[0].1["data"]["numbers"].get(&spare).is_none() {
        ports.create(&member, &[&spare]).await;
    }
}

/// A change refused after it took claims gives every one of them back: here a submission that
/// adds two numbers and is then refused for the port charge not accepted (402). Nothing of it
/// is left: the request holds its first number, the two others are free at once.
#[tokio::test]
async fn a_change_refused_after_claiming_leaves_no_claim() {
    let app = spawn_app_with(|s| s.port_activation_charge = Some(5.0)).await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let (held, added, also) = (random_number(), random_number(), random_number());
    let id = ports.create(&member, &[&held]).await["id"].as_str().unwrap().to_owned();
    let claim = |n: &str| format!("number_claim:{n}");
    assert!(app.sys.couch.get(SERVICE_DB, &claim(&held)).await.is_some(), "the request holds its number");

    let numbers = json!({held.clone(): {}, added.clone(): {}, also.clone(): {}});
    let (status, body) = ports.to(&member, &id, "submitted", Some(json!({ "numbers": numbers }))).await;
    assert_error(status, &body, 402, "accept charges");
    for n in [&added, &also] {
        assert!(app.sys.couch.get(SERVICE_DB, &claim(n)).await.is_none(), "{n}: claimed, then given back");
    }
    assert!(app.sys.couch.get(SERVICE_DB, &claim(&held)).await.is_some(), "the number the request holds stays");
    let (_, stored) = app.call(Method::GET, &ports.path(&format!("/{id}")), &member, None).await;
    assert_eq!(stored["data"]["port_state"], "unconfirmed");
    assert_eq!(stored["data"]["numbers"].as_object().unwrap().len(), 1, "nothing of the change was saved");
    // and another request takes them at once
    ports.create(&member, &[&added, &also]).await;
}

/// The same when the change fails at its last step: a completion (by a superduper admin, who
/// may change a pending request's numbers) that adds a number whose number document can be
/// claimed but not activated (reserved, though assigned to nobody). The activation fails after
/// the claim was taken; the claim goes back with everything else.
#[tokio::test]
async fn a_completion_that_fails_to_activate_leaves_no_claim() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, master) = (app.token(&t.customer), app.master_token());
    let (held, reserved) = (random_number(), random_number());
    let id = ports.create(&member, &[&held]).await["id"].as_str().unwrap().to_owned();
    ports.walk(&master, &id, &["submitted", "pending"]).await;
    let db = format!("numbers/{}", &reserved[..5]);
    app.sys.couch.ensure_db(&db).await;
    let r = app.sys.couch.put(&db, &json!({"_id": reserved, "pvt_state": "reserved", "pvt_type": "number"})).await;
    assert_eq!(r["ok"], true, "{r}");

    let numbers = json!({held.clone(): {}, reserved.clone(): {}});
    let (status, body) = ports.to(&master, &id, "completed", Some(json!({ "numbers": numbers }))).await;
    let data = assert_error(status, &body, 400, "validation error");
    assert_eq!(data[&reserved]["activation"]["message"], "Number exists on the system already", "{body}");
    assert!(app.sys.couch.get(SERVICE_DB, &format!("number_claim:{reserved}")).await.is_none(), "given back");
    assert!(app.sys.couch.get(SERVICE_DB, &format!("number_claim:{held}")).await.is_some());
    let (_, stored) = app.call(Method::GET, &ports.path(&format!("/{id}")), &member, None).await;
    assert_eq!(stored["data"]["port_state"], "pending");
}
