//! A database's continuous `_changes` feed, read line by line. Sequences are opaque: they are
//! only ever handed back to CouchDB as `since`, never parsed or compared. After a node restart a
//! feed may replay changes already seen, so what reads it must be idempotent.

use super::{Couch, Resend, StoreError, StoreResult, encode, success};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How often CouchDB writes a blank line into a quiet feed, and how long without any byte
/// means the connection is gone.
const HEARTBEAT_MS: &str = "10000";
const SILENCE: Duration = Duration::from_secs(35);

/// A sequence as CouchDB handed it out (a string on CouchDB, a number on PouchDB Server).
pub fn seq_param(seq: &Value) -> String {
    match seq {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One open feed.
pub struct Changes {
    stream: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    pending: Vec<u8>,
    /// The sequence of the last line read: where to take the feed up again.
    pub since: Value,
}

impl Couch {
    /// The database's current update sequence: a feed from there brings only what comes next.
    pub async fn update_seq(&self, db: &str) -> StoreResult<Value> {
        let resp = success(self.get_path(&format!("/{}", encode(db)), &[]).await?, || format!("reading {db}")).await?;
        let info: Value = resp.json().await?;
        info.get("update_seq").cloned().ok_or_else(|| StoreError::Fault(format!("{db} has no update_seq")))
    }

    /// Opens `db`'s continuous feed from `since`, with the documents (and their `_conflicts`).
    pub async fn changes(&self, db: &str, since: &Value) -> StoreResult<Changes> {
        let path = format!("/{}/_changes", encode(db));
        let since_param = seq_param(since);
        let resp = self
            .send(Resend::Read, |c| {
                c.req(Method::GET, &path, None)
                    .query(&[("feed", "continuous"), ("include_docs", "true"), ("conflicts", "true")])
                    .query(&[("heartbeat", HEARTBEAT_MS)])
                    .query(&[("since", since_param.as_str())])
                    // a compressed stream is held back until enough of it piles up (PouchDB
                    // Server gzips whatever the client accepts)
                    .header(reqwest::header::ACCEPT_ENCODING, "identity")
                    // the client's own timeout would cut the stream; silence is watched instead
                    .timeout(Duration::from_secs(24 * 3600))
            })
            .await?;
        let resp = success(resp, || format!("following {db}")).await?;
        Ok(Changes { stream: resp.bytes_stream().boxed(), pending: Vec::new(), since: since.clone() })
    }
}

impl Changes {
    /// The next change, or `None` when the feed ended, broke or went silent past its heartbeats.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                // a blank line is a heartbeat; the last line of a feed carries `last_seq`
                let Ok(change) = serde_json::from_slice::<Value>(&line) else { continue };
                if let Some(seq) = change.get("seq").or_else(|| change.get("last_seq")) {
                    self.since = seq.clone();
                }
                if change.get("id").is_some() {
                    return Some(change);
                }
                continue;
            }
            match tokio::time::timeout(SILENCE, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.pending.extend_from_slice(&chunk),
                _ => return None,
            }
        }
    }

    /// The changes that arrive within `window` of the first one (at most `max`), or `None`
    /// when the feed is over.
    pub async fn next_batch(&mut self, max: usize, window: Duration) -> Option<Vec<Value>> {
        let first = self.next().await?;
        let until = Instant::now() + window;
        let mut batch = vec![first];
        while batch.len() < max {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.next()).await {
                Ok(Some(change)) => batch.push(change),
                // the feed ended: hand over what came, the next call says it is over
                Ok(None) | Err(_) => break,
            }
        }
        Some(batch)
    }
}
