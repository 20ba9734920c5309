//! CouchDB going away while serving: 503 in the envelope, and recovery without a restart.

use crate::helpers::{OwnCouch, assert_error, default_settings, start};
use crate::kazoo::{Couch, System};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn couchdb_down_gives_503_and_the_service_recovers() {
    let mut couch = OwnCouch::start().await;
    let sys: &'static System = Box::leak(Box::new(System::install(Couch::new(&couch.url())).await));
    let account = sys.account(None, "Outage", json!({})).await;
    let token = sys.token(&account, true);
    let address = start(default_settings(&couch.url())).await;
    let http = reqwest::Client::new();
    let list = format!("{address}/v2/accounts/{}/port_requests", account.id);
    let get = |url: String| {
        let http = http.clone();
        let token = token.clone();
        async move {
            let r = http.get(url).header("X-Auth-Token", token).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(get(format!("{address}/healthz")).await.0, 200);
    assert_eq!(get(list.clone()).await.0, 200);

    couch.stop();
    let (status, body) = get(format!("{address}/healthz")).await;
    assert_eq!(assert_error(status, &body, 503, "datastore_unreachable"), json!({"message": "datastore timeout"}));
    let (status, body) = get(list.clone()).await;
    assert_error(status, &body, 503, "datastore_unreachable");

    couch.restart().await;
    let mut recovered = false;
    for _ in 0..50 {
        if get(list.clone()).await.0 == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "the service did not recover after CouchDB came back");
    assert_eq!(get(format!("{address}/healthz")).await.0, 200);
}
