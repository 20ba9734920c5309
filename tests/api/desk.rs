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
    // a code that is not a string is refused, not taken for none
    for odd in [json!({"code": "wrong_pin"}), json!(["wrong_pin"]), json!(true)] {
        let (status, body) = ports.to(&authority, &id, "rejected", Some(json!({"reason_code": odd}))).await;
        assert!(assert_error(status, &body, 400, "validation error")["reason_code"].is_object(), "{odd}: {body}");
    }
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

/// Thresholds of seconds for every rule, so a test sees requests enter attention.
fn quick_rules() -> Value {
    json!({"attention_rules": {
        "overdue": {"after": {"seconds": 0}},
        "at_risk": {"before": {"days": 2}},
        "not_picked_up": {"after": {"seconds": 2}},
        "no_scheduled_date": {"after": {"seconds": 2}},
        "waiting_on_customer": {"after": {"seconds": 2}},
        "unconfirmed": {"after": {"seconds": 2}},
    }})
}

async fn new_request(app: &TestApp, account: &Account, extra: Value) -> String {
    let mut data = json!({"name": format!("Attention {}", &hex32()[..6]), "numbers": {random_number(): {}},
        "bill": {"carrier": "Pacific Bell"}});
    for (k, v) in extra.as_object().unwrap() {
        data[k] = v.clone();
    }
    let (status, body) =
        app.call(Method::PUT, &Ports::new(app, account).path(""), &app.token(account), Some(data)).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

/// Every page of an attention listing: (id, rule, who) in order.
async fn attention_rows(app: &TestApp, path: &str, token: &str, page_size: usize) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut start: Option<String> = None;
    for _ in 0..20 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut url = format!("{path}{sep}page_size={page_size}");
        if let Some(s) = &start {
            url.push_str(&format!("&start_key={s}"));
        }
        let (status, body) = app.call(Method::GET, &url, token, None).await;
        assert_eq!(status, 200, "{url}: {body}");
        for r in body["data"].as_array().unwrap() {
            assert!(r["action"].is_string() && r["since"].is_i64() && r["attention_since"].is_i64(), "{r}");
            out.push((
                r["id"].as_str().unwrap().to_owned(),
                r["rule"].as_str().unwrap().to_owned(),
                r["who"].as_str().unwrap().to_owned(),
            ));
        }
        match body["next_start_key"].as_str() {
            Some(next) => start = Some(next.to_owned()),
            None => return out,
        }
    }
    panic!("the pages never end");
}

