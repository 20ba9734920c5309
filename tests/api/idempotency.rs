//! `Idempotency-Key`: the same request again gets the first answer without the work being done
//! twice, on any instance; another request under the key is a 422; simultaneous requests with
//! one key make one change.

use crate::helpers::{Ports, spawn_app, spawn_app_with, tree};
use crate::kazoo::{hex32, random_number};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn a_create_made_again_with_its_key_is_answered_as_the_first_time() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let key = hex32();
    let data = json!({"name": "keyed", "numbers": {random_number(): {}}});
    let (s1, r1, first) = app.keyed(Method::PUT, &ports.path(""), &member, &key, &data).await;
    assert_eq!((s1, r1), (201, false), "{first}");
    let (s2, r2, again) = app.keyed(Method::PUT, &ports.path(""), &member, &key, &data).await;
    assert_eq!((s2, r2), (201, true), "{again}");
    assert_eq!(again["data"], first["data"], "the first answer, not a second request");
    assert_eq!(again["request_id"], first["request_id"]);
    assert_eq!(again["auth_token"], json!(member), "the token of the request it answers");

    // the same key with another body: 422, and nothing is made
    let other = json!({"name": "another", "numbers": {random_number(): {}}});
    let (s3, _, body) = app.keyed(Method::PUT, &ports.path(""), &member, &key, &other).await;
    assert_eq!((s3, body["message"].as_str()), (422, Some("idempotency_key_reused")), "{body}");
    let (_, listed) = app.call(Method::GET, &format!("{}?by_types=all", ports.path("")), &member, None).await;
    let names: Vec<&str> =
        listed["data"][0]["port_requests"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["keyed"], "one request, made once");

    // the key is the caller's own: another account's same key makes its own request
    let other_tree = tree(&app).await;
    let other_member = app.token(&other_tree.customer);
    let theirs = Ports::new(&app, &other_tree.customer);
    let (s4, r4, _) = app.keyed(Method::PUT, &theirs.path(""), &other_member, &key, &data).await;
    assert_eq!((s4, r4), (400, false), "their own request (refused: the number is taken), not our answer");

    // a key that is not one
    let (s5, _, body) = app.keyed(Method::PUT, &ports.path(""), &member, "has space", &data).await;
    assert_eq!(s5, 400, "{body}");
}

#[tokio::test]
async fn moves_comments_and_uploads_are_made_once_per_key() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let id = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let one = ports.path(&format!("/{id}"));

    // a move made again is answered as the first time (not "cannot move to the same state")
    let key = hex32();
    for expect_replay in [false, true] {
        let (status, replayed, body) =
            app.keyed(Method::PATCH, &format!("{one}/submitted"), &member, &key, &json!({})).await;
        assert_eq!((status, replayed), (200, expect_replay), "{body}");
    }

    let key = hex32();
    let comment = json!({"comments": [{"author": "a", "content": "once", "timestamp": 63_900_000_000i64}]});
    for expect_replay in [false, true, true] {
        let (status, replayed, body) =
            app.keyed(Method::PUT, &format!("{one}/comments"), &member, &key, &comment).await;
        assert_eq!((status, replayed), (200, expect_replay), "{body}");
    }
    let key = hex32();
    for expect_replay in [false, true] {
        let resp = app
            .request(Method::PUT, &format!("{one}/attachments?filename=bill.pdf"), Some(&member))
            .header("Idempotency-Key", &key)
            .header("content-type", "application/pdf")
            .body(b"%PDF-1.4 once".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers().get("idempotent-replayed").is_some(), expect_replay);
    }
    let doc = app.sys.couch.get("port_requests", &id).await.unwrap();
    let comments: Vec<&Value> = doc["comments"].as_array().unwrap().iter().filter(|c| c["content"] == "once").collect();
    assert_eq!(comments.len(), 1, "{doc}");
    let submitted = doc["pvt_transitions"].as_array().unwrap().iter().filter(|t| t["transition"]["new"] == "submitted");
    assert_eq!(submitted.count(), 1, "{doc}");

    // an answer that is a refusal is kept too: the same request is refused the same way
    let key = hex32();
    let (s1, _, first) = app.keyed(Method::PATCH, &format!("{one}/completed"), &member, &key, &json!({})).await;
    let (s2, replayed, again) = app.keyed(Method::PATCH, &format!("{one}/completed"), &member, &key, &json!({})).await;
    assert!((400..500).contains(&s1), "{first}");
    assert_eq!((s2, replayed, &again["data"]), (s1, true, &first["data"]));
}

/// Simultaneous requests with one key through two instances: one makes the comment, every
/// other gets its answer (or 409 while it is being made); the request holds the comment once.
#[tokio::test]
async fn one_key_through_two_instances_at_once_makes_one_change() {
    let a = spawn_app().await;
    let b = spawn_app_with(|_| {}).await;
    let t = tree(&a).await;
    let ports = Ports::new(&a, &t.customer);
    let member = a.token(&t.customer);
    for round in 0..5 {
        let id = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
        let path = ports.path(&format!("/{id}/comments"));
        let key = hex32();
        let comment = json!({"comments": [{"author": "a", "content": "raced", "timestamp": 63_900_000_000i64}]});
        let calls = (0..6).map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            app.keyed(Method::PUT, &path, &member, &key, &comment)
        });
        let results = futures_util::future::join_all(calls).await;
        let made: Vec<&Value> = results.iter().filter(|(s, r, _)| *s == 200 && !*r).map(|(_, _, b)| b).collect();
        assert_eq!(made.len(), 1, "round {round}: {results:?}");
        for (status, replayed, body) in &results {
            match (*status, *replayed) {
                (200, true) => assert_eq!(body["data"], made[0]["data"], "round {round}"),
                (200, false) => {}
                (409, _) => assert_eq!(body["message"], "idempotency_key_in_progress", "round {round}"),
                other => panic!("round {round}: {other:?} {body}"),
            }
        }
        let doc = a.sys.couch.get("port_requests", &id).await.unwrap();
        let raced = doc["comments"].as_array().unwrap().iter().filter(|c| c["content"] == "raced").count();
        assert_eq!(raced, 1, "round {round}: {doc}");
    }
}

/// The records of keys past their 24 hours are removed by the cleanup pass; live ones stay.
#[tokio::test]
async fn records_of_expired_keys_are_removed() {
    use kazoo_port_requests::domain::idempotency::{KEPT_MS, new_record};
    let app = spawn_app().await;
    let raw = &app.sys.couch;
    let settings =
        kazoo_port_requests::configuration::CouchSettings::parse(&raw.url, std::time::Duration::from_secs(10));
    let couch = kazoo_port_requests::store::Couch::new(&settings.unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let (old, live) = (format!("idempotency:test:{}", hex32()), format!("idempotency:test:{}", hex32()));
    raw.put("kazoo_port_requests", &serde_json::to_value(new_record(&old, "print", now - KEPT_MS - 1)).unwrap()).await;
    raw.put("kazoo_port_requests", &serde_json::to_value(new_record(&live, "print", now)).unwrap()).await;
    // (every instance's own pass may remove it first)
    kazoo_port_requests::jobs::cleanup::forget_expired_keys(&couch, now).await.unwrap();
    assert!(raw.get("kazoo_port_requests", &old).await.is_none(), "the expired record is gone");
    assert!(raw.get("kazoo_port_requests", &live).await.is_some(), "the live one stays");
}
