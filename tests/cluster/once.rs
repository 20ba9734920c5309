//! Issue 16's promises through two instances on two nodes: one Idempotency-Key makes one
//! change, one CSV file imported twice at once makes each request once, and numbers moved at
//! once lose no move (the request follows exactly once).

use crate::helpers::{Ports, TestApp, tree};
use crate::kazoo::{Couch, hex32, random_number};
use crate::{assert_no_conflicts, pair, settled};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const ROUNDS: usize = 10;
const RACERS: usize = 8;

fn through<'a>(a: &'a TestApp, b: &'a TestApp, i: usize) -> &'a TestApp {
    if i.is_multiple_of(2) { a } else { b }
}

/// Exactly one answer made the change; every other one is its replay or a 409 while it was
/// being made. Returns the one that made it.
fn made_once(round: usize, results: &[(u16, bool, Value)], made_status: u16) -> &Value {
    let made: Vec<&Value> = results.iter().filter(|(s, r, _)| *s == made_status && !*r).map(|(_, _, b)| b).collect();
    assert_eq!(made.len(), 1, "round {round}: {results:?}");
    for (status, replayed, body) in results {
        match (*status, *replayed) {
            (s, true) if s == made_status => assert_eq!(body["data"], made[0]["data"], "round {round}"),
            (s, false) if s == made_status => {}
            (409, _) => assert_eq!(body["message"], "idempotency_key_in_progress", "round {round}"),
            other => panic!("round {round}: {other:?} {body}"),
        }
    }
    made[0]
}

/// Records of the keys: none left in conflict.
async fn assert_keys_settled(couch: &Couch) {
    let path = r#"/kazoo_port_requests/_all_docs?startkey="idempotency:"&endkey="idempotency:\ufff0""#;
    let rows: Value = couch.get_raw(path).await.json().await.unwrap();
    let ids: Vec<String> =
        rows["rows"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert!(!ids.is_empty());
    assert_no_conflicts(couch, "kazoo_port_requests", &ids).await;
}

/// 8 simultaneous creates and then 8 simultaneous comments under one key each, 4 through each
/// instance, 10 rounds: one request made and one comment, every other answer the first one's
/// replay (or 409 while it is made), and no record or request left in conflict.
#[tokio::test]
async fn one_idempotency_key_makes_one_change() {
    let _cluster = crate::shared().await;
    let (a, b) = pair().await;
    let t = tree(&a).await;
    let ports = Ports::new(&a, &t.customer);
    let member = a.token(&t.customer);
    let mut ids = Vec::new();
    for round in 0..ROUNDS {
        let (create_key, comment_key) = (hex32(), hex32());
        let data = json!({"name": format!("keyed {round}"), "numbers": {random_number(): {}}});
        let create = ports.path("");
        let calls = (0..RACERS).map(|i| through(&a, &b, i).keyed(Method::PUT, &create, &member, &create_key, &data));
        let results = futures_util::future::join_all(calls).await;
        let id = made_once(round, &results, 201)["data"]["id"].as_str().unwrap().to_owned();

        let comment = json!({"comments": [{"author": "a", "content": "raced", "timestamp": 63_900_000_000i64}]});
        let path = ports.path(&format!("/{id}/comments"));
        let calls = (0..RACERS).map(|i| through(&a, &b, i).keyed(Method::PUT, &path, &member, &comment_key, &comment));
        let results = futures_util::future::join_all(calls).await;
        made_once(round, &results, 200);
        let doc = settled(&a.sys.couch, "port_requests", &id).await;
        let raced = doc["comments"].as_array().unwrap().iter().filter(|c| c["content"] == "raced").count();
        assert_eq!(raced, 1, "round {round}: {doc}");
        ids.push(id);
    }
    // one request per round in the account
    let (_, listed) = a.call(Method::GET, &ports.path("?by_types=all"), &member, None).await;
    let listed = listed["data"].as_array().unwrap().iter().flat_map(|g| g["port_requests"].as_array().unwrap().clone());
    assert_eq!(listed.filter(|r| r["name"].as_str().unwrap_or_default().starts_with("keyed ")).count(), ROUNDS);
    assert_no_conflicts(&a.sys.couch, "port_requests", &ids).await;
    assert_keys_settled(&a.sys.couch).await;
}

async fn import(app: &TestApp, path: &str, token: &str, csv: String) -> (u16, Value) {
    let resp =
        app.request(Method::POST, path, Some(token)).header("content-type", "text/csv").body(csv).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, if status == 200 { body["data"].clone() } else { body })
}