#[tokio::test]
async fn every_rule_takes_requests_in_and_lets_them_out_most_urgent_first() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    configure_desk(&app, &t.reseller, quick_rules()).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let past = json!({"schedule_on": {"date_time": "2020-01-02 12:00", "timezone": "UTC"}});
    let future = json!({"schedule_on": {"date_time": "2031-01-02 12:00", "timezone": "UTC"}});

    let unconfirmed = new_request(&app, &t.customer, json!({})).await;
    let not_picked = new_request(&app, &t.customer, json!({})).await;
    ports.walk(&member, &not_picked, &["submitted"]).await;
    let undated = new_request(&app, &t.customer, json!({})).await;
    ports.walk(&authority, &undated, &["submitted", "pending"]).await;
    let overdue = new_request(&app, &t.customer, json!({})).await;
    ports.walk(&authority, &overdue, &["submitted", "pending"]).await;
    let (status, body) = ports.to(&authority, &overdue, "scheduled", Some(past)).await;
    assert_eq!(status, 200, "{body}");
    let soon = crate::kazoo::now_gregorian() + 86_400;
    let at_risk = new_request(&app, &t.customer, json!({"transfer_date": soon})).await;
    ports.walk(&member, &at_risk, &["submitted"]).await;
    let rejected = new_request(&app, &t.customer, json!({})).await;
    ports.walk(&authority, &rejected, &["submitted", "rejected"]).await;
    // a canceled one never needs attention
    let canceled = new_request(&app, &t.customer, json!({})).await;
    ports.walk(&member, &canceled, &["canceled"]).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let mine = ports.path("/attention");
    let all = attention_rows(&app, &mine, &member, 50).await;
    let expected = [
        (&overdue, "overdue", "authority"),
        (&at_risk, "at_risk", "authority"),
        (&not_picked, "not_picked_up", "authority"),
        (&undated, "no_scheduled_date", "authority"),
        (&rejected, "waiting_on_customer", "customer"),
        (&unconfirmed, "unconfirmed", "submitter"),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(id, r, w)| (id.to_string(), r.to_string(), w.to_string())).collect();
    assert_eq!(all, expected, "each once, most urgent rule first");
    // paged two at a time: the same rows
    assert_eq!(attention_rows(&app, &mine, &member, 2).await, expected);
    // the authority's desk across its accounts: what it must act on
    let desk = attention_rows(&app, "/v2/port_requests/attention", &authority, 50).await;
    assert_eq!(desk, expected[..4].to_vec());
    let customers = format!("/v2/accounts/{}/descendants/port_requests/attention?who=customer", t.reseller.id);
    assert_eq!(attention_rows(&app, &customers, &authority, 50).await, expected[4..5].to_vec());
    let (status, body) = app.call(Method::GET, &format!("{mine}?who=everyone"), &member, None).await;
    assert_eq!(assert_error(status, &body, 400, "validation error")["who"]["enum"]["value"], "everyone");
    let (status, body) = app.call(Method::GET, &format!("{mine}?page_size=0"), &member, None).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) =
        app.call(Method::GET, &mine, &app.token(&app.sys.account(None, "Stranger", json!({})).await), None).await;
    assert_eq!(status, 403);

    // each leaves attention as it moves on
    ports.walk(&authority, &overdue, &["completed"]).await;
    ports.to(&authority, &undated, "scheduled", Some(future.clone())).await;
    ports.to(&authority, &at_risk, "pending", Some(json!({"transfer_date": soon + 86_400 * 30}))).await;
    ports.walk(&authority, &not_picked, &["canceled"]).await;
    ports.walk(&member, &rejected, &["submitted"]).await;
    ports.walk(&member, &unconfirmed, &["canceled"]).await;
    let left = attention_rows(&app, &mine, &member, 50).await;
    assert!(left.is_empty(), "{left:?}");

    // the timelines say when each entered and left
    let timeline = |id: String| {
        let (app, path, token) = (&app, ports.path(&format!("/{id}/timeline")), authority.clone());
        async move {
            let (status, body) = app.call(Method::GET, &path, &token, None).await;
            assert_eq!(status, 200, "{body}");
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == "attention")
                .cloned()
                .collect::<Vec<Value>>()
        }
    };
    let seen = timeline(overdue.clone()).await;
    let events: Vec<(&str, &str)> = seen
        .iter()
        .map(|e| (e["attention"]["rule"].as_str().unwrap(), e["attention"]["event"].as_str().unwrap()))
        .collect();
    assert!(events.ends_with(&[("overdue", "entered"), ("overdue", "left")]), "{seen:?}");
    let seen = timeline(rejected.clone()).await;
    let events: Vec<(&str, &str)> = seen
        .iter()
        .map(|e| (e["attention"]["rule"].as_str().unwrap(), e["attention"]["event"].as_str().unwrap()))
        .collect();
    assert_eq!(events, [("waiting_on_customer", "entered"), ("waiting_on_customer", "left")], "{seen:?}");
    let entered = seen[0]["timestamp"].as_i64().unwrap();
    let left = seen[1]["timestamp"].as_i64().unwrap();
    assert!(left > entered, "{seen:?}");
}

