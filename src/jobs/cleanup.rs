//! Clean-ups: the records of `Idempotency-Key`s past their 24 hours are removed every hour (on
//! every instance that runs it: removals that meet each other are harmless conflicts). A key past
//! its time starts afresh anyway; this only keeps the service's database from growing.

use crate::state::AppState;
use crate::store::{Couch, StoreError, ViewQuery, dbs, views};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the records of keys past their 24 hours are removed.
const EVERY: Duration = Duration::from_secs(3600);

pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        loop {
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
            match forget_expired_keys(&state.couch, now_ms).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed the records of expired Idempotency-Keys"),
                Err(e) => tracing::warn!(error = %e, "cannot remove the records of expired Idempotency-Keys"),
            }
            tokio::time::sleep(EVERY).await;
        }
    });
}

/// Removes up to 1,000 records of keys that expired before `now_ms`; returns how many went.
pub async fn forget_expired_keys(couch: &Couch, now_ms: u64) -> Result<usize, StoreError> {
    let query = ViewQuery { limit: Some(1000), ..ViewQuery::range(json!(0), json!(now_ms)) };
    let rows = couch.view(dbs::SERVICE, views::SERVICE_DDOC, "expired_idempotency_keys", &query).await?;
    let gone: Vec<Value> = rows
        .iter()
        .filter_map(|r| Some(json!({ "_id": r.id.as_deref()?, "_rev": r.value.as_str()?, "_deleted": true })))
        .collect();
    let results = couch.bulk_save(dbs::SERVICE, &gone).await?;
    Ok(results.iter().filter(|r| r.is_ok()).count())
}
