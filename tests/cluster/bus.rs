//! Kazoo's bus with two instances on different nodes of the cluster: a consumer bound as
//! teletype binds hears each port event once, whichever instance made the change and however
//! many raced for it.

use crate::amqp::{amqp_url, check_kapi, listen};
use crate::helpers::{Ports, TestApp, default_settings, start, tree};
use crate::kazoo::{self, hex32, now_gregorian, random_number};
use kazoo_port_requests::configuration::BusSettings;
use reqwest::Method;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ROUNDS: usize = 8;

async fn instance(couch_url: &str, queue: &str) -> TestApp {
    let sys = kazoo::system().await;
    let mut settings = default_settings(couch_url);
    settings.jobs.delivery.queue = queue.to_owned();
    settings.bus = BusSettings::parse(&amqp_url(), Duration::from_secs(30)).unwrap();
    let address = start(settings).await;
    TestApp { address, http: reqwest::Client::new(), sys }
}

#[tokio::test]
async fn each_event_is_heard_once_with_two_instances() {
    let _cluster = crate::shared().await;
    let listener = listen(&amqp_url(), &format!("kpr-cluster-{}", hex32()), false).await;
    let nodes = crate::node_urls();
    let queue = hex32();
    let (a, b) = (instance(&nodes[0], &queue).await, instance(&nodes[1], &queue).await);
    let t = tree(&a).await;
    let ports_a = Ports::new(&a, &t.customer);
    let ports_b = Ports::new(&b, &t.customer);
    let (member, authority) = (a.token(&t.customer), a.token(&t.reseller));
    let mut ids = Vec::new();
    for round in 0..ROUNDS {
        let data = json!({"name": format!("bus {round}"), "numbers": {random_number(): {}}});
        let (status, body) = a.call(Method::PUT, &ports_a.path(""), &member, Some(data)).await;
        assert_eq!(status, 201, "{body}");
        let id = body["data"]["id"].as_str().unwrap().to_owned();
        let (status, _) = ports_b.to(&member, &id, "submitted", None).await;
        assert_eq!(status, 200);
        let comment = json!({"comments": [{"author": "x", "content": "c", "timestamp": now_gregorian() + 5}]});
        let path = ports_a.path(&format!("/{id}/comments"));
        let (status, _) = a.call(Method::PUT, &path, &authority, Some(comment)).await;
        assert_eq!(status, 200);
        // both instances race for the move: one wins, one event
        let pending = ports_a.path(&format!("/{id}/pending"));
        let (ra, rb) = tokio::join!(
            a.call(Method::PATCH, &pending, &authority, None),
            b.call(Method::PATCH, &pending, &authority, None)
        );
        assert!(ra.0 == 200 || rb.0 == 200, "{ra:?} {rb:?}");
        ids.push(id);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut complete = true;
        for id in &ids {
            let heard = listener.about(id);
            let mut by_event: BTreeMap<String, usize> = BTreeMap::new();
            for h in &heard {
                *by_event.entry(h.body["Event-Name"].as_str().unwrap().to_owned()).or_default() += 1;
            }
            assert!(by_event.values().all(|n| *n == 1), "{id}: an event heard twice: {by_event:?}");
            complete &= by_event.len() == 3;
        }
        if complete {
            break;
        }
        assert!(Instant::now() < deadline, "not every event was heard");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in &ids {
        let heard = listener.about(id);
        let names: Vec<&str> = heard.iter().map(|h| h.body["Event-Name"].as_str().unwrap()).collect();
        assert_eq!(names, ["port_request", "port_comment", "port_pending"], "{id}: once each, in order");
        heard.iter().for_each(check_kapi);
    }
}
