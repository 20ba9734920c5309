//! Per-number progress and partial ports: numbers move on their own by the request's rules; a
//! completed one is activated alone (its number documents, Kazoo's views), a canceled one let
//! go, a rejected one held; the request follows once no number is left on it; listings,
//! `by_number`, the timeline, the mails and the Fone Dynamics status show where each number is.

use crate::helpers::{Ports, TestApp, assert_error, spawn_app, tree, wait_mails};
use crate::kazoo::{account_db, random_number};
use reqwest::Method;
use serde_json::{Value, json};

fn maildev() -> String {
    std::env::var("MAILDEV_URL").expect("MAILDEV_URL is set: run the tests with scripts/test.sh")
}

fn enc(n: &str) -> String {
    n.replace('+', "%2B")
}

async fn move_number(
    app: &TestApp,
    ports: &Ports<'_>,
    token: &str,
    id: &str,
    n: &str,
    to: &str,
    reason: &str,
) -> (u16, Value) {
    let path = ports.path(&format!("/{id}/numbers/{}/{to}", enc(n)));
    app.call(Method::PATCH, &path, token, Some(json!({"reason": reason}))).await
}

/// Rows of one of Kazoo's own views in `port_requests`, for `key`.
async fn kazoo_view_rows(app: &TestApp, view: &str, key: &str) -> Vec<Value> {
    let url = format!(
        "{}/port_requests/_design/port_requests/_view/{view}?key={}",
        app.sys.couch.url,
        enc(&json!(key).to_string())
    );
    let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    body["rows"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn numbers_move_on_their_own_and_the_request_follows() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let (n1, n2, n3) = (random_number(), random_number(), random_number());
    let send_to = format!("progress-{}@customer.example.com", &t.customer.id[..10]);
    let (status, body) = app
        .call(
            Method::PUT,
            &ports.path(""),
            &member,
            Some(json!({"name": "Three numbers", "numbers": {n1.clone(): {"state": "CA"}, n2.clone(): {}, n3.clone(): {}},
                        "notifications": {"email": {"send_to": send_to}}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();

    // before submission numbers do not move on their own
    let (status, body) = move_number(&app, &ports, &authority, &id, &n1, "pending", "").await;
    assert_error(status, &body, 400, "validation error");
    ports.to(&member, &id, "submitted", None).await;
    ports.to(&authority, &id, "pending", None).await;

    // the same rules as the request: the member cannot, submitted → completed is no move, an
    // unknown number is refused, and a refusal changes nothing
    let rev = ports.get(&member, &id).await.1["revision"].clone();
    let (status, body) = move_number(&app, &ports, &member, &id, &n1, "scheduled", "").await;
    assert_error(status, &body, 400, "validation error");
    let (status, body) = move_number(&app, &ports, &authority, &id, &random_number(), "completed", "").await;
    let data = assert_error(status, &body, 400, "validation error");
    assert!(data.to_string().contains("not on this port request"), "{data}");
    let (status, _) = move_number(&app, &ports, &authority, &id, &n1, "nowhere", "").await;
    assert_eq!(status, 404);
    assert_eq!(ports.get(&member, &id).await.1["revision"], rev, "refusals leave the request as it was");

    // n1 ports on its own: its number documents are written, it leaves the open numbers
    let (status, body) = move_number(&app, &ports, &authority, &id, &n1, "completed", "ported early").await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["port_state"], "pending", "the request stays where it was");
    assert!(data["numbers"].get(&n1).is_none());
    let ported = &data["_read_only"]["ported_numbers"][&n1];
    assert_eq!(ported["state"], "CA", "the client's own metadata is kept beside the progress");
    assert_eq!(ported["_progress"]["state"], "completed");
    assert_eq!(ported["_progress"]["reason"], "ported early");
    let number_doc = app.sys.couch.get(&format!("numbers/{}", &n1[..5]), &n1).await.expect("n1's number document");
    assert_eq!(
        (number_doc["pvt_state"].as_str(), number_doc["port_id"].as_str()),
        (Some("in_service"), Some(id.as_str()))
    );
    assert!(app.sys.couch.get(&account_db(&t.customer.id), &n1).await.is_some(), "n1 in the account database");
    for n in [&n2, &n3] {
        assert!(app.sys.couch.get(&format!("numbers/{}", &n[..5]), n).await.is_none(), "{n} is not activated");
    }
    // Kazoo's views: n1 is no longer being ported in, the others are
    assert!(kazoo_view_rows(&app, "port_in_numbers", &n1).await.is_empty());
    assert_eq!(kazoo_view_rows(&app, "port_in_numbers", &n2).await.len(), 1);

    // n2 is rejected: it stays on the request, held
    let (status, body) = move_number(&app, &ports, &authority, &id, &n2, "rejected", "wrong account number").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["numbers"][&n2]["_progress"]["state"], "rejected");
    let (status, body) = app
        .call(Method::PUT, &ports.path(""), &member, Some(json!({"name": "again", "numbers": {n2.clone(): {}}})))
        .await;
    assert_error(status, &body, 400, "validation error");

    // where each number is
    let (status, body) = app.call(Method::GET, &ports.path(&format!("/{id}/numbers")), &member, None).await;
    assert_eq!(status, 200, "{body}");
    let states: Vec<(String, String)> = [&n1, &n2, &n3]
        .iter()
        .map(|n| ((*n).clone(), body["data"][n.as_str()]["state"].as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(
        states,
        [(n1.clone(), "completed".into()), (n2.clone(), "rejected".into()), (n3.clone(), "pending".into())]
    );
    // the timeline, the listing and by_number show it too; a client cannot write it
    let (_, timeline) = app.call(Method::GET, &ports.path(&format!("/{id}/timeline")), &member, None).await;
    let own: Vec<&Value> =
        timeline["data"].as_array().unwrap().iter().filter(|e| e["type"] == "number_progress").collect();
    assert_eq!(own.len(), 2, "{timeline}");
    assert!(own.iter().all(|e| e.get("transition").is_none()), "never read as the request's own move");
    let (_, listed) = app.call(Method::GET, &ports.path("?by_types=all"), &member, None).await;
    let row = listed["data"][0]["port_requests"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str()).cloned();
    assert_eq!(row.unwrap()["numbers"][&n2]["_progress"]["state"], "rejected");
    let (_, found) = app.call(Method::GET, &ports.path(&format!("?by_number={}", enc(&n1))), &member, None).await;
    assert_eq!(found["data"][0]["_read_only"]["ported_numbers"][&n1]["_progress"]["state"], "completed");

    // n2 canceled: let go, anyone may port it now
    let (status, body) = move_number(&app, &ports, &authority, &id, &n2, "canceled", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["_read_only"]["canceled_numbers"][&n2]["_progress"]["state"], "canceled");
    let (status, body) = app
        .call(Method::PUT, &ports.path(""), &member, Some(json!({"name": "n2 again", "numbers": {n2.clone(): {}}})))
        .await;
    assert_eq!(status, 201, "{body}");

    // n3, the last number on the request, ports: the request follows into completed
    let (status, body) = move_number(&app, &ports, &authority, &id, &n3, "completed", "").await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["port_state"], "completed");
    assert_eq!(data["numbers"], json!({}));
    let ported: Vec<&String> = data["_read_only"]["ported_numbers"].as_object().unwrap().keys().collect();
    assert_eq!(ported.len(), 2, "{data}");
    let doc = app.sys.couch.get("port_requests", &id).await.unwrap();
    assert_eq!(doc["pvt_transitions"][0]["transition"], json!({"new": "completed", "previous": "pending"}));

    // the submitter was told of each number's move, and of the completion
    let mails = wait_mails(&maildev(), &send_to, 6).await;
    let subjects: Vec<String> = mails.iter().map(|m| m["subject"].as_str().unwrap_or_default().to_owned()).collect();
    assert!(subjects.iter().any(|s| s.contains("is now completed")), "{subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("is now rejected")), "{subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("completed") && s.starts_with("Number port request")), "{subjects:?}");
}

#[tokio::test]
async fn a_move_of_the_whole_request_moves_every_number_on_it() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let (n1, n2) = (random_number(), random_number());
    let id = ports.create(&member, &[&n1, &n2]).await["id"].as_str().unwrap().to_owned();
    ports.walk(&authority, &id, &["submitted", "pending"]).await;
    let (status, body) = move_number(&app, &ports, &authority, &id, &n1, "rejected", "bad BTN").await;
    assert_eq!(status, 200, "{body}");
    // a client's copy of the progress is not stored
    let (status, body) = app
        .call(
            Method::PATCH,
            &ports.path(&format!("/{id}")),
            &member,
            Some(json!({"numbers": {n2.clone(): {"_progress": {"state": "completed"}}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["numbers"][&n2].get("_progress").is_none(), "{body}");
    let (status, body) = ports.to(&authority, &id, "scheduled", None).await;
    assert_eq!(status, 200, "{body}");
    let (_, numbers) = app.call(Method::GET, &ports.path(&format!("/{id}/numbers")), &member, None).await;
    assert_eq!(numbers["data"][&n1]["state"], "scheduled", "{numbers}");
    assert_eq!(numbers["data"][&n2]["state"], "scheduled");
    let (status, body) = ports.to(&authority, &id, "completed", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["_read_only"]["ported_numbers"].as_object().unwrap().len(), 2);
}

/// A listing exported as CSV (a row per number, with where it is) and as JSON lines (a request
/// per line), streamed whole; private comments stay private.
#[tokio::test]
async fn listings_export_as_csv_and_json_lines() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let (n1, n2) = (random_number(), random_number());
    let id = ports.create(&member, &[&n1, &n2]).await["id"].as_str().unwrap().to_owned();
    ports.walk(&authority, &id, &["submitted", "pending"]).await;
    move_number(&app, &ports, &authority, &id, &n1, "rejected", "wrong, \"quoted\" BTN").await;
    for _ in 0..3 {
        ports.create(&member, &[&random_number()]).await;
    }
    let get = |accept: &'static str, query: &'static str| {
        let req = app.request(Method::GET, &ports.path(&format!("?by_types=all{query}")), Some(&member));
        let req = if accept.is_empty() { req } else { req.header("accept", accept) };
        async move {
            let resp = req.send().await.unwrap();
            let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            (resp.status().as_u16(), ct, resp.text().await.unwrap())
        }
    };
    let (status, ct, csv) = get("text/csv", "").await;
    assert_eq!((status, ct.starts_with("text/csv")), (200, true), "{csv}");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5, "a row per number: {csv}");
    let rejected = rows.iter().find(|r| r[col("number")] == *n1).unwrap();
    assert_eq!(&rejected[col("number_state")], "rejected");
    assert_eq!(&rejected[col("number_reason")], "wrong, \"quoted\" BTN");
    assert_eq!(&rejected[col("port_state")], "pending");
    let other = rows.iter().find(|r| r[col("number")] == *n2).unwrap();
    assert_eq!(&other[col("number_state")], "pending", "where the request is");

    let (status, ct, lines) = get("", "&accept=jsonl").await;
    assert_eq!((status, ct.as_str()), (200, "application/x-ndjson"));
    let requests: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(requests.len(), 4);
    let ours = requests.iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(ours["numbers"][&n1]["_progress"]["state"], "rejected");
    assert_eq!(ours["account_id"], t.customer.id);
    // a JSON listing is still the Kazoo envelope
    let (status, ct, _) = get("application/json", "").await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
}
