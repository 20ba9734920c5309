//! How current a listing's view read is.
//!
//! Listings ask for their view brought up to date (CouchDB's default). A view far behind (right
//! after a bulk load of thousands of requests) can take minutes to catch up, and a listing that
//! waited for it would time out. So a design document's views count as *catching up*
//! - while CouchDB's indexer reports a large backlog for it (`/_active_tasks`, looked at once a
//!   second), and
//! - after an up-to-date read of one of its views took longer than the listing may wait
//!   (`LISTING_WAIT_MS`): that listing then also asks for the view as it stands and answers with
//!   whichever comes first, and a probe looks once a second until an up-to-date read answers in
//!   time again.
//!
//! While they catch up, listings read the views as they stand (`update=lazy`) at once. Nothing
//! but listings reads views this way: no decision of the service rests on a view.

use super::{Couch, Freshness, StoreResult, ViewQuery, ViewRow};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A backlog this large (changes the indexer has still to read) counts as catching up.
const LARGE_BACKLOG: u64 = 1000;
/// How often the indexer's backlog and a probe are looked at.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Design documents (`db/ddoc`) catching up, each until when (or until a probe clears it).
#[derive(Default)]
pub struct Behind(Mutex<HashMap<String, Instant>>);

impl Behind {
    fn is_behind(&self, key: &str) -> bool {
        self.0.lock().is_ok_and(|b| b.get(key).is_some_and(|until| *until > Instant::now()))
    }

    /// Marks `key` as catching up until `until`; true when it was not marked yet.
    fn mark(&self, key: &str, until: Instant) -> bool {
        let Ok(mut b) = self.0.lock() else { return false };
        let fresh = b.get(key).is_none_or(|old| *old <= Instant::now());
        let longest = b.get(key).map_or(until, |old| (*old).max(until));
        b.insert(key.to_owned(), longest);
        fresh
    }

    fn clear(&self, key: &str) {
        if let Ok(mut b) = self.0.lock() {
            b.remove(key);
        }
    }
}

/// The design documents that `/_active_tasks` reports indexing with a large backlog, as
/// `db/ddoc` (a shard's database is `shards/<range>/<db>.<suffix>`).
pub fn large_backlogs(tasks: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for task in tasks.as_array().into_iter().flatten() {
        if task["type"] != "indexer" {
            continue;
        }
        let pending =
            task["total_changes"].as_u64().unwrap_or(0).saturating_sub(task["changes_done"].as_u64().unwrap_or(0));
        let db = task["database"].as_str().map(|d| match d.strip_prefix("shards/") {
            Some(rest) => {
                let name = rest.split_once('/').map_or(rest, |(_, n)| n);
                name.rsplit_once('.').map_or(name, |(n, _)| n)
            }
            None => d,
        });
        let ddoc = task["design_document"].as_str().map(|d| d.trim_start_matches("_design/"));
        if let (Some(db), Some(ddoc)) = (db, ddoc)
            && pending >= LARGE_BACKLOG
        {
            let key = format!("{db}/{ddoc}");
            if !out.contains(&key) {
                out.push(key);
            }
        }
    }
    out
}

impl Couch {
    /// Reads the rows of a design-doc view, as current as the module comment says.
    pub async fn view(&self, db: &str, ddoc: &str, view: &str, query: &ViewQuery) -> StoreResult<Vec<ViewRow>> {
        let (Freshness::Current, Some(wait)) = (query.freshness, query.wait) else {
            return self.view_once(db, ddoc, view, query).await;
        };
        let as_indexed = ViewQuery { freshness: Freshness::AsIndexed, ..query.clone() };
        let key = format!("{db}/{ddoc}");
        if self.behind.is_behind(&key) {
            crate::metrics::get().couch_errors.with_label_values(&["view_behind"]).inc();
            return self.view_once(db, ddoc, view, &as_indexed).await;
        }
        let current = self.view_once(db, ddoc, view, query);
        tokio::pin!(current);
        if let Ok(rows) = tokio::time::timeout(wait, &mut current).await {
            return rows;
        }
        crate::metrics::get().couch_errors.with_label_values(&["view_behind"]).inc();
        self.probe_until_current(&key, view, wait);
        let lazy = self.view_once(db, ddoc, view, &as_indexed);
        tokio::pin!(lazy);
        tokio::select! {
            rows = &mut current => rows,
            rows = &mut lazy => {
                tracing::info!(ddoc, view, "the index is catching up: answered from it as it stands");
                rows
            }
        }
    }

