//! Resolving a conflicted port request (see `domain::conflicts`): the merged winner is saved
//! on the winning revision, then the losing revisions are removed.

use crate::couch::{StoreError, StoreResult, choose, dbs};
use crate::state::AppState;
use serde_json::Value;

pub async fn resolve(state: &AppState, id: &str) -> StoreResult<()> {
    let leaves = state.couch.leaves(dbs::PORT_REQUESTS, id).await?;
    let Some((winner, losers)) = choose(&leaves) else { return Ok(()) };
    if losers.is_empty() {
        return Ok(());
    }
    let loser_docs: Vec<Value> =
        leaves.iter().filter(|l| l["_rev"].as_str().is_some_and(|r| losers.iter().any(|x| x == r))).cloned().collect();
    if let Some(mut merged) = crate::domain::conflicts::merge(winner, &loser_docs) {
        match state.couch.save(dbs::PORT_REQUESTS, &mut merged).await {
            Ok(_) => {}
            // changed meanwhile: whoever changed it goes on from there
            Err(StoreError::Conflict) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    state.couch.remove_leaves(dbs::PORT_REQUESTS, id, &losers).await;
    tracing::warn!(port_request = id, losing = losers.len(), "resolved conflicting revisions");
    Ok(())
}