/// A port request as Kazoo stores it, written straight to CouchDB: completed `days` after its
/// submission, with the transitions newest first.
async fn stored_completed(
    app: &TestApp,
    account: &Account,
    authority: &Account,
    carrier: &str,
    days: i64,
    slipped: bool,
) {
    let now = crate::kazoo::now_gregorian();
    let submitted = now - days * 86_400 - 3600;
    let completed = submitted + days * 86_400 + 60;
    let mut tree = account.tree.clone();
    if tree.is_empty() {
        tree.push(authority.id.clone());
    }
    let mut transitions = vec![
        json!({"timestamp": completed, "type": "transition", "transition": {"new": "completed", "previous": "scheduled"}}),
        json!({"timestamp": submitted + 20, "type": "transition", "transition": {"new": "scheduled", "previous": "pending"}}),
    ];
    if slipped {
        transitions.push(json!({"timestamp": submitted + 15, "type": "transition", "transition": {"new": "scheduled", "previous": "pending"}}));
    }
    transitions.push(json!({"timestamp": submitted + 10, "type": "transition", "transition": {"new": "pending", "previous": "submitted"}}));
    transitions.push(json!({"timestamp": submitted, "type": "transition", "transition": {"new": "submitted", "previous": "unconfirmed"}}));
    let doc = json!({
        "_id": hex32(), "name": "Stored", "numbers": {}, "bill": {"carrier": carrier},
        "scheduled_date": completed - 100,
        "pvt_type": "port_request", "pvt_port_state": "completed", "pvt_account_id": account.id,
        "pvt_port_authority": authority.id, "pvt_tree": account.tree, "pvt_created": submitted - 100,
        "pvt_modified": completed, "pvt_transitions": transitions,
    });
    let r = app.sys.couch.put("port_requests", &doc).await;
    assert_eq!(r["ok"], true, "{r}");
}

#[tokio::test]
async fn the_report_per_losing_carrier_matches_what_the_test_counts() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let begin = crate::kazoo::now_gregorian() - 1;
    let with = |carrier: &str| json!({"bill": {"carrier": carrier}});
    // Pacific Bell: 3 made: one completed at once, one rejected twice (once with a code) and
    // canceled, one never submitted
    let done = new_request(&app, &t.customer, with("Pacific Bell")).await;
    ports.walk(&authority, &done, &["submitted", "pending", "completed"]).await;
    let bounced = new_request(&app, &t.customer, with("Pacific Bell")).await;
    ports.walk(&authority, &bounced, &["submitted"]).await;
    ports.to(&authority, &bounced, "rejected", Some(json!({"reason_code": "wrong_pin"}))).await;
    ports.walk(&member, &bounced, &["submitted"]).await;
    ports.walk(&authority, &bounced, &["rejected"]).await;
    ports.walk(&authority, &bounced, &["canceled"]).await;
    new_request(&app, &t.customer, with("  Pacific Bell ")).await;
    // AT&T: one submitted
    let att = new_request(&app, &t.customer, with("AT&T")).await;
    ports.walk(&member, &att, &["submitted"]).await;
    // no carrier
    new_request(&app, &t.customer, json!({"bill": {"name": "No carrier"}})).await;
    // stored completed ones, made days ago: 2, 5 and 9 days to complete, one slipped
    for (days, slipped) in [(2, false), (5, true), (9, false)] {
        stored_completed(&app, &t.customer, &t.reseller, "Verizon", days, slipped).await;
    }

    let path = format!("/v2/accounts/{}/port_requests/report", t.reseller.id);
    let (status, body) = app.call(Method::GET, &path, &authority, None).await;
    assert_eq!(status, 200, "{body}");
    let rows = body["data"].as_array().unwrap();
    let of = |c: &str| rows.iter().find(|r| r["carrier"] == c).unwrap_or_else(|| panic!("{c}: {body}")).clone();
    let pb = of("Pacific Bell");
    assert_eq!(
        (pb["requests"].as_u64(), pb["submitted"].as_u64(), pb["completed"].as_u64()),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!((pb["rejected"].as_u64(), pb["canceled"].as_u64()), (Some(1), Some(1)));
    assert_eq!(pb["completion_rate"], json!(0.5));
    assert_eq!((pb["median_days"].as_u64(), pb["p90_days"].as_u64()), (Some(0), Some(0)));
    assert_eq!(pb["rejections_by_code"], json!({"wrong_pin": 1, "uncoded": 1}));
    let vz = of("Verizon");
    assert_eq!(
        (vz["submitted"].as_u64(), vz["completed"].as_u64(), vz["foc_slipped"].as_u64()),
        (Some(3), Some(3), Some(1))
    );
    assert_eq!((vz["median_days"].as_u64(), vz["p90_days"].as_u64()), (Some(5), Some(9)));
    assert_eq!(of("AT&T")["submitted"], 1);
    assert_eq!(of("unknown")["requests"], 1);
    assert_eq!(rows.len(), 4);
    // the customer's own report is the same (its subtree holds them all)
    let (_, mine) = app.call(Method::GET, &ports.path("/report"), &member, None).await;
    assert_eq!(mine["data"], body["data"]);

    // a window: created since the test began leaves out the stored ones
    let (status, body) = app.call(Method::GET, &format!("{path}?created_from={begin}"), &authority, None).await;
    assert_eq!(status, 200, "{body}");
    let carriers: Vec<&str> = body["data"].as_array().unwrap().iter().map(|r| r["carrier"].as_str().unwrap()).collect();
    assert_eq!(carriers, ["Pacific Bell", "AT&T", "unknown"]);
    assert_eq!(body["data"][0]["rejections_by_code"], json!({"wrong_pin": 1, "uncoded": 1}));
    let (_, body) = app.call(Method::GET, &format!("{path}?created_to={}", begin - 50), &authority, None).await;
    let carriers: Vec<&str> = body["data"].as_array().unwrap().iter().map(|r| r["carrier"].as_str().unwrap()).collect();
    assert_eq!(carriers, ["Verizon"]);

    // CSV
    let resp = app.request(Method::GET, &format!("{path}?accept=csv"), Some(&authority)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with(
            "carrier,requests,submitted,completed,rejected,canceled,completion_rate,median_days,p90_days,foc_slipped"
        ),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("Verizon,3,3,3,0,0,1,5,9,1")), "{text}");

    // bad parameters name themselves
    for (query, field) in [
        ("created_from=yesterday", "created_from"),
        ("created_to=-5", "created_to"),
        ("created_from=200&created_to=100", "created_from"),
    ] {
        let (status, body) = app.call(Method::GET, &format!("{path}?{query}"), &authority, None).await;
        assert!(assert_error(status, &body, 400, "validation error").get(field).is_some(), "{query}: {body}");
    }
}

