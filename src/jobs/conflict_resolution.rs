//! Conflict resolution: a port request CouchDB holds in conflicting revisions (see
//! `domain::conflicts`) is resolved the same way by every instance that sees it: the merged
//! winner is saved on the winning revision, then the losing revisions are removed. Fed by the
//! follower (`CONFLICT_RESOLUTION`).

use crate::domain::conflicts::merge;
use crate::state::AppState;
use crate::store::StoreResult;

pub async fn resolve(state: &AppState, id: &str) -> StoreResult<()> {
    let losing = state.port_requests.resolve_conflict(id, merge).await?;
    if losing > 0 {
        tracing::warn!(port_request = id, losing, "resolved conflicting revisions");
    }
    Ok(())
}
