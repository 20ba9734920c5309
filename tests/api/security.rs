//! The authorization matrix: every endpoint × every kind of caller, and what they may see.

use crate::helpers::{Ports, send, spawn_app};
use crate::kazoo::{Account, now_gregorian, random_number};
use reqwest::Method;
use serde_json::{Value, json};

struct Endpoint {
    method: Method,
    path: String,
    content_type: &'static str,
    body: Option<Vec<u8>>,
    /// Only the port authority and superduper admins pass (others: 403 even when allowed on
    /// the account).
    authority_only: bool,
    /// `/v2/port_requests`: port authorities and superduper admins.
    agent: bool,
}

fn ep(method: Method, path: String, body: Option<Value>) -> Endpoint {
    Endpoint {
        method,
        path,
        content_type: "application/json",
        body: body.map(|b| b.to_string().into_bytes()),
        authority_only: false,
        agent: false,
    }
}

type Rights = Option<(bool, bool)>;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Outcome {
    Unauthenticated,
    Forbidden,
    Allowed,
}

#[tokio::test]
async fn every_endpoint_for_every_kind_of_caller() {
    let app = spawn_app().await;
    let sys = app.sys;
    // master > top > reseller (port authority) > customer > child; sibling under reseller
    let top = sys.account(None, "Top", json!({})).await;
    let reseller = sys.account(Some(&top), "Reseller", json!({})).await;
    sys.whitelabel(&reseller, &reseller.id, Some("auth@example.com")).await;
    let customer = sys.account(Some(&reseller), "Customer Secret Co", json!({})).await;
    let child = sys.account(Some(&customer), "Child", json!({})).await;
    let sibling = sys.account(Some(&reseller), "Sibling", json!({})).await;
    let unrelated = sys.account(None, "Unrelated", json!({})).await;

    let ports = Ports::new(&app, &customer);
    let number = random_number();
    let id = ports.create(&app.token(&customer), &[&number]).await["id"].as_str().unwrap().to_owned();
    let authority = app.token(&reseller);
    app.call(Method::PUT, &ports.path(&format!("/{id}/comments")), &authority,
             Some(json!({"comments": [{"author": "a", "content": "TOP-SECRET-NOTE", "timestamp": now_gregorian(), "is_private": true}]})))
        .await;
    app.request(Method::PUT, &ports.path(&format!("/{id}/attachments?filename=bill.pdf")), Some(&authority))
        .header("content-type", "application/pdf")
        .body(b"%PDF-1.4 bill".to_vec())
        .send()
        .await
        .unwrap();
    // submitted: DELETE (405), POST (400) and bad bodies make every write refuse after the checks
    ports.walk(&app.token(&customer), &id, &["submitted"]).await;

    let a = &customer.id;
    let one = format!("/v2/accounts/{a}/port_requests/{id}");
    let mut endpoints = vec![
        ep(Method::GET, format!("/v2/accounts/{a}/port_requests"), None),
        ep(Method::PUT, format!("/v2/accounts/{a}/port_requests"), Some(json!({"data": {}}))),
        ep(Method::GET, format!("/v2/accounts/{a}/descendants/port_requests"), None),
        ep(Method::GET, one.clone(), None),
        ep(Method::POST, one.clone(), Some(json!({"data": {}}))),
        ep(Method::PATCH, one.clone(), Some(json!({"data": {"numbers": "none"}}))),
        ep(Method::DELETE, one.clone(), None),
        ep(Method::PATCH, format!("{one}/pending"), Some(json!({"data": {"numbers": "none"}}))),
        ep(Method::GET, format!("{one}/timeline"), None),
        ep(Method::GET, format!("{one}/comments"), None),
        ep(Method::PUT, format!("{one}/comments"), Some(json!({"data": {"comments": [{}]}}))),
        ep(Method::GET, format!("{one}/attachments"), None),
        Endpoint {
            content_type: "application/json",
            ..ep(Method::PUT, format!("{one}/attachments?filename=x"), Some(json!({})))
        },
        ep(Method::GET, format!("{one}/attachments/bill.pdf"), None),
        ep(Method::GET, format!("{one}/loa"), None),
        ep(Method::POST, format!("/v2/Properties/{a}/Porting"), Some(json!({}))),
        ep(Method::GET, format!("/v2/Properties/{a}/Porting/Status"), None),
        ep(Method::GET, format!("/v2/Accounts/{a}/Porting/Status"), None),
    ];
    endpoints.push(Endpoint { authority_only: true, ..ep(Method::GET, format!("{one}/notifications"), None) });
    endpoints.push(Endpoint { agent: true, ..ep(Method::GET, "/v2/port_requests".into(), None) });

    let other_key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let tok = |acc: &Account| Some(app.token(acc));
    // (name, token, rights: None when unauthenticated, else (allowed on the account, authority))
    let callers: Vec<(&str, Option<String>, Rights)> = vec![
        ("no token", None, None),
        ("expired", Some(sys.token_with(&customer, true, -60, &sys.key, None)), None),
        ("bad signature", Some(sys.token_with(&customer, true, 3600, &other_key, None)), None),
        ("bad identity_sig", Some(sys.token_with(&customer, true, 3600, &sys.key, Some("x"))), None),
        ("unrelated", tok(&unrelated), Some((false, false))),
        ("sibling", tok(&sibling), Some((false, false))),
        ("descendant", tok(&child), Some((false, false))),
        ("the account", tok(&customer), Some((true, false))),
        ("ancestor", tok(&top), Some((true, false))),
        ("port authority", tok(&reseller), Some((true, true))),
        ("superduper", Some(app.master_token()), Some((true, true))),
    ];
    for (who, token, rights) in &callers {
        for e in &endpoints {
            let expected = match rights {
                None => Outcome::Unauthenticated,
                Some((_, true)) => Outcome::Allowed,
                Some((_, false)) if e.agent || e.authority_only => Outcome::Forbidden,
                Some((account, false)) => {
                    if *account {
                        Outcome::Allowed
                    } else {
                        Outcome::Forbidden
                    }
                }
            };
            let mut req =
                app.request(e.method.clone(), &e.path, token.as_deref()).header("content-type", e.content_type);
            if let Some(b) = &e.body {
                req = req.body(b.clone());
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap();
            let text = String::from_utf8_lossy(&bytes);
            let got = match status {
                401 => Outcome::Unauthenticated,
                403 => Outcome::Forbidden,
                _ => Outcome::Allowed,
            };
            assert_eq!(got, expected, "{who}: {} {} -> {status} {text}", e.method, e.path);
            assert!(status < 500, "{who}: {} {} -> {status}", e.method, e.path);
            if got != Outcome::Allowed {
                // an error says nothing of the account or the request
                for secret in [customer.name.as_str(), number.as_str(), "TOP-SECRET-NOTE", "bill.pdf"] {
                    assert!(!text.contains(secret), "{who}: {} {} reveals {secret}: {text}", e.method, e.path);
                }
                let body: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(body["status"], "error");
            }
            let sees_private = matches!(rights, Some((_, true)));
            if got == Outcome::Allowed && !sees_private {
                assert!(!text.contains("TOP-SECRET-NOTE"), "{who} sees a private comment on {} {}", e.method, e.path);
            }
        }
    }
    // the authority and superduper admins do see it
    for token in [&authority, &app.master_token()] {
        let (_, body) = send(app.request(Method::GET, &one, Some(token))).await;
        assert!(body.to_string().contains("TOP-SECRET-NOTE"));
    }
}
