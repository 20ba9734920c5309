//! Two instances of the service on one CouchDB: for every kind of change, a write through one
//! and, at once, a read or a change through the other. No answer may come from a copy older
//! than CouchDB's: zero refusals, zero stale reads.

use crate::helpers::{Ports, TestApp, send, spawn_app_with, tree};
use crate::kazoo::{hex32, now_gregorian, random_number};
use reqwest::Method;
use serde_json::json;

const ROUNDS: usize = 30;

/// What went wrong, by kind of change.
#[derive(Default, Debug)]
struct Misses(Vec<String>);

impl Misses {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
}

async fn pair() -> (TestApp, TestApp) {
    let queue = hex32();
    let (q1, q2) = (queue.clone(), queue);
    (
        spawn_app_with(move |s| s.jobs.delivery.queue = q1).await,
        spawn_app_with(move |s| s.jobs.delivery.queue = q2).await,
    )
}

async fn moves(a: &TestApp, pa: &Ports<'_>, pb: &Ports<'_>, member: &str, authority: &str) -> Misses {
    let mut m = Misses::default();
    for round in 0..ROUNDS {
        let id = pb.create(member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
        // created through B: A reads it and submits it at once
        let (status, body) = pa.get(member, &id).await;
        m.check(status == 200, || format!("round {round}: A could not read B's new request: {body}"));
        let (status, body) = pa.to(member, &id, "submitted", None).await;
        m.check(status == 200, || format!("round {round}: A refused to submit: {body}"));
        // submitted through A: B moves it on at once
        let (status, body) = pb.to(authority, &id, "pending", None).await;
        m.check(status == 200, || format!("round {round}: B refused pending: {body}"));
        let (_, body) = pa.get(member, &id).await;
        m.check(body["data"]["port_state"] == "pending", || format!("round {round}: A read a stale state: {body}"));
        let (_, timeline) = a.call(Method::GET, &pa.path(&format!("/{id}/timeline")), member, None).await;
        let moves = timeline["data"].as_array().map_or(0, |t| t.iter().filter(|e| e["type"] == "transition").count());
        m.check(moves == 3, || format!("round {round}: A's timeline is stale: {timeline}"));
        let (status, body) = pa.to(authority, &id, "canceled", None).await;
        m.check(status == 200, || format!("round {round}: A refused to cancel: {body}"));
        let (status, body) = pb.to(authority, &id, "canceled", None).await;
        m.check(status == 400, || format!("round {round}: B moved a canceled request: {status} {body}"));
    }
    m
}

async fn edits(a: &TestApp, b: &TestApp, pa: &Ports<'_>, member: &str) -> Misses {
    let mut m = Misses::default();
    let id = pa.create(member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let one = pa.path(&format!("/{id}"));
    for round in 0..ROUNDS {
        let through_b = b.call(Method::PATCH, &one, member, Some(json!({"b_key": round}))).await;
        m.check(through_b.0 == 200, || format!("round {round}: B refused the edit: {:?}", through_b.1));
        let (_, read) = a.call(Method::GET, &one, member, None).await;
        m.check(read["data"]["b_key"] == round, || format!("round {round}: A read a stale edit: {read}"));
        let (status, body) = a.call(Method::PATCH, &one, member, Some(json!({"a_key": round}))).await;
        m.check(status == 200 && body["data"]["b_key"] == round, || {
            format!("round {round}: A's edit: {status} {body}")
        });
        // a full replace through B, read through A
        let mut data = body["data"].clone();
        data["name"] = json!(format!("replaced {round}"));
        let (status, body) = b.call(Method::POST, &one, member, Some(data)).await;
        m.check(status == 200, || format!("round {round}: B refused the replace: {body}"));
        let (_, read) = a.call(Method::GET, &one, member, None).await;
        m.check(read["data"]["name"] == format!("replaced {round}").as_str(), || {
            format!("round {round}: stale replace: {read}")
        });
    }
    m
}

async fn comments(a: &TestApp, b: &TestApp, pa: &Ports<'_>, member: &str) -> Misses {
    let mut m = Misses::default();
    let id = pa.create(member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let path = pa.path(&format!("/{id}/comments"));
    for round in 0..ROUNDS {
        let text = format!("comment {round}");
        let comment =
            json!({"comments": [{"author": "b", "content": text, "timestamp": now_gregorian() + round as i64}]});
        let (status, body) = b.call(Method::PUT, &path, member, Some(comment)).await;
        m.check(status == 200, || format!("round {round}: B refused the comment: {body}"));
        let (_, listed) = a.call(Method::GET, &path, member, None).await;
        let seen =
            listed["data"]["comments"].as_array().is_some_and(|c| c.iter().any(|x| x["content"] == text.as_str()));
        m.check(seen, || format!("round {round}: A's comments are stale: {listed}"));
        let (_, timeline) = a.call(Method::GET, &pa.path(&format!("/{id}/timeline")), member, None).await;
        let seen = timeline["data"].as_array().is_some_and(|c| c.iter().any(|x| x["content"] == text.as_str()));
        m.check(seen, || format!("round {round}: A's timeline is stale: {timeline}"));
    }
    m
}

async fn uploads(a: &TestApp, b: &TestApp, pa: &Ports<'_>, member: &str) -> Misses {
    let mut m = Misses::default();
    let id = pa.create(member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    for round in 0..ROUNDS {
        let name = format!("bill{round}.pdf");
        let bytes = format!("%PDF-1.4 round {round}").into_bytes();
        let upload = b
            .request(Method::PUT, &pa.path(&format!("/{id}/attachments?filename={name}")), Some(member))
            .header("content-type", "application/pdf")
            .body(bytes.clone());
        let (status, body) = send(upload).await;
        m.check(status == 201, || format!("round {round}: B refused the upload: {body}"));
        let (_, listed) = a.call(Method::GET, &pa.path(&format!("/{id}/attachments")), member, None).await;
        m.check(listed["data"].get(&name).is_some(), || format!("round {round}: A's attachments are stale: {listed}"));
        let got =
            a.request(Method::GET, &pa.path(&format!("/{id}/attachments/{name}")), Some(member)).send().await.unwrap();
        let ok = got.status() == 200 && got.bytes().await.unwrap().as_ref() == bytes.as_slice();
        m.check(ok, || format!("round {round}: A could not download B's upload"));
        // and a delete through A right after
        let (status, body) = a.call(Method::DELETE, &pa.path(&format!("/{id}/attachments/{name}")), member, None).await;
        m.check(status == 200, || format!("round {round}: A refused to delete the upload: {body}"));
        let (_, listed) = b.call(Method::GET, &pa.path(&format!("/{id}/attachments")), member, None).await;
        m.check(listed["data"].get(&name).is_none(), || format!("round {round}: B's attachments are stale: {listed}"));
    }
    m
}

async fn deletes(a: &TestApp, pa: &Ports<'_>, pb: &Ports<'_>, member: &str) -> Misses {
    let mut m = Misses::default();
    for round in 0..ROUNDS {
        let id = pa.create(member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
        let (status, body) = pb.app.call(Method::DELETE, &pb.path(&format!("/{id}")), member, None).await;
        m.check(status == 200, || format!("round {round}: B refused the delete: {body}"));
        let (status, body) = pa.get(member, &id).await;
        m.check(status == 404, || format!("round {round}: A still reads a deleted request: {body}"));
        let (status, _) = a.call(Method::PATCH, &pa.path(&format!("/{id}")), member, Some(json!({"x": 1}))).await;
        m.check(status == 404, || format!("round {round}: A edited a deleted request: {status}"));
    }
    m
}

async fn letters(a: &TestApp, b: &TestApp, pa: &Ports<'_>, member: &str) -> Misses {
    let mut m = Misses::default();
    let id = pa.create(member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    for round in 0..5 {
        let name = format!("Signer{round}x{}", &hex32()[..6]);
        let (status, _) =
            b.call(Method::PATCH, &pa.path(&format!("/{id}")), member, Some(json!({"bill": {"name": name}}))).await;
        m.check(status == 200, || format!("round {round}: B refused the edit"));
        let pdf = a
            .request(Method::GET, &pa.path(&format!("/{id}/loa")), Some(member))
            .header("accept", "application/pdf")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let text = crate::loa::pdf_text(&pdf);
        m.check(text.contains(&name), || format!("round {round}: A's LOA is stale"));
    }
    m
}

#[tokio::test]
async fn every_change_through_one_instance_is_seen_by_the_other_at_once() {
    let (a, b) = pair().await;
    let t = tree(&a).await;
    let (pa, pb) = (Ports::new(&a, &t.customer), Ports::new(&b, &t.customer));
    let (member, authority) = (a.token(&t.customer), a.token(&t.reseller));
    let (moved, edited, commented, uploaded, deleted, lettered) = tokio::join!(
        moves(&a, &pa, &pb, &member, &authority),
        edits(&a, &b, &pa, &member),
        comments(&a, &b, &pa, &member),
        uploads(&a, &b, &pa, &member),
        deletes(&a, &pa, &pb, &member),
        letters(&a, &b, &pa, &member),
    );
    let all: Vec<&String> =
        [&moved, &edited, &commented, &uploaded, &deleted, &lettered].iter().flat_map(|m| &m.0).collect();
    assert!(all.is_empty(), "{} refusals or stale reads:\n{:#?}", all.len(), all);
}
