//! Kazoo token authentication (401) and account authorization (403/404).

use crate::helpers::{assert_error, spawn_app, tree};
use reqwest::Method;
use serde_json::{Value, json};

async fn status_of(app: &crate::helpers::TestApp, path: &str, token: Option<&str>) -> (u16, Value) {
    crate::helpers::send(app.request(Method::GET, path, token)).await
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let path = format!("/v2/accounts/{}/port_requests", t.customer.id);
    let other_key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let sys = app.sys;
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("malformed", Some("not.a.jwt".into())),
        ("garbage", Some("abc".into())),
        ("expired", Some(sys.token_with(&t.customer, true, -10, &sys.key, None))),
        ("wrong key", Some(sys.token_with(&t.customer, true, 3600, &other_key, None))),
        ("wrong identity_sig", Some(sys.token_with(&t.customer, true, 3600, &sys.key, Some("AAAA")))),
        ("empty identity_sig", Some(sys.token_with(&t.customer, true, 3600, &sys.key, Some("")))),
    ];
    for (what, token) in cases {
        let (status, body) = status_of(&app, &path, token.as_deref()).await;
        let data = assert_error(status, &body, 401, "invalid_credentials");
        assert_eq!(data, json!({"message": "invalid credentials"}), "{what}");
        assert_eq!(body["auth_token"], token.as_deref().unwrap_or("undefined"), "{what}");
    }
}

#[tokio::test]
async fn good_tokens_in_every_place() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let path = format!("/v2/accounts/{}/port_requests", t.customer.id);
    let user_token = app.sys.token(&t.customer, true);
    let account_token = app.sys.token(&t.customer, false);
    assert_eq!(status_of(&app, &path, Some(&user_token)).await.0, 200);
    assert_eq!(status_of(&app, &path, Some(&account_token)).await.0, 200);
    let bearer = app.http.get(app.url(&path)).bearer_auth(&user_token).send().await.unwrap();
    assert_eq!(bearer.status(), 200);
    let query = app.http.get(app.url(&format!("{path}?auth_token={user_token}"))).send().await.unwrap();
    assert_eq!(query.status(), 200);
    // X-Auth-Account-ID must match the token's account
    let mismatch = app
        .request(Method::GET, &path, Some(&user_token))
        .header("X-Auth-Account-ID", &t.reseller.id)
        .send()
        .await
        .unwrap();
    assert_eq!(mismatch.status(), 401);
}

#[tokio::test]
async fn accounts_outside_the_tree_are_403() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let sibling = app.sys.account(Some(&t.reseller), "Sibling", json!({})).await;
    let unrelated = app.sys.account(None, "Unrelated", json!({})).await;
    let path = |a: &str| format!("/v2/accounts/{a}/port_requests");

    for caller in [&sibling, &unrelated] {
        let (status, body) = status_of(&app, &path(&t.customer.id), Some(&app.token(caller))).await;
        assert_eq!(assert_error(status, &body, 403, "forbidden"), json!({"message": "forbidden"}));
    }
    // a descendant may not look up, an ancestor and a superduper admin may look down
    let (status, _) = status_of(&app, &path(&t.reseller.id), Some(&app.token(&t.customer))).await;
    assert_eq!(status, 403);
    assert_eq!(status_of(&app, &path(&t.customer.id), Some(&app.token(&t.reseller))).await.0, 200);
    assert_eq!(status_of(&app, &path(&t.customer.id), Some(&app.master_token())).await.0, 200);
}

#[tokio::test]
async fn unknown_or_malformed_accounts_are_404_after_authentication() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let token = app.token(&t.customer);
    let unknown = crate::kazoo::hex32();
    let (status, body) = status_of(&app, &format!("/v2/accounts/{unknown}/port_requests"), Some(&token)).await;
    let data = assert_error(status, &body, 404, "bad_identifier");
    assert_eq!(data, json!({"cause": unknown, "message": "bad identifier"}));

    let (status, body) = status_of(&app, "/v2/accounts/xyz/port_requests", Some(&token)).await;
    let data = assert_error(status, &body, 404, "bad identifier");
    assert_eq!(data, json!({"message": "invalid account_id 'xyz'"}));

    // without a token nothing is revealed
    let (status, _) = status_of(&app, &format!("/v2/accounts/{unknown}/port_requests"), None).await;
    assert_eq!(status, 401);
}
