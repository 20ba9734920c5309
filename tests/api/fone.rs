//! The Fone Dynamics porting API on the same port requests.

use crate::helpers::{Ports, TestApp, assert_error, receiver, send, spawn_app, tree, wait_mails};
use crate::kazoo::{Account, account_db, hex32};
use rand::Rng;
use reqwest::Method;
use serde_json::{Value, json};

fn au_number() -> String {
    format!("+612{}", rand::thread_rng().gen_range(10_000_000..99_999_999))
}

fn seed(number: &str, email: &str) -> Value {
    json!({
        "CustomerDescription": "My Porting Request",
        "AuthorisedContactName": "John Doe",
        "AuthorisedContactEmail": email,
        "DaytimeContactNumber": "+61299999999",
        "CurrentCarrier": "Optus",
        "CurrentCarrierAccountNo": "12345678",
        "PortingNumbers": [{"Number": number, "PortType": "Cat-A",
                            "IncomingActionType": "Answering Point", "IncomingAnswerPoint": "+61277777777"}]
    })
}

async fn post(app: &TestApp, property: &str, token: &str, body: &Value) -> (u16, Value) {
    send(app.request(Method::POST, &format!("/v2/Properties/{property}/Porting"), Some(token)).json(body)).await
}

#[tokio::test]
async fn the_seed_example_end_to_end() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let token = app.token(&t.customer);
    let email = format!("john-{}@example.com", &hex32()[..10]);
    let number = "+61288888888";
    let before = chrono::Utc::now().timestamp();
    let (status, body) = post(&app, &t.customer.id, &token, &seed(number, &email)).await;
    assert_eq!(status, 200, "{body}");
    let pr = &body["PortingRequest"];
    let id = pr["PortingNo"].as_str().unwrap().to_owned();
    assert_eq!(pr["PropertySid"], t.customer.id);
    assert_eq!(pr["AccountSid"], t.reseller.id);
    assert_eq!(pr["Status"], "Submitted");
    for (k, v) in seed(number, &email).as_object().unwrap() {
        if k != "PortingNumbers" {
            assert_eq!(pr[k], *v, "{k} is echoed");
        }
    }
    assert_eq!(pr["PortingNumbers"][0]["Number"], number);
    assert_eq!(pr["PortingNumbers"][0]["PortType"], "Cat-A");
    assert_eq!(pr["PortingNumbers"][0]["IncomingAnswerPoint"], "+61277777777");
    assert!(pr["DateCreated"].as_i64().unwrap() >= before && pr["DateUpdated"].as_i64().unwrap() >= before);

    // an ordinary Kazoo port request
    let ports = Ports::new(&app, &t.customer);
    let (status, kazoo) = ports.get(&token, &id).await;
    assert_eq!(status, 200);
    let d = &kazoo["data"];
    assert_eq!(d["port_state"], "submitted");
    assert_eq!(d["name"], "My Porting Request");
    assert_eq!(d["signee_name"], "John Doe");
    assert_eq!(d["bill"], json!({"carrier": "Optus", "account_number": "12345678"}));
    assert_eq!(d["notifications"]["email"]["send_to"], email);
    assert_eq!(d["numbers"][number]["incoming_action_type"], "Answering Point");
    assert_eq!(d["_read_only"]["port_authority"], t.reseller.id);
    let (_, timeline) = app.call(Method::GET, &ports.path(&format!("/{id}/timeline")), &token, None).await;
    assert_eq!(timeline["data"][1]["transition"], json!({"new": "submitted", "previous": "unconfirmed"}));
    // notified like any other
    let mails = wait_mails(&std::env::var("MAILDEV_URL").unwrap(), &email, 1).await;
    assert_eq!(mails.len(), 1);
}

