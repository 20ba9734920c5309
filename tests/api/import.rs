//! CSV import: a dry run checks every row with the API's own errors and writes nothing; a real
//! run creates the requests, and the same file again makes nothing twice; a malformed file
//! (bad encoding, wrong columns, huge rows, a request's rows apart) gets row-level errors and
//! writes nothing.

use crate::helpers::{Ports, TestApp, assert_error, spawn_app, tree};
use crate::kazoo::random_number;
use reqwest::Method;
use serde_json::Value;

async fn post_csv(app: &TestApp, ports: &Ports<'_>, token: &str, body: Vec<u8>, dry_run: bool) -> (u16, Value) {
    let path = ports.path(if dry_run { "/import?dry_run=true" } else { "/import" });
    let resp = app
        .request(Method::POST, &path, Some(token))
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn names(app: &TestApp, ports: &Ports<'_>, token: &str) -> Vec<String> {
    let (_, listed) = app.call(Method::GET, &ports.path("?by_types=all"), token, None).await;
    let mut out: Vec<String> = listed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["port_requests"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

fn statuses(report: &Value) -> Vec<String> {
    report["rows"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_file_is_checked_then_imported_once() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let (a1, a2, b1) = (random_number(), random_number(), random_number());
    let csv = format!(
        "request,number,name,bill.name,bill.carrier,number.state\n\
         acme,{a1},Acme HQ,Acme Inc,Telco,CA\n\
         acme,{a2},,,Telco,\n\
         beta,{b1},\"Beta, \"\"the\"\" shop\",Beta LLC,Other,\n"
    );
    let (status, body) = post_csv(&app, &ports, &member, csv.clone().into_bytes(), true).await;
    assert_eq!(status, 200, "{body}");
    let report = &body["data"];
    assert_eq!(
        (report["dry_run"].as_bool(), report["written"].as_bool(), report["requests"].as_u64()),
        (Some(true), Some(false), Some(2))
    );
    assert_eq!(statuses(report), ["valid", "valid", "valid"]);
    assert!(names(&app, &ports, &member).await.is_empty(), "a dry run writes nothing");

    let (status, body) = post_csv(&app, &ports, &member, csv.clone().into_bytes(), false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(statuses(&body["data"]), ["created", "created", "created"]);
    assert_eq!(names(&app, &ports, &member).await, ["Acme HQ", "Beta, \"the\" shop"]);
    let acme = body["data"]["rows"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["rows"][1]["id"], acme.as_str(), "rows of one request make one request");
    let (_, got) = ports.get(&member, &acme).await;
    assert_eq!(got["data"]["numbers"][&a1]["state"], "CA");
    assert_eq!(got["data"]["bill"]["carrier"], "Telco");

    // the same file again: nothing twice
    let (status, body) = post_csv(&app, &ports, &member, csv.into_bytes(), false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(statuses(&body["data"]), ["exists", "exists", "exists"]);
    assert_eq!(names(&app, &ports, &member).await.len(), 2);
}

#[tokio::test]
async fn a_malformed_file_gets_row_errors_and_writes_nothing() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let member = app.token(&t.customer);
    let taken = random_number();
    ports.create(&member, &[&taken]).await;
    let (n1, n2, n3, n4) = (random_number(), random_number(), random_number(), random_number());
    let mut csv = format!(
        "request,number,name\n\
         good,{n1},Good\n\
         short,{n2}\n\
         bad,not-a-number,Bad\n\
         apart,{n3},Apart\n\
         good,{n4},Good\n\
         busy,{taken},Busy\n"
    )
    .into_bytes();
    csv.extend(b"latin,+14155550123,Caf\xe9\n");
    csv.extend(format!("huge,{},{}\n", random_number(), "x".repeat(20_000)).into_bytes());
    let (status, body) = post_csv(&app, &ports, &member, csv, false).await;
    assert_eq!(status, 200, "{body}");
    let report = &body["data"];
    assert_eq!(report["written"], false);
    let row = |n: u64| report["rows"].as_array().unwrap().iter().find(|r| r["row"] == n).cloned().unwrap();
    assert_eq!(row(2)["status"], "valid", "{report}");
    assert!(row(3)["errors"].to_string().contains("cells where the header has 3"), "{report}");
    assert_eq!(row(4)["status"], "error", "the API's own validation: {report}");
    assert!(row(6)["errors"].to_string().contains("must be next to each other"), "{report}");
    assert!(
        row(7)["errors"].to_string().contains("on a port request already") || row(7)["status"] == "error",
        "{report}"
    );
    assert!(row(8)["errors"].to_string().contains("not UTF-8"), "{report}");
    assert!(row(9)["errors"].to_string().contains("longer than"), "{report}");
    assert_eq!(names(&app, &ports, &member).await, ["Port ".to_owned() + &taken], "nothing was written");

    // wrong columns: the file is refused whole
    let (status, body) = post_csv(&app, &ports, &member, b"request,phone\nx,+14155550100\n".to_vec(), true).await;
    let data = assert_error(status, &body, 400, "validation error");
    assert!(data.to_string().contains("needs the columns number"), "{data}");
    let (status, body) = post_csv(&app, &ports, &member, b"request,number,colour\n".to_vec(), true).await;
    let data = assert_error(status, &body, 400, "validation error");
    assert!(data.to_string().contains("unknown columns: colour"), "{data}");
    // not CSV
    let resp = app
        .request(Method::POST, &ports.path("/import"), Some(&member))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
}
