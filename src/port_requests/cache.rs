//! A read-through cache of port request documents, kept current by CouchDB's `_changes`
//! feed. Reads of a cached request cost no CouchDB round trip; writes always go to CouchDB
//! with the revision they read, so a stale entry can only turn into a 409, never a lost update.
//! While the feed is not connected and caught up, the cache is bypassed.

use crate::couch::{Couch, dbs, encode};
use futures_util::StreamExt;
use moka::sync::Cache;
use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Clone)]
pub struct DocCache {
    docs: Cache<String, Arc<Value>>,
    live: Arc<AtomicBool>,
}

/// The generation of a revision (`3-abc` is 3).
fn generation(doc: &Value) -> u64 {
    doc.get("_rev").and_then(Value::as_str).and_then(|r| r.split('-').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

impl DocCache {
    pub fn new(capacity: u64) -> Self {
        Self { docs: Cache::builder().max_capacity(capacity).build(), live: Arc::new(AtomicBool::new(false)) }
    }

    /// A cached document, only while the feed keeps the cache current.
    pub fn get(&self, id: &str) -> Option<Arc<Value>> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        self.docs.get(id).filter(|doc| doc.get("_deleted") != Some(&Value::Bool(true)))
    }

    /// Keeps `doc` unless a newer revision is already cached (a read may race a change).
    pub fn offer(&self, doc: &Value) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        if let Some(id) = doc.get("_id").and_then(Value::as_str) {
            self.keep_newest(id, doc);
        }
    }

    /// Drops what is cached of `id` (after a write that did not return the document).
    pub fn forget(&self, id: &str) {
        self.docs.invalidate(id);
    }

    fn keep_newest(&self, id: &str, doc: &Value) {
        let newer_cached = self.docs.get(id).is_some_and(|c| generation(&c) > generation(doc));
        if !newer_cached {
            self.docs.insert(id.to_owned(), Arc::new(doc.clone()));
        }
    }

    fn apply_change(&self, change: &Value) {
        let Some(id) = change.get("id").and_then(Value::as_str) else { return };
        // a deletion stays as a tombstone with its revision, so a read that raced it cannot
        // put the older revision back
        let keep = |doc: &Value| {
            doc.get("_deleted") == Some(&Value::Bool(true)) || doc.get("pvt_type").is_some_and(|t| t == "port_request")
        };
        match change.get("doc") {
            Some(doc) if keep(doc) => self.keep_newest(id, doc),
            _ => self.docs.invalidate(id),
        }
    }

    fn stop(&self) {
        self.live.store(false, Ordering::Release);
        self.docs.invalidate_all();
    }

    /// Follows `port_requests/_changes` for as long as the process runs.
    pub fn spawn_follower(&self, couch: Couch) {
        let cache = self.clone();
        tokio::spawn(async move {
            loop {
                // start from now: the cache starts empty
                let Some(mut since) = current_seq(&couch).await else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                // every change from here on reaches the cache: it may answer
                cache.live.store(true, Ordering::Release);
                // a feed that ends is taken up again from the last change seen, which misses
                // nothing; only a feed that can't be taken up again stops the cache
                while cache.follow(&couch, &mut since).await {}
                tracing::warn!("lost the port_requests changes feed; reading CouchDB directly until it is back");
                cache.stop();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// Reads one continuous `_changes` feed from `since` into the cache, moving `since` along.
    /// True when the feed ended or broke after a while (take it up again), false when it
    /// could not be opened, ended at once, or went silent past its heartbeats.
    async fn follow(&self, couch: &Couch, since: &mut Value) -> bool {
        let since_param = match &*since {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let resp = couch
            .request(Method::GET, &format!("/{}/_changes", encode(dbs::PORT_REQUESTS)))
            .query(&[("feed", "continuous"), ("include_docs", "true"), ("heartbeat", HEARTBEAT_MS)])
            .query(&[("since", since_param.as_str())])
            // a compressed stream is held back until enough of it piles up (PouchDB Server
            // gzips whatever the client accepts, and couch_rs's client accepts gzip)
            .header(reqwest::header::ACCEPT_ENCODING, "identity")
            // the client's own timeout would cut the stream; silence is watched below instead
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await;
        let mut stream = match resp {
            Ok(r) if r.status().is_success() => r.bytes_stream(),
            _ => return false,
        };
        let opened = std::time::Instant::now();
        let mut line = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(SILENCE, stream.next()).await {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(None) | Ok(Some(Err(_))) => return opened.elapsed() > Duration::from_secs(1),
                Err(_) => return false,
            };
            for part in chunk.split_inclusive(|b| *b == b'\n') {
                line.extend_from_slice(part);
                if !line.ends_with(b"\n") {
                    continue;
                }
                // a blank line is a heartbeat; the last line of a feed carries `last_seq`
                if let Ok(change) = serde_json::from_slice::<Value>(&line) {
                    if let Some(seq) = change.get("seq").or_else(|| change.get("last_seq")) {
                        *since = seq.clone();
                    }
                    if change.get("id").is_some() {
                        self.apply_change(&change);
                    }
                }
                line.clear();
            }
        }
    }
}

/// How often CouchDB writes a blank line into a quiet feed, and how long without any byte
/// means the connection is gone.
const HEARTBEAT_MS: &str = "10000";
const SILENCE: Duration = Duration::from_secs(35);

async fn current_seq(couch: &Couch) -> Option<Value> {
    match couch.request(Method::GET, &format!("/{}", encode(dbs::PORT_REQUESTS))).send().await {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.ok().and_then(|v| v.get("update_seq").cloned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn newer_revisions_win() {
        let c = DocCache::new(10);
        c.live.store(true, Ordering::Release);
        c.offer(&json!({"_id": "a", "_rev": "2-x", "v": 2}));
        c.offer(&json!({"_id": "a", "_rev": "1-x", "v": 1}));
        assert_eq!(c.get("a").unwrap()["v"], 2);
        c.apply_change(&json!({"id": "a", "doc": {"_id": "a", "_rev": "3-x", "pvt_type": "port_request", "v": 3}}));
        assert_eq!(c.get("a").unwrap()["v"], 3);
        c.apply_change(&json!({"id": "a", "deleted": true, "doc": {"_id": "a", "_rev": "4-x", "_deleted": true}}));
        assert!(c.get("a").is_none());
        c.offer(&json!({"_id": "a", "_rev": "3-x", "pvt_type": "port_request", "v": 3}));
        assert!(c.get("a").is_none(), "a read that raced the deletion does not bring it back");
    }

    #[test]
    fn nothing_is_served_without_the_feed() {
        let c = DocCache::new(10);
        c.offer(&json!({"_id": "a", "_rev": "1-x"}));
        assert!(c.get("a").is_none());
    }
}