    /// Marks `key` (`db/ddoc`) as catching up until an up-to-date read of `view` (no rows)
    /// answers within `wait`, looked at once a second.
    fn probe_until_current(&self, key: &str, view: &str, wait: Duration) {
        const FOR_GOOD: Duration = Duration::from_secs(100 * 365 * 86_400);
        if !self.behind.mark(key, Instant::now() + FOR_GOOD) {
            return;
        }
        let (couch, key, view) = (self.clone(), key.to_owned(), view.to_owned());
        tokio::spawn(async move {
            let (db, ddoc) = key.split_once('/').unwrap_or_default();
            let probe = ViewQuery { limit: Some(0), ..ViewQuery::default() };
            loop {
                tokio::time::sleep(LOOK_EVERY).await;
                if matches!(tokio::time::timeout(wait, couch.view_once(db, ddoc, &view, &probe)).await, Ok(Ok(_))) {
                    break;
                }
            }
            tracing::info!(ddoc, view, "the index has caught up: listings are current again");
            couch.behind.clear(&key);
        });
    }

    /// Looks at CouchDB's indexer once a second and marks the design documents it reports far
    /// behind. Stops where `/_active_tasks` is not open to the service (it needs a server admin)
    /// or does not exist (PouchDB Server).
    pub fn spawn_indexer_watch(&self) {
        let couch = self.clone();
        tokio::spawn(async move {
            loop {
                match couch.get_path("/_active_tasks", &[]).await {
                    Ok(resp) if resp.status().is_success() => {
                        if let Ok(tasks) = resp.json::<Value>().await {
                            for key in large_backlogs(&tasks) {
                                if couch.behind.mark(&key, Instant::now() + 2 * LOOK_EVERY) {
                                    tracing::info!(
                                        ddoc = key,
                                        "CouchDB is indexing a large backlog: listings read the views as they stand"
                                    );
                                }
                            }
                        }
                    }
                    Ok(resp) if resp.status().is_client_error() => {
                        tracing::info!(
                            status = resp.status().as_u16(),
                            "CouchDB's active tasks cannot be read: views are not watched"
                        );
                        return;
                    }
                    _ => {}
                }
                tokio::time::sleep(LOOK_EVERY).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn large_indexer_backlogs_name_their_design_documents() {
        let tasks = json!([
            {"type": "indexer", "database": "shards/00000000-7fffffff/port_requests.1733350000",
             "design_document": "_design/kazoo_port_requests", "changes_done": 10, "total_changes": 50_000},
            {"type": "indexer", "database": "shards/80000000-ffffffff/port_requests.1733350000",
             "design_document": "_design/kazoo_port_requests", "changes_done": 0, "total_changes": 49_000},
            {"type": "indexer", "database": "shards/00000000-7fffffff/port_requests.1733350000",
             "design_document": "_design/port_requests", "changes_done": 990, "total_changes": 1000},
            {"type": "replication", "database": "shards/00000000-7fffffff/x.1"},
            {"type": "indexer", "database": "plain", "design_document": "_design/d", "changes_done": 0, "total_changes": 5000}
        ]);
        assert_eq!(large_backlogs(&tasks), ["port_requests/kazoo_port_requests", "plain/d"]);
        assert!(large_backlogs(&json!({"error": "unauthorized"})).is_empty());
    }

    #[test]
    fn a_mark_lasts_until_its_time_or_a_clear() {
        let behind = Behind::default();
        assert!(!behind.is_behind("db/d"));
        assert!(behind.mark("db/d", Instant::now() + Duration::from_secs(60)));
        assert!(!behind.mark("db/d", Instant::now() + Duration::from_secs(1)), "already marked");
        assert!(behind.is_behind("db/d"));
        behind.clear("db/d");
        assert!(!behind.is_behind("db/d"));
        behind.mark("db/e", Instant::now() - Duration::from_millis(1));
        assert!(!behind.is_behind("db/e"), "past its time");
    }
}
