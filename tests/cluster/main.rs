//! The guarantees on a real 3-node Apache CouchDB cluster (n = 3, q = 2) with two instances of
//! the service on different nodes: one winner per number and per move, nothing acknowledged
//! lost, no conflict left behind, each notification once, one change per Idempotency-Key, one
//! request per imported row key, each event once on Kazoo's bus, and a node lost under load.
//! scripts/test.sh starts the cluster and MailDev and sets `KPR_CLUSTER_URLS` (every node),
//! `KPR_CLUSTER_DIR` (where the cluster runs) and `COUCHDB_URL` (node 1).

#[allow(dead_code)]
#[path = "../api/amqp.rs"]
mod amqp;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../api/kazoo.rs"]
mod kazoo;

mod bus;
mod digest;
mod node_loss;
mod once;
mod races;

use helpers::{TestApp, default_settings, start};
use kazoo::{Couch, hex32};
use serde_json::Value;

/// The cluster the tests share: every test holds it shared, but the node loss test holds it
/// alone, since a node it stops is a node every other test's writes need.
static CLUSTER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Runs beside the other tests.
pub async fn shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    CLUSTER.read().await
}

/// Runs alone on the cluster.
pub async fn alone() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    CLUSTER.write().await
}

pub fn node_urls() -> Vec<String> {
    std::env::var("KPR_CLUSTER_URLS")
        .expect("KPR_CLUSTER_URLS is set: run the tests with scripts/test.sh")
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// An instance of the service on `couch_url` (one node, or several comma-separated), working
/// deliveries of `queue`.
pub async fn instance(couch_url: &str, queue: &str) -> TestApp {
    let sys = kazoo::system().await;
    let mut settings = default_settings(couch_url);
    settings.jobs.delivery.queue = queue.to_owned();
    let address = start(settings).await;
    TestApp { address, http: reqwest::Client::new(), sys }
}

/// Two instances sharing a delivery queue: A talks to node 1, B to node 2.
pub async fn pair() -> (TestApp, TestApp) {
    let nodes = node_urls();
    let queue = hex32();
    (instance(&nodes[0], &queue).await, instance(&nodes[1], &queue).await)
}

/// A document read with every copy's say, with its conflicts.
pub async fn settled(couch: &Couch, db: &str, id: &str) -> Value {
    let path = format!("/{}/{}?conflicts=true&r=3&revs=true", kazoo::enc(db), kazoo::enc(id));
    couch.get_raw(&path).await.json().await.unwrap()
}

/// Asserts that no document of `ids` in `db` carries a conflict.
pub async fn assert_no_conflicts(couch: &Couch, db: &str, ids: &[String]) {
    for id in ids {
        let doc = settled(couch, db, id).await;
        assert!(doc.get("_conflicts").is_none(), "{db}/{id} carries conflicts: {doc}");
    }
}

/// The revisions in a settled document's history.
pub fn history(doc: &Value) -> Vec<String> {
    let start = doc["_revisions"]["start"].as_u64().unwrap_or(0);
    doc["_revisions"]["ids"]
        .as_array()
        .map(|ids| {
            ids.iter().enumerate().map(|(i, id)| format!("{}-{}", start - i as u64, id.as_str().unwrap())).collect()
        })
        .unwrap_or_default()
}
