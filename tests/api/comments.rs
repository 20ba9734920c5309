//! Comments: who may write private ones, author enrichment, and privacy on every path.

use crate::helpers::{Ports, assert_error, spawn_app, tree};
use crate::kazoo::{now_gregorian, random_number};
use reqwest::Method;
use serde_json::{Value, json};

fn comment(text: &str, ts: i64, private: bool, action: bool) -> Value {
    json!({"author": "someone", "content": text, "timestamp": ts, "is_private": private, "action_required": action})
}

fn contents(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().filter_map(|c| c["content"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn private_comments_are_for_the_authority_only() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority, master) = (app.token(&t.customer), app.token(&t.reseller), app.master_token());
    let id = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let now = now_gregorian();

    // the account may not write private or action-required comments
    for c in [
        comment("p", now, true, false),
        comment("a", now, false, true),
        json!({"author": "x", "content": "l", "timestamp": now, "superduper_comment": true}),
    ] {
        let (status, body) =
            app.call(Method::PATCH, &ports.path(&format!("/{id}")), &member, Some(json!({"comments": [c]}))).await;
        let data = assert_error(status, &body, 403, "forbidden");
        assert_eq!(
            data,
            json!({"comments": {"forbidden": {
            "message": "you're not allowed to make private comment or set action_required", "cause": "comments"}},
            "message": "forbidden"})
        );
    }
    // the authority may, but not both at once
    let (status, body) = app
        .call(
            Method::PATCH,
            &ports.path(&format!("/{id}")),
            &authority,
            Some(json!({"comments": [comment("both", now, true, true)]})),
        )
        .await;
    assert!(assert_error(status, &body, 400, "validation error")["comments"]["rejected"].is_object());

    let (status, body) = app
        .call(
            Method::PUT,
            &ports.path(&format!("/{id}/comments")),
            &authority,
            Some(
                json!({"comments": [comment("secret", now + 1, true, false), comment("hello", now + 2, false, true)]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(contents(&body["data"]["comments"]), ["secret", "hello"]);
    // enriched from the user doc
    let stored = app.sys.couch.get("port_requests", &id).await.unwrap();
    assert_eq!(stored["comments"][0]["author"], "Admin Reseller");
    assert_eq!(stored["comments"][0]["user_id"], t.reseller.user_id);
    assert_eq!(stored["comments"][0]["account_id"], t.reseller.id);

    // the account writes a public one (keeping the comments it was shown)
    let (_, mine) = ports.get(&member, &id).await;
    let mut list = mine["data"]["comments"].as_array().unwrap().clone();
    list.push(comment("thanks", now + 3, false, false));
    let (status, body) = app
        .call(
            Method::POST,
            &ports.path(&format!("/{id}")),
            &member,
            Some(json!({
                "name": mine["data"]["name"], "numbers": mine["data"]["numbers"], "comments": list
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(contents(&body["data"]["comments"]), ["hello", "thanks"]);
    let stored = app.sys.couch.get("port_requests", &id).await.unwrap();
    assert_eq!(contents(&stored["comments"]), ["secret", "hello", "thanks"], "private comments are never dropped");

    // every path that returns the request
    let member_views = [
        ports.get(&member, &id).await.1["data"]["comments"].clone(),
        app.call(Method::PATCH, &ports.path(&format!("/{id}")), &member, Some(json!({"x": 1}))).await.1["data"]["comments"].clone(),
        app.call(Method::GET, &ports.path(&format!("/{id}/comments")), &member, None).await.1["data"]["comments"].clone(),
        app.call(Method::GET, &ports.path(""), &member, None).await.1["data"][0]["port_requests"][0]["comments"].clone(),
        ports.to(&member, &id, "submitted", None).await.1["data"]["comments"].clone(),
    ];
    for view in &member_views {
        assert_eq!(contents(view), ["hello", "thanks"], "{view}");
    }
    let (_, timeline) = app.call(Method::GET, &ports.path(&format!("/{id}/timeline")), &member, None).await;
    assert!(!contents(&timeline["data"]).contains(&"secret".to_owned()));
    for token in [&authority, &master] {
        assert_eq!(contents(&ports.get(token, &id).await.1["data"]["comments"]), ["secret", "hello", "thanks"]);
        let (_, timeline) = app.call(Method::GET, &ports.path(&format!("/{id}/timeline")), token, None).await;
        assert!(contents(&timeline["data"]).contains(&"secret".to_owned()));
    }
    // and the DELETE answer
    ports.walk(&authority, &id, &["rejected"]).await;
    let (status, body) = app.call(Method::DELETE, &ports.path(&format!("/{id}")), &member, None).await;
    assert_eq!(status, 200);
    assert_eq!(contents(&body["data"]["comments"]), ["hello", "thanks"]);
}

#[tokio::test]
async fn comments_are_append_only() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let id = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let (status, body) = app.call(Method::DELETE, &ports.path(&format!("/{id}/comments")), &member, None).await;
    assert_eq!(
        assert_error(status, &body, 400, "validation error")["comments"]["forbidden"]["message"],
        "delete operation on comments is not allowed"
    );
    let (status, body) = app.call(Method::GET, &ports.path(&format!("/{id}/comments/0")), &member, None).await;
    assert_eq!(
        assert_error(status, &body, 400, "validation error")["comments"]["forbidden"]["message"],
        "operation on a single comment is not allowed"
    );
    let (status, body) = app
        .call(
            Method::PUT,
            &ports.path(&format!("/{id}/comments")),
            &member,
            Some(json!({"comments": [{"content": "no author"}]})),
        )
        .await;
    let data = assert_error(status, &body, 400, "validation error");
    assert!(data["comments.0.author"]["required"].is_object() && data["comments.0.timestamp"]["required"].is_object());
    let (status, _) = app.call(Method::PUT, &ports.path(&format!("/{id}/comments")), &member, Some(json!({}))).await;
    assert_eq!(status, 400);
}
