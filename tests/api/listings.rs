//! Listings: scopes, by_types, per-state paths, by_number, last_submitted, ranges, paging.

use crate::helpers::{Ports, TestApp, assert_error, path_to, spawn_app, tree};
use crate::kazoo::{Account, now_gregorian, random_number};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const STATES: [&str; 7] = ["unconfirmed", "submitted", "pending", "scheduled", "completed", "rejected", "canceled"];

struct World {
    reseller: Account,
    customer: Account,
    /// state -> (request id, number) of the customer's requests
    customer_requests: BTreeMap<&'static str, (String, String)>,
    child_ids: Vec<String>,
    sibling_id: String,
    sibling_number: String,
}

async fn make(app: &TestApp, ports: &Ports<'_>, authority: &str, state: &str) -> (String, String) {
    let number = random_number();
    let id = ports.create(&app.token(ports.account), &[&number]).await["id"].as_str().unwrap().to_owned();
    ports.walk(authority, &id, path_to(state)).await;
    (id, number)
}

async fn world(app: &TestApp) -> World {
    let t = tree(app).await;
    let authority = app.token(&t.reseller);
    let child = app.sys.account(Some(&t.customer), "Child", json!({})).await;
    let sibling = app.sys.account(Some(&t.reseller), "Sibling", json!({})).await;
    let mut customer_requests = BTreeMap::new();
    let ports = Ports::new(app, &t.customer);
    for st in STATES {
        customer_requests.insert(st, make(app, &ports, &authority, st).await);
    }
    let child_ports = Ports::new(app, &child);
    let child_ids = vec![
        make(app, &child_ports, &authority, "submitted").await.0,
        make(app, &child_ports, &authority, "completed").await.0,
    ];
    let (sibling_id, sibling_number) = make(app, &Ports::new(app, &sibling), &authority, "submitted").await;
    World { reseller: t.reseller, customer: t.customer, customer_requests, child_ids, sibling_id, sibling_number }
}

