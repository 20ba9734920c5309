//! Create, read, edit, patch, delete: seed 000/002 examples replayed, shapes checked against
//! the seeds and the 4.3 documents.

use crate::helpers::{Ports, assert_error, spawn_app, tree};
use crate::kazoo::random_number;
use reqwest::Method;
use serde_json::{Value, json};

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

#[tokio::test]
async fn create_read_edit_patch_delete_as_the_seeds_show() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let token = app.token(&t.customer);
    let ports = Ports::new(&app, &t.customer);
    let number = random_number();
    let ten_digits = &number[2..];

    // PUT, seed 000 "Create a new port request" (numbers given without +1 are normalised)
    let resp = app
        .request(Method::PUT, &ports.path(""), Some(&token))
        .json(&json!({"data": {"numbers": {ten_digits: {}}, "name": "Porting 202.555.9000"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let created = body["data"].clone();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, ports.path(&format!("/{id}")));
    assert_eq!(
        keys(&created),
        ["_read_only", "created", "id", "name", "numbers", "port_state", "sent", "updated", "uploads"]
    );
    assert_eq!(created["numbers"], json!({ number.clone(): {} }));
    assert_eq!(created["port_state"], "unconfirmed");
    assert_eq!(created["uploads"], json!({}));
    assert_eq!(created["sent"], false);
    assert_eq!(
        created["_read_only"],
        json!({
            "account_id": t.customer.id, "account_name": "Customer",
            "port_authority": t.reseller.id, "port_authority_name": "Reseller"
        })
    );
    assert!(body["revision"].as_str().unwrap().starts_with("1-"));

    // GET, with the revision as ETag
    let resp = app.request(Method::GET, &ports.path(&format!("/{id}")), Some(&token)).send().await.unwrap();
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(etag, format!("\"{}\"", body["revision"].as_str().unwrap()));
    assert_eq!(body["data"], created);

    // POST, seed 000 "Edit a port request": a full replace of the public fields
    let (status, body) = app
        .call(
            Method::POST,
            &ports.path(&format!("/{id}")),
            &token,
            Some(json!({"numbers": {number.clone(): {"state": "NY"}}, "name": "Renamed"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["numbers"], json!({ number.clone(): {"state": "NY"} }));
    assert_eq!(body["data"]["name"], "Renamed");
    assert!(body["data"]["updated"].as_i64() >= created["updated"].as_i64());

    // PATCH, seed 000 "Patch a port request": merged, null removes
    let custom = json!({"carrier_port_id": "apc-8535937-gtk123", "carrier_name": "ace phone co"});
    let (status, body) = app
        .call(Method::PATCH, &ports.path(&format!("/{id}")), &token, Some(json!({"your_custom_info": custom})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["your_custom_info"], custom);
    assert_eq!(body["data"]["numbers"], json!({ number.clone(): {"state": "NY"} }));
    let (_, body) = app
        .call(
            Method::PATCH,
            &ports.path(&format!("/{id}")),
            &token,
            Some(json!({"your_custom_info": {"carrier_name": null}})),
        )
        .await;
    assert_eq!(body["data"]["your_custom_info"], json!({"carrier_port_id": "apc-8535937-gtk123"}));

    // DELETE: crossbar returns the document as it was, marked deleted, at its old revision
    let (_, before) = ports.get(&token, &id).await;
    let (status, body) = app.call(Method::DELETE, &ports.path(&format!("/{id}")), &token, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["_read_only"], json!({"deleted": true}));
    assert_eq!(body["data"]["id"], id);
    assert_eq!(body["data"]["name"], "Renamed");
    assert!(body["data"].get("port_state").is_none());
    assert_eq!(body["revision"], before["revision"]);
    let (status, body) = ports.get(&token, &id).await;
    assert_eq!(assert_error(status, &body, 404, "bad_identifier"), json!({"cause": id, "message": "bad identifier"}));
    // soft deleted: the document stays, flagged
    let raw = app.sys.couch.get("port_requests", &id).await.unwrap();
    assert_eq!(raw["pvt_deleted"], true);
}

#[tokio::test]
async fn stored_documents_have_the_4_3_shape() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let number = random_number();
    let resp = app
        .request(Method::PUT, &ports.path(""), Some(&app.token(&t.customer)))
        .header("X-Request-Id", "shape-check-1")
        .json(&json!({"data": {"numbers": {number.clone(): {}}, "name": "Shape Check #1",
                               "bill": {"name": "Jo", "carrier": "Acme"}}}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let id = body["data"]["id"].as_str().unwrap();
    let doc = app.sys.couch.get("port_requests", id).await.unwrap();
    assert_eq!(
        keys(&doc),
        [
            "_id",
            "_rev",
            "bill",
            "name",
            "numbers",
            "pvt_account_db",
            "pvt_account_id",
            "pvt_account_name",
            "pvt_alphanum_name",
            "pvt_auth_account_id",
            "pvt_auth_user_id",
            "pvt_created",
            "pvt_is_authenticated",
            "pvt_modified",
            "pvt_port_authority",
            "pvt_port_authority_name",
            "pvt_port_state",
            "pvt_request_id",
            "pvt_transitions",
            "pvt_tree",
            "pvt_type",
            "pvt_vsn",
        ]
    );
    assert_eq!(doc["pvt_type"], "port_request");
    assert_eq!(doc["pvt_vsn"], "1");
    assert_eq!(doc["pvt_account_db"], "port_requests");
    assert_eq!(doc["pvt_account_id"], t.customer.id);
    assert_eq!(doc["pvt_account_name"], "Customer");
    assert_eq!(doc["pvt_port_state"], "unconfirmed");
    assert_eq!(doc["pvt_port_authority"], t.reseller.id);
    assert_eq!(doc["pvt_port_authority_name"], "Reseller");
    assert_eq!(doc["pvt_tree"], json!(t.customer.tree));
    assert_eq!(doc["pvt_request_id"], "shape-check-1");
    assert_eq!(doc["pvt_auth_account_id"], t.customer.id);
    assert_eq!(doc["pvt_auth_user_id"], t.customer.user_id);
    assert_eq!(doc["pvt_is_authenticated"], true);
    assert_eq!(doc["pvt_alphanum_name"], "shapecheck1");
    let created = doc["pvt_created"].as_i64().unwrap();
    assert!(created > 63_900_000_000, "Gregorian seconds: {created}");
    assert_eq!(doc["pvt_modified"], doc["pvt_created"]);
    let transition = &doc["pvt_transitions"][0];
    assert_eq!(transition["type"], "transition");
    assert_eq!(transition["transition"], json!({"new": "unconfirmed"}));
    assert_eq!(transition["timestamp"], created);
    assert_eq!(transition["authorization"]["account"], json!({"id": t.customer.id, "name": "Customer"}));
    assert_eq!(
        transition["authorization"]["user"],
        json!({
            "id": t.customer.user_id, "first_name": "Admin", "last_name": "Customer", "full_name": "Admin Customer"
        })
    );
}

#[tokio::test]
async fn clients_may_choose_the_id_but_not_private_fields() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let token = app.token(&t.customer);
    let id = crate::kazoo::hex32();
    let (status, body) = app
        .call(Method::PUT, &ports.path(""), &token, Some(json!({
            "id": id, "name": "x", "numbers": {random_number(): {}},
            "pvt_port_state": "completed", "port_state": "completed", "_rev": "9-x", "pvt_port_authority": t.customer.id
        })))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["id"], id);
    assert_eq!(body["data"]["port_state"], "unconfirmed");
    assert_eq!(body["data"]["_read_only"]["port_authority"], t.reseller.id);
    let (status, _) = app
        .call(
            Method::PUT,
            &ports.path(""),
            &token,
            Some(json!({"id": id, "name": "again", "numbers": {random_number(): {}}})),
        )
        .await;
    assert_eq!(status, 409);
    let (status, body) = app
        .call(
            Method::PUT,
            &ports.path(""),
            &token,
            Some(json!({"id": "../etc", "name": "x", "numbers": {random_number(): {}}})),
        )
        .await;
    assert!(assert_error(status, &body, 400, "validation error")["id"]["pattern"].is_object());
}

#[tokio::test]
async fn validation_errors_use_kazoo_paths() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let token = app.token(&t.customer);
    let cases = vec![
        (json!({"numbers": {random_number(): {}}}), "name", "required"),
        (json!({"name": "", "numbers": {random_number(): {}}}), "name", "minLength"),
        (json!({"name": "x".repeat(129), "numbers": {random_number(): {}}}), "name", "maxLength"),
        (json!({"name": "x"}), "numbers", "required"),
        (json!({"name": "x", "numbers": {}}), "numbers", "minProperties"),
        (json!({"name": "x", "numbers": {"12": {}}}), "numbers.12", "pattern"),
        (json!({"name": "x", "numbers": {"not-a-number": {}}}), "numbers.not-a-number", "pattern"),
        (json!({"name": "x", "numbers": {random_number(): "NY"}}), "", "type"),
        (
            json!({"name": "x", "numbers": {random_number(): {}}, "notifications": {"email": {"send_to": "nope"}}}),
            "notifications.email.send_to",
            "wrong_format",
        ),
        (
            json!({"name": "x", "numbers": {random_number(): {}}, "notifications": {"email": {"send_to": ["a@b.example", "bad"]}}}),
            "notifications.email.send_to.1",
            "wrong_format",
        ),
        (json!({"name": "x", "numbers": {random_number(): {}}, "transfer_date": "tomorrow"}), "transfer_date", "type"),
        (json!({"name": "x", "numbers": {random_number(): {}}, "bill": {"pin": 1234}}), "bill.pin", "type"),
        (
            json!({"name": "x", "numbers": {random_number(): {}}, "notifications": {"webhook": {"url": "ftp://x"}}}),
            "notifications.webhook.url",
            "wrong_format",
        ),
        (
            json!({"name": "x", "numbers": {random_number(): {}}, "schedule_on": {"date_time": "2030-01-01 10:00", "timezone": "Mars/Base"}}),
            "schedule_on.timezone",
            "enum",
        ),
    ];
    for (data, path, code) in cases {
        let (status, body) = app.call(Method::PUT, &ports.path(""), &token, Some(data.clone())).await;
        let errors = assert_error(status, &body, 400, "validation error");
        let entry = if path.is_empty() {
            errors.as_object().unwrap().values().next().cloned().unwrap()
        } else {
            errors[path].clone()
        };
        assert!(entry[code].is_object(), "{data} -> expected {path}.{code}, got {errors}");
    }
    // an array as data is refused, as is a body that is not JSON
    let (status, body) = app.call(Method::PUT, &ports.path(""), &token, Some(json!([1, 2]))).await;
    assert!(assert_error(status, &body, 400, "validation error")["data"]["type"].is_object());
}

#[tokio::test]
async fn edits_are_limited_by_state() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let (member, authority) = (app.token(&t.customer), app.token(&t.reseller));
    let created = ports.create(&member, &[&random_number()]).await;
    let id = created["id"].as_str().unwrap();
    ports.walk(&authority, id, &["submitted"]).await;

    let edit = json!({"name": "late edit", "numbers": created["numbers"]});
    let (status, body) = app.call(Method::POST, &ports.path(&format!("/{id}")), &member, Some(edit.clone())).await;
    let data = assert_error(status, &body, 400, "validation error");
    assert_eq!(
        data,
        json!({"submitted": {"type": {
        "message": "Updating port requests not allowed in current port state", "cause": "submitted"}}})
    );
    // a superduper admin may
    let (status, body) = app.call(Method::POST, &ports.path(&format!("/{id}")), &app.master_token(), Some(edit)).await;
    assert_eq!(status, 200, "{body}");
    // PATCH of other fields is fine in any state; changing the numbers is not
    let (status, _) =
        app.call(Method::PATCH, &ports.path(&format!("/{id}")), &member, Some(json!({"reference_number": "R1"}))).await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call(Method::PATCH, &ports.path(&format!("/{id}")), &member, Some(json!({"numbers": {random_number(): {}}})))
        .await;
    assert_eq!(status, 400);
    // DELETE only in unconfirmed, rejected, canceled
    let (status, body) = app.call(Method::DELETE, &ports.path(&format!("/{id}")), &member, None).await;
    assert_error(status, &body, 405, "invalid_method");
    ports.walk(&authority, id, &["rejected"]).await;
    let (status, _) = app.call(Method::DELETE, &ports.path(&format!("/{id}")), &member, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn stale_if_match_is_412_and_requests_of_other_accounts_are_404() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let token = app.token(&t.customer);
    let created = ports.create(&token, &[&random_number()]).await;
    let id = created["id"].as_str().unwrap();
    let (_, first) = ports.get(&token, id).await;
    let rev = first["revision"].as_str().unwrap().to_owned();
    let (status, _) = app.call(Method::PATCH, &ports.path(&format!("/{id}")), &token, Some(json!({"a": 1}))).await;
    assert_eq!(status, 200);
    let resp = app
        .request(Method::PATCH, &ports.path(&format!("/{id}")), Some(&token))
        .header("If-Match", format!("\"{rev}\""))
        .json(&json!({"data": {"a": 2}}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_error(status, &resp.json().await.unwrap(), 412, "precondition_failed");
    let (_, current) = ports.get(&token, id).await;
    assert_eq!(current["data"]["a"], 1);

    // the same id under an unrelated account the caller may see is unknown there
    let other = app.sys.account(Some(&t.customer), "Child", json!({})).await;
    let (status, _) =
        app.call(Method::GET, &format!("/v2/accounts/{}/port_requests/{id}", other.id), &token, None).await;
    assert_eq!(status, 404);
    // while the ancestor sees its descendant's request
    let (status, _) = app
        .call(Method::GET, &format!("/v2/accounts/{}/port_requests/{id}", t.reseller.id), &app.token(&t.reseller), None)
        .await;
    assert_eq!(status, 200);
}