#[tokio::test]
async fn every_validation_rule_is_a_clear_400() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let token = app.token(&t.customer);
    let n = au_number();
    let cases = vec![
        (json!({"CustomerDescription": "x"}), "PortingNumbers", "Required"),
        (json!({"PortingNumbers": []}), "PortingNumbers", "Required"),
        (json!({"PortingNumbers": [{"Number": "0288888888"}]}), "PortingNumbers[0].Number", "InvalidNumber"),
        (json!({"PortingNumbers": [{"Number": n, "PortType": "Cat-B"}]}), "PortingNumbers[0].PortType", "InvalidValue"),
        (
            json!({"PortingNumbers": [{"Number": n}], "PreferredPortSchedule": "Soon"}),
            "PreferredPortSchedule",
            "InvalidValue",
        ),
        (json!({"PortingNumbers": [{"Number": n}], "PreferredPortSchedule": "Date"}), "PreferredPortDate", "Required"),
        (
            json!({"PortingNumbers": [{"Number": n}], "PreferredPortSchedule": "Date", "PreferredPortDate": "24/06/2031"}),
            "PreferredPortDate",
            "InvalidDate",
        ),
        (
            json!({"PortingNumbers": [{"Number": n}], "PreferredPortSchedule": "Date", "PreferredPortDate": "2020-01-01"}),
            "PreferredPortDate",
            "DateInPast",
        ),
        (
            json!({"PortingNumbers": [{"Number": n, "IncomingActionType": "Queue"}]}),
            "PortingNumbers[0].IncomingActionType",
            "InvalidValue",
        ),
        (
            json!({"PortingNumbers": [{"Number": n, "IncomingActionType": "Flow"}]}),
            "PortingNumbers[0].IncomingActionId",
            "Required",
        ),
        (
            json!({"PortingNumbers": [{"Number": n, "IncomingActionType": "Answering Point"}]}),
            "PortingNumbers[0].IncomingAnswerPoint",
            "Required",
        ),
        (
            json!({"PortingNumbers": [{"Number": n}], "AuthorisedContactEmail": "john at example"}),
            "AuthorisedContactEmail",
            "InvalidEmail",
        ),
        (json!({"PortingNumbers": [{"Number": n}], "WebHookURL": "not a url"}), "WebHookURL", "InvalidUrl"),
    ];
    for (body, field, code) in cases {
        let (status, resp) = post(&app, &t.customer.id, &token, &body).await;
        assert_error(status, &resp, 400, "validation error");
        let errors = resp["Errors"].as_array().unwrap();
        assert!(
            errors.iter().any(|e| e["Field"] == field && e["Code"] == code && e["Message"].is_string()),
            "{body} -> {resp}"
        );
        assert_eq!(resp["ErrorCode"], 400);
        assert!(resp["data"][field][code]["message"].is_string());
    }
    // nothing was created
    let (_, list) = app
        .call(Method::GET, &format!("/v2/accounts/{}/port_requests?by_types=all", t.customer.id), &token, None)
        .await;
    assert_eq!(list["data"], json!([]));
    // a number already on an open request elsewhere, or in service
    let other = app.sys.account(None, "Elsewhere", json!({})).await;
    let taken = au_number();
    let (status, _) = post(&app, &other.id, &app.token(&other), &seed(&taken, "a@example.com")).await;
    assert_eq!(status, 200);
    let (status, resp) = post(&app, &t.customer.id, &token, &seed(&taken, "b@example.com")).await;
    assert_eq!(status, 400);
    assert_eq!(
        resp["Errors"][0],
        json!({"Field": "PortingNumbers[0].Number", "Code": "NumberUnavailable",
                                         "Message": "Number is being ported for a different account"})
    );
    let in_service = au_number();
    app.sys.assign_number(&in_service, &other, "in_service").await;
    let (_, resp) = post(&app, &t.customer.id, &token, &seed(&in_service, "b@example.com")).await;
    assert_eq!(resp["Errors"][0]["Message"], "Number exists on the system already");
    // not JSON
    let (status, resp) = send(
        app.request(Method::POST, &format!("/v2/Properties/{}/Porting", t.customer.id), Some(&token)).body("{nope"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(resp["Errors"][0]["Code"], "InvalidJson");
}

async fn api_key(app: &TestApp, account: &Account) -> String {
    let doc = app.sys.couch.get(&account_db(&account.id), &account.id).await.unwrap();
    doc["pvt_api_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn basic_and_token_authentication() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let key = api_key(&app, &t.customer).await;
    let url = app.url(&format!("/v2/Properties/{}/Porting", t.customer.id));
    let (status, body) =
        send(app.http.post(&url).basic_auth(&t.customer.id, Some(&key)).json(&seed(&au_number(), "c@example.com")))
            .await;
    assert_eq!(status, 200, "{body}");
    // the reseller's own key works on its property too
    let reseller_key = api_key(&app, &t.reseller).await;
    let (status, _) = send(
        app.http.post(&url).basic_auth(&t.reseller.id, Some(&reseller_key)).json(&seed(&au_number(), "c@example.com")),
    )
    .await;
    assert_eq!(status, 200);
    for (user, pass) in [(t.customer.id.as_str(), "wrong"), (t.customer.id.as_str(), ""), ("nobody", key.as_str())] {
        let (status, body) =
            send(app.http.post(&url).basic_auth(user, Some(pass)).json(&seed(&au_number(), "c@example.com"))).await;
        assert_error(status, &body, 401, "invalid_credentials");
    }
    let (status, _) = send(app.http.post(&url).json(&seed(&au_number(), "c@example.com"))).await;
    assert_eq!(status, 401);
    // an unrelated account's key is authenticated but not allowed here
    let other = app.sys.account(None, "Other", json!({})).await;
    let other_key = api_key(&app, &other).await;
    let (status, _) =
        send(app.http.post(&url).basic_auth(&other.id, Some(&other_key)).json(&seed(&au_number(), "c@example.com")))
            .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn status_window_and_paging() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let token = app.token(&t.customer);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (_, body) = post(&app, &t.customer.id, &token, &seed(&au_number(), "s@example.com")).await;
        ids.push(body["PortingRequest"]["PortingNo"].as_str().unwrap().to_owned());
    }
    let now = chrono::Utc::now().timestamp();
    let base = format!("/v2/Properties/{}/Porting/Status?From={}&To={}", t.customer.id, now - 120, now + 120);
    let mut seen = Vec::new();
    let mut url = format!("{base}&Results_Count=2");
    for _ in 0..5 {
        let (status, body) = send(app.request(Method::GET, &url, Some(&token))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["TotalCount"], 5);
        for pr in body["PortingRequests"].as_array().unwrap() {
            assert_eq!(pr["Status"], "Submitted");
            seen.push(pr["PortingNo"].as_str().unwrap().to_owned());
        }
        match body["NextPageToken"].as_str() {
            Some(tok) => url = format!("{base}&Results_Count=2&NextPageToken={tok}"),
            None => break,
        }
    }
    seen.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected, "no duplicate, no gap");
    let (_, body) = send(app.request(Method::GET, &format!("{base}&Results_Skip=4"), Some(&token))).await;
    assert_eq!(body["PortingRequests"].as_array().unwrap().len(), 1);
    let (_, body) =
        send(app.request(Method::GET, &format!("{base}&PortingRequestNumbers={},{}", ids[0], ids[1]), Some(&token)))
            .await;
    assert_eq!(body["TotalCount"], 2);
    // a window before any change
    let (_, body) = send(app.request(
        Method::GET,
        &format!("/v2/Properties/{}/Porting/Status?From=1&To={}", t.customer.id, now - 3600),
        Some(&token),
    ))
    .await;
    assert_eq!(body["TotalCount"], 0);
    // the account above the property sees them too
    let (status, body) = send(app.request(
        Method::GET,
        &format!("/v2/Accounts/{}/Porting/Status?From={}&To={}", t.reseller.id, now - 120, now + 120),
        Some(&app.token(&t.reseller)),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["TotalCount"], 5);
    assert_eq!(body["PortingRequests"][0]["AccountSid"], t.reseller.id);
    // From and To are required
    let (status, body) =
        send(app.request(Method::GET, &format!("/v2/Properties/{}/Porting/Status", t.customer.id), Some(&token))).await;
    assert_eq!(status, 400);
    assert_eq!(body["Errors"][0]["Field"], "From");
    let (status, _) = send(app.request(Method::GET, &format!("{base}&NextPageToken=forged"), Some(&token))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_webhook_gets_every_status_update() {
    let hook = receiver(1).await;
    let app = spawn_app().await;
    let t = tree(&app).await;
    let mut body = seed(&au_number(), "w@example.com");
    body["WebHookURL"] = json!(format!("{}/fone", hook.url));
    let (status, created) = post(&app, &t.customer.id, &app.token(&t.customer), &body).await;
    assert_eq!(status, 200);
    let id = created["PortingRequest"]["PortingNo"].as_str().unwrap().to_owned();
    Ports::new(&app, &t.customer).walk(&app.token(&t.reseller), &id, &["pending", "rejected"]).await;
    let hits = hook.wait(3).await;
    assert_eq!(hits.len(), 3);
    let statuses: Vec<String> = hits
        .iter()
        .map(|h| {
            serde_json::from_slice::<Value>(&h.body).unwrap()["PortingRequest"]["Status"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, ["Pending", "Rejected", "Submitted"]);
}