/// Ids of a grouped listing, with a check of its shape.
fn grouped_ids(body: &Value) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for group in body["data"].as_array().unwrap() {
        assert!(group["account_id"].is_string() && group["account_name"].is_string(), "{group}");
        for pr in group["port_requests"].as_array().unwrap() {
            assert_eq!(pr["account_id"], group["account_id"]);
            for key in ["id", "name", "numbers", "port_state", "created", "updated", "uploads", "sent"] {
                assert!(pr.get(key).is_some(), "{key} missing in {pr}");
            }
            ids.insert(pr["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

fn ids_of(w: &World, states: &[&str]) -> BTreeSet<String> {
    states.iter().map(|s| w.customer_requests[s].0.clone()).collect()
}

#[tokio::test]
async fn account_listings_by_type_and_by_path() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let token = app.token(&w.customer);
    let base = format!("/v2/accounts/{}/port_requests", w.customer.id);

    let (status, body) = app.call(Method::GET, &base, &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(grouped_ids(&body), ids_of(&w, &["unconfirmed", "submitted", "pending", "scheduled", "rejected"]));
    assert_eq!(body["data"][0]["account_name"], "Customer");
    assert!(body.get("next_start_key").is_none() && body.get("page_size").is_none(), "active lists are not paged");

    for (types, states) in [
        ("active", &["unconfirmed", "submitted", "pending", "scheduled", "rejected"][..]),
        ("progressing", &["submitted", "pending", "scheduled"]),
        ("suspended", &["unconfirmed", "rejected"]),
        ("completed", &["completed", "canceled"]),
        ("all", &STATES),
        ("pending,scheduled,rejected", &["pending", "scheduled", "rejected"]),
    ] {
        let (status, body) = app.call(Method::GET, &format!("{base}?by_types={types}"), &token, None).await;
        assert_eq!(status, 200, "{types}: {body}");
        assert_eq!(grouped_ids(&body), ids_of(&w, states), "{types}");
    }
    for st in STATES {
        let (status, body) = app.call(Method::GET, &format!("{base}/{st}"), &token, None).await;
        assert_eq!(status, 200, "{st}");
        assert_eq!(grouped_ids(&body), ids_of(&w, &[st]), "{st}");
    }
    let (status, body) =
        app.call(Method::GET, &format!("{base}?by_types=pending,bogus,prgressing"), &token, None).await;
    let data = assert_error(status, &body, 400, "invalid_request");
    assert_eq!(data["message"], "query string by_types contained invalid values: bogus, prgressing");
}

#[tokio::test]
async fn descendant_and_agent_listings_keep_to_their_scope() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let all = "?by_types=all";
    let (_, body) = app
        .call(
            Method::GET,
            &format!("/v2/accounts/{}/descendants/port_requests{all}", w.customer.id),
            &app.token(&w.customer),
            None,
        )
        .await;
    assert_eq!(grouped_ids(&body), w.child_ids.iter().cloned().collect::<BTreeSet<_>>());

    let (_, body) = app
        .call(
            Method::GET,
            &format!("/v2/accounts/{}/descendants/port_requests{all}", w.reseller.id),
            &app.token(&w.reseller),
            None,
        )
        .await;
    let ids = grouped_ids(&body);
    assert!(ids.contains(&w.sibling_id) && w.child_ids.iter().all(|i| ids.contains(i)));
    assert_eq!(ids.len(), 7 + 2 + 1);

    // the reseller is the port authority of all of them
    let (status, body) = app.call(Method::GET, &format!("/v2/port_requests{all}"), &app.token(&w.reseller), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(grouped_ids(&body), ids);
    let names: BTreeSet<String> =
        body["data"].as_array().unwrap().iter().map(|g| g["account_name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["Child", "Customer", "Sibling"].iter().map(|s| s.to_string()).collect());
    // a customer is nobody's port authority
    let (status, body) = app.call(Method::GET, "/v2/port_requests", &app.token(&w.customer), None).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = app.call(Method::PUT, "/v2/port_requests", &app.token(&w.reseller), Some(json!({}))).await;
    assert_eq!(status, 403);
    // the sibling never shows for the customer
    let (_, body) = app
        .call(Method::GET, &format!("/v2/accounts/{}/port_requests{all}", w.customer.id), &app.token(&w.customer), None)
        .await;
    assert!(!grouped_ids(&body).contains(&w.sibling_id));
}

#[tokio::test]
async fn by_number_on_every_scope() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let (submitted_id, submitted_number) = &w.customer_requests["submitted"];
    let (completed_id, completed_number) = &w.customer_requests["completed"];
    let customer = app.token(&w.customer);
    let account_path = |n: &str| format!("/v2/accounts/{}/port_requests?by_number={}", w.customer.id, urlencode(n));

    let (status, body) = app.call(Method::GET, &account_path(&submitted_number[2..]), &customer, None).await;
    assert_eq!(status, 200);
    let found = body["data"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], *submitted_id);
    assert_eq!(found[0]["account_id"], w.customer.id);
    assert_eq!(body["page_size"], 1);
    // completed requests are found through their ported numbers
    let (_, body) = app.call(Method::GET, &account_path(completed_number), &customer, None).await;
    assert_eq!(body["data"][0]["id"], *completed_id);
    assert_eq!(body["data"][0]["port_state"], "completed");
    // out of reach: the sibling's number
    let (_, body) = app.call(Method::GET, &account_path(&w.sibling_number), &customer, None).await;
    assert_eq!(body["data"], json!([]));
    // the authority finds its own subtree's requests from /v2/port_requests and descendants
    let reseller = app.token(&w.reseller);
    let (_, body) = app
        .call(Method::GET, &format!("/v2/port_requests?by_number={}", urlencode(&w.sibling_number)), &reseller, None)
        .await;
    assert_eq!(body["data"][0]["id"], w.sibling_id);
    let (_, body) = app
        .call(
            Method::GET,
            &format!(
                "/v2/accounts/{}/descendants/port_requests?by_number={}",
                w.reseller.id,
                urlencode(submitted_number)
            ),
            &reseller,
            None,
        )
        .await;
    assert_eq!(body["data"][0]["id"], *submitted_id);
    // descendants of the customer do not include the customer itself
    let (_, body) = app
        .call(
            Method::GET,
            &format!(
                "/v2/accounts/{}/descendants/port_requests?by_number={}",
                w.customer.id,
                urlencode(submitted_number)
            ),
            &customer,
            None,
        )
        .await;
    assert_eq!(body["data"], json!([]));
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B")
}

#[tokio::test]
async fn by_number_hides_private_comments() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let number = random_number();
    let id = ports.create(&app.token(&t.customer), &[&number]).await["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .call(Method::PUT, &ports.path(&format!("/{id}/comments")), &app.token(&t.reseller),
              Some(json!({"comments": [{"author": "a", "content": "secret", "timestamp": now_gregorian(), "is_private": true}]})))
        .await;
    assert_eq!(status, 200);
    let (_, body) = app
        .call(
            Method::GET,
            &format!("{}?by_number={}", ports.path(""), urlencode(&number)),
            &app.token(&t.customer),
            None,
        )
        .await;
    assert_eq!(body["data"][0]["comments"], json!([]));
    let (_, body) = app
        .call(
            Method::GET,
            &format!("{}?by_number={}", ports.path(""), urlencode(&number)),
            &app.token(&t.reseller),
            None,
        )
        .await;
    assert_eq!(body["data"][0]["comments"][0]["content"], "secret");
}

#[tokio::test]
async fn last_submitted_newest_first() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
        let (status, _) = ports.to(&member, &id, "submitted", Some(json!({"reason": format!("r{i}")}))).await;
        assert_eq!(status, 200);
        ids.push(id);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    // resubmitted after a rejection: its last submission counts
    ports.walk(&authority, &ids[0], &["rejected"]).await;
    ports.to(&member, &ids[0], "submitted", Some(json!({"reason": "again"}))).await;
    let never = ports.create(&member, &[&random_number()]).await;

    for path in [format!("{}/last_submitted", ports.path("")), format!("{}?by_types=last_submitted", ports.path(""))] {
        let (status, body) = app.call(Method::GET, &path, &member, None).await;
        assert_eq!(status, 200, "{body}");
        let listed: Vec<&str> = body["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(listed, [ids[0].as_str(), ids[2].as_str(), ids[1].as_str()]);
        assert!(!listed.contains(&never["id"].as_str().unwrap()));
        let first = &body["data"][0];
        assert_eq!(first.as_object().unwrap().keys().collect::<Vec<_>>(), ["id", "transition"]);
        assert_eq!(first["transition"]["reason"], "again");
        assert_eq!(first["transition"]["transition"], json!({"new": "submitted", "previous": "rejected"}));
    }
}

#[tokio::test]
async fn completed_and_canceled_are_ranged() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let token = app.token(&w.customer);
    let base = format!("/v2/accounts/{}/port_requests?by_types=completed", w.customer.id);
    let now = now_gregorian();
    let (_, body) = app.call(Method::GET, &base, &token, None).await;
    assert_eq!(grouped_ids(&body), ids_of(&w, &["completed", "canceled"]));
    assert_eq!(body["page_size"], 2);
    assert!(body["start_key"].is_string());
    // a window in the past holds nothing
    let (_, body) = app
        .call(
            Method::GET,
            &format!("{base}&modified_from={}&modified_to={}", now - 100_000, now - 50_000),
            &token,
            None,
        )
        .await;
    assert_eq!(body["data"], json!([]));
    let (status, body) =
        app.call(Method::GET, &format!("{base}&modified_from={}&modified_to={}", now, now - 10), &token, None).await;
    let data = assert_error(status, &body, 400, "validation error");
    assert_eq!(
        data["modified_from"]["date_range"]["message"],
        format!("modified_to {} is prior to modified_from {now}", now - 10)
    );
    let (status, body) = app
        .call(Method::GET, &format!("{base}&modified_from={}&modified_to={now}", now - 3_000_000), &token, None)
        .await;
    let data = assert_error(status, &body, 400, "validation error");
    assert!(
        data["modified_from"]["date_range"]["message"].as_str().unwrap().contains("is more than 2682000 seconds from")
    );
}

/// Pages through a listing with `next_start_key` and returns every id in page order.
async fn walk_pages(app: &TestApp, token: &str, first: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut url = first.to_owned();
    for _ in 0..100 {
        let (status, body) = app.call(Method::GET, &url, token, None).await;
        assert_eq!(status, 200, "{body}");
        let page: Vec<String> = match body["data"].as_array().unwrap().first() {
            Some(g) if g.get("port_requests").is_some() => body["data"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["port_requests"].as_array().unwrap().iter())
                .map(|p| p["id"].as_str().unwrap().to_owned())
                .collect(),
            _ => body["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect(),
        };
        assert_eq!(body["page_size"], page.len());
        ids.extend(page);
        match body["next_start_key"].as_str() {
            Some(next) => url = format!("{first}&start_key={next}"),
            None => return ids,
        }
    }
    panic!("too many pages");
}

#[tokio::test]
async fn paging_has_no_duplicate_and_no_gap() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    // many requests modified within the same second: ties broken by id
    let mut expected = BTreeSet::new();
    for i in 0..13 {
        let id = ports.create(&member, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
        if i % 3 == 0 {
            ports.walk(&authority, &id, &["submitted"]).await;
        }
        if i % 4 == 0 {
            ports.walk(&authority, &id, &["canceled"]).await;
        }
        expected.insert(id);
    }
    for query in [
        "by_types=all&page_size=2",
        "by_types=all&page_size=3&descending=true",
        "by_types=active&page_size=1",
        "by_types=completed&page_size=1",
    ] {
        let first = format!("{}?{query}", ports.path(""));
        let ids = walk_pages(&app, &member, &first).await;
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), ids.len(), "{query}: duplicates in {ids:?}");
        if query.contains("all") {
            assert_eq!(unique, expected, "{query}: gap");
        }
    }
    // tampered page keys are refused
    for bad in ["garbage!", "WzAsMSwiLi4vIl0", "W10"] {
        let (status, body) = app
            .call(Method::GET, &format!("{}?by_types=all&page_size=2&start_key={bad}", ports.path("")), &member, None)
            .await;
        assert!(assert_error(status, &body, 400, "validation error")["start_key"].is_object());
    }
    let (status, _) = app.call(Method::GET, &format!("{}?page_size=0", ports.path("")), &member, None).await;
    assert_eq!(status, 400);
    let (status, _) = app.call(Method::GET, &format!("{}?page_size=abc", ports.path("")), &member, None).await;
    assert_eq!(status, 400);
}