/// One file of 12 requests (3 numbers each) imported through both instances at once, 3 rounds:
/// every request exists once, with all its numbers; each import answers every row `created`
/// or `exists` (or, where the other import took a number between its check and its write, a
/// refusal of that request); importing the file once more answers every row `exists`.
#[tokio::test]
async fn one_file_imported_twice_at_once_makes_each_request_once() {
    let _cluster = crate::shared().await;
    let (a, b) = pair().await;
    let t = tree(&a).await;
    let ports = Ports::new(&a, &t.customer);
    let member = a.token(&t.customer);
    let path = ports.path("/import");
    for round in 0..3 {
        let mut csv = String::from("request,number,name\n");
        let mut numbers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in 0..12 {
            let key = format!("r{round}-{r}-{}", &hex32()[..6]);
            for _ in 0..3 {
                let n = random_number();
                csv.push_str(&format!("{key},{n},Import {key}\n"));
                numbers.entry(key.clone()).or_default().push(n);
            }
        }
        let (ra, rb) = tokio::join!(import(&a, &path, &member, csv.clone()), import(&b, &path, &member, csv.clone()));
        let mut made: BTreeMap<String, usize> = BTreeMap::new();
        for (status, report) in [&ra, &rb] {
            assert_eq!(*status, 200, "round {round}: {report}");
            for row in report["rows"].as_array().unwrap() {
                match row["status"].as_str().unwrap() {
                    "created" => *made.entry(row["request"].as_str().unwrap().to_owned()).or_default() += 1,
                    "exists" => {}
                    "error" | "not_made" => assert!(
                        row["errors"].to_string().contains("Number is")
                            || row["status"] == "not_made"
                            || row["errors"].to_string().contains("on a port request"),
                        "round {round}: {row}"
                    ),
                    other => panic!("round {round}: {other} {row}"),
                }
            }
        }
        // a request's rows say created in one import at most (3 rows)
        assert!(made.values().all(|n| *n == 3), "round {round}: {made:?}");
        let (status, again) = import(through(&a, &b, round), &path, &member, csv.clone()).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["counts"]["exists"], 36, "round {round}: {again}");
        // each request once, holding its numbers; no conflict in the requests or the claims
        let mut ids = Vec::new();
        let mut claims = Vec::new();
        for (key, ns) in &numbers {
            let id = again["rows"].as_array().unwrap().iter().find(|r| r["request"] == key.as_str()).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let doc = settled(&a.sys.couch, "port_requests", &id).await;
            let held: Vec<&String> = doc["numbers"].as_object().unwrap().keys().collect();
            assert_eq!(held.len(), 3, "{key}: {doc}");
            for n in ns {
                let claim = settled(&a.sys.couch, "kazoo_port_requests", &format!("number_claim:{n}")).await;
                assert_eq!(claim["port_request_id"], json!(id), "{n}");
                claims.push(format!("number_claim:{n}"));
            }
            ids.push(id);
        }
        assert_no_conflicts(&a.sys.couch, "port_requests", &ids).await;
        assert_no_conflicts(&a.sys.couch, "kazoo_port_requests", &claims).await;
    }
}

/// The 8 numbers of a pending request completed at once, 4 through each instance, 3 rounds:
/// every acknowledged move is in what CouchDB keeps, the ones refused with a conflict go
/// through on retry, every number is activated once, and the request follows into completed
/// exactly once.
#[tokio::test]
async fn numbers_moved_at_once_lose_no_move() {
    let _cluster = crate::shared().await;
    let (a, b) = pair().await;
    let t = tree(&a).await;
    let ports = Ports::new(&a, &t.customer);
    let (member, authority) = (a.token(&t.customer), a.token(&t.reseller));
    for round in 0..3 {
        let numbers: Vec<String> = (0..RACERS).map(|_| random_number()).collect();
        let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let id = ports.create(&member, &refs).await["id"].as_str().unwrap().to_owned();
        ports.walk(&authority, &id, &["submitted", "pending"]).await;
        let move_path = |n: &str| ports.path(&format!("/{id}/numbers/{}/completed", n.replace('+', "%2B")));
        let paths: Vec<String> = numbers.iter().map(|n| move_path(n)).collect();
        let calls = paths.iter().enumerate().map(|(i, path)| {
            through(&a, &b, i).call(Method::PATCH, path, &authority, Some(json!({"reason": "raced"})))
        });
        let results = futures_util::future::join_all(calls).await;
        let mut acknowledged = Vec::new();
        for ((status, body), n) in results.iter().zip(&numbers) {
            match status {
                200 => acknowledged.push(body["revision"].as_str().unwrap().to_owned()),
                409 => {
                    assert_eq!(body["message"], "datastore_conflict", "{body}");
                    let (status, body) = a.call(Method::PATCH, &move_path(n), &authority, None).await;
                    assert_eq!(status, 200, "retry of {n}: {body}");
                }
                other => panic!("round {round}: {other} {body}"),
            }
        }
        assert!(acknowledged.len() >= RACERS / 2, "round {round}: {results:?}");
        let doc = settled(&a.sys.couch, "port_requests", &id).await;
        assert!(doc.get("_conflicts").is_none(), "{id}: {doc}");
        let kept = crate::history(&doc);
        assert!(acknowledged.iter().all(|r| kept.contains(r)), "round {round}: an acknowledged move was lost");
        assert_eq!(doc["pvt_port_state"], "completed", "{doc}");
        let completed = doc["pvt_transitions"].as_array().unwrap().iter();
        assert_eq!(completed.filter(|t| t["transition"]["new"] == "completed").count(), 1, "{doc}");
        let moves = doc["pvt_number_transitions"].as_array().unwrap();
        assert_eq!(moves.len(), RACERS, "each number moved once: {doc}");
        for n in &numbers {
            let number_doc = a.sys.couch.get(&format!("numbers/{}", &n[..5]), n).await.expect("activated");
            assert_eq!(number_doc["pvt_state"], "in_service", "{n}");
        }
    }
}
