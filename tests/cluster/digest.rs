//! The port authority's daily digest with two instances on different nodes of the cluster,
//! both with the digest on and Kazoo's bus: one mail and one message per authority and day.

use crate::amqp::{amqp_url, listen};
use crate::helpers::{Ports, TestApp, default_settings, mails_to, start, support_email, tree, wait_mails};
use crate::kazoo::{self, account_db, hex32, random_number};
use kazoo_port_requests::configuration::BusSettings;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

async fn instance(couch_url: &str, queue: &str, authority: &str) -> TestApp {
    let sys = kazoo::system().await;
    let mut settings = default_settings(couch_url);
    settings.jobs.delivery.queue = queue.to_owned();
    settings.bus = BusSettings::parse(&amqp_url(), Duration::from_secs(30)).unwrap();
    settings.jobs.digest.on = true;
    settings.jobs.digest.only = vec![authority.to_owned()];
    let address = start(settings).await;
    TestApp { address, http: reqwest::Client::new(), sys }
}

#[tokio::test]
async fn one_digest_per_authority_and_day_with_two_instances() {
    let _cluster = crate::shared().await;
    let nodes = crate::node_urls();
    let listener = listen(&amqp_url(), &format!("kpr-cluster-{}", hex32()), false).await;
    let setup = crate::instance(&nodes[0], &hex32()).await;
    let t = tree(&setup).await;
    let config = json!({"_id": "configs_port_authority_desk", "digest": {"at": "00:00"},
        "attention_rules": {"not_picked_up": {"after": {"seconds": 1}}}});
    let r = setup.sys.couch.put(&account_db(&t.reseller.id), &config).await;
    assert_eq!(r["ok"], true, "{r}");
    let ports = Ports::new(&setup, &t.customer);
    let member = setup.token(&t.customer);
    for i in 0..3 {
        let data = json!({"name": format!("digest {i}"), "numbers": {random_number(): {}}});
        let (status, body) = setup.call(Method::PUT, &ports.path(""), &member, Some(data)).await;
        assert_eq!(status, 201, "{body}");
        ports.walk(&member, body["data"]["id"].as_str().unwrap(), &["submitted"]).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let queue = hex32();
    let (a, b) = (instance(&nodes[0], &queue, &t.reseller.id).await, instance(&nodes[1], &queue, &t.reseller.id).await);
    let support = support_email(&t.reseller);
    let is_digest = |m: &serde_json::Value| m["subject"].as_str().unwrap_or_default().contains("need your attention");
    let first = wait_mails(&std::env::var("MAILDEV_URL").unwrap(), &support, 1).await;
    assert!(first.iter().any(is_digest), "{first:?}");
    // several rounds of both instances later
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mails = mails_to(&std::env::var("MAILDEV_URL").unwrap(), &support).await;
    assert_eq!(mails.iter().filter(|m| is_digest(m)).count(), 1, "one mail");
    assert!(
        mails.iter().find(|m| is_digest(m)).unwrap()["text"].as_str().unwrap().contains("Needs your attention (3)")
    );
    let heard: Vec<_> = listener
        .heard
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.body["Event-Name"] == "port_authority_digest" && h.body["Account-ID"] == t.reseller.id.as_str())
        .cloned()
        .collect();
    assert_eq!(heard.len(), 1, "one message on the bus");
    assert_eq!(heard[0].body["Digest"]["attention"].as_array().unwrap().len(), 3);
    drop((a, b));
}