/// The digest's mails among an address's mails.
fn digests(mails: &[Value]) -> Vec<Value> {
    mails
        .iter()
        .filter(|m| m["subject"].as_str().unwrap_or_default().contains("need your attention"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_daily_digest_goes_once_lists_with_links_and_says_nothing_when_empty() {
    let sys_app = spawn_app().await;
    let t = tree(&sys_app).await;
    configure_desk(&sys_app, &t.reseller, {
        let mut c = quick_rules();
        c["digest"] = json!({"at": "00:00", "link": "https://portal.example/ports/{account_id}/{id}"});
        c
    })
    .await;
    // another authority with nothing that needs attention
    let quiet = sys_app.sys.account(None, "Quiet reseller", json!({"pvt_reseller": true})).await;
    let quiet_support = format!("quiet-{}@example.com", &hex32()[..8]);
    sys_app.sys.whitelabel(&quiet, &quiet.id, Some(&quiet_support)).await;
    configure_desk(&sys_app, &quiet, json!({"digest": {"at": "00:00"}, "business_hours": {"timezone": "UTC"}})).await;
    let quiet_customer = sys_app.sys.account(Some(&quiet), "Quiet customer", json!({})).await;
    let fresh = new_request(&sys_app, &quiet_customer, json!({})).await;
    let ports = Ports::new(&sys_app, &t.customer);
    let (member, authority) = (sys_app.token(&t.customer), sys_app.token(&t.reseller));
    let waiting = new_request(&sys_app, &t.customer, json!({"name": "Waiting on us"})).await;
    ports.walk(&member, &waiting, &["submitted"]).await;
    let bounced = new_request(&sys_app, &t.customer, json!({"name": "Waiting on them"})).await;
    ports.walk(&authority, &bounced, &["submitted", "rejected"]).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    // the CLI prints it
    let dry_run = |account: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kazoo-port-requests"))
            .args(["digest", "--account", account, "--dry-run"])
            .env("COUCHDB_URL", &sys_app.sys.couch.url)
            .env("TEMPLATES_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/templates"))
            .env("LOG", "error")
            .output()
            .expect("the binary runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let printed = dry_run(&t.reseller.id);
    assert!(printed.starts_with("Subject: Port requests for Reseller: 1 need your attention"), "{printed}");
    assert!(printed.contains("Waiting on us") && printed.contains("Waiting on them"), "{printed}");
    assert!(dry_run(&quiet.id).contains("no digest"));

    // two instances with the digest on: one mail per authority and day
    let only = vec![t.reseller.id.clone(), quiet.id.clone()];
    let apps = [
        crate::helpers::spawn_app_with({
            let only = only.clone();
            move |s| {
                s.jobs.digest.on = true;
                s.jobs.digest.only = only;
            }
        })
        .await,
        crate::helpers::spawn_app_with(move |s| {
            s.jobs.digest.on = true;
            s.jobs.digest.only = only;
        })
        .await,
    ];
    let support = crate::helpers::support_email(&t.reseller);
    let mails = digests(&wait_mails(&maildev(), &support, 1).await);
    assert_eq!(mails.len(), 1, "{mails:?}");
    let text = mails[0]["text"].as_str().unwrap();
    assert!(text.contains("Needs your attention (1)") && text.contains("Waiting on us"), "{text}");
    assert!(text.contains("Check the submission"), "{text}");
    assert!(text.contains(&format!("https://portal.example/ports/{}/{waiting}", t.customer.id)), "{text}");
    assert!(text.contains("Waiting on your customers (1)") && text.contains("Waiting on them"), "{text}");
    let html = mails[0]["html"].as_str().unwrap();
    assert!(html.contains(&format!("href=\"https://portal.example/ports/{}/{bounced}\"", t.customer.id)), "{html}");
    // a few more rounds of both instances: still one
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(digests(&crate::helpers::mails_to(&maildev(), &support).await).len(), 1);
    // nothing to say: no mail, the day's record says why
    assert!(digests(&crate::helpers::mails_to(&maildev(), &quiet_support).await).is_empty());
    let day = chrono::Utc::now().date_naive();
    let id = format!("delivery:digest:{}:{day}:email:port_authority_digest", quiet.id);
    let record = sys_app.sys.couch.get("kazoo_port_requests", &id).await.expect("the quiet authority's record");
    assert_eq!(record["status"], "skipped", "{record}");
    drop(apps);
    let _ = fresh;
}

#[tokio::test]
async fn prometheus_shows_requests_per_state_and_rule_and_port_times_per_carrier_with_bounded_labels() {
    let app = crate::helpers::spawn_app_with(|s| s.jobs.desk_metrics = Some(std::time::Duration::from_secs(1))).await;
    let t = tree(&app).await;
    configure_desk(&app, &t.reseller, quick_rules()).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let waiting = new_request(&app, &t.customer, json!({})).await;
    ports.walk(&member, &waiting, &["submitted"]).await;
    let done = new_request(&app, &t.customer, json!({"bill": {"carrier": format!("Carrier {}", hex32())}})).await;
    ports.walk(&authority, &done, &["submitted", "pending"]).await;
    let future = json!({"schedule_on": {"date_time": "2031-01-02 12:00", "timezone": "UTC"}});
    ports.to(&authority, &done, "scheduled", Some(future)).await;
    ports.walk(&authority, &done, &["completed"]).await;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;

    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let value = |series: &str| -> Option<f64> {
        text.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
    };
    for state in ["unconfirmed", "submitted", "pending", "scheduled", "completed", "rejected", "canceled"] {
        assert!(value(&format!("kpr_port_requests{{state=\"{state}\"}}")).is_some(), "{state}: {text}");
    }
    assert!(value("kpr_port_requests{state=\"submitted\"}").unwrap() >= 1.0);
    assert!(value("kpr_port_requests_attention{rule=\"not_picked_up\"}").unwrap_or(0.0) >= 1.0, "{text}");
    assert!(value("kpr_port_requests_attention{rule=\"overdue\"}").is_some());
    // the carrier typed once is not a label of its own
    assert!(!text.contains("Carrier "), "an unbounded label");
    let completed: Vec<&str> =
        text.lines().filter(|l| l.starts_with("kpr_port_submitted_to_completed_seconds_count{")).collect();
    assert!(completed.iter().any(|l| l.contains("carrier=\"other\"")), "{completed:?}");
    let carriers: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("kpr_port_submitted_to_"))
        .filter_map(|l| l.split("carrier=\"").nth(1).and_then(|r| r.split('"').next()))
        .collect();
    assert!(carriers.len() <= 11, "{carriers:?}");
    assert!(text.contains("kpr_port_submitted_to_scheduled_seconds_bucket"));
}
