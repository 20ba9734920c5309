//! Claim adoption: the number claims of open requests this service did not write (Kazoo, an
//! older version). On the first start against a database every open request's numbers are
//! claimed (a marker notes it was done; `bootstrap` does it too); after that the follower hands
//! over each changed request that lacks claims (`CLAIM_ADOPTION`). A number another request
//! claimed stays with that one.

use crate::app::claims;
use crate::domain::documents::port_request::PortRequest;
use crate::domain::documents::service::MarkerDoc;
use crate::domain::time::now_gregorian;
use crate::state::AppState;
use crate::store::{Couch, StoreError, StoreResult, dbs, views};
use std::collections::HashSet;
use std::sync::Arc;

const ADOPTED: &str = "claims_adopted";

/// Makes the claims `doc` lacks (those not `there`).
pub async fn adopt(state: &AppState, doc: &PortRequest, there: &HashSet<String>) -> StoreResult<()> {
    let lacking = doc.held_numbers().iter().any(|n| !there.contains(&crate::domain::claims::claim_id(n)));
    if !lacking {
        return Ok(());
    }
    let made = claims::adopt(&state.couch, doc).await?;
    if made > 0 {
        tracing::info!(port_request = %doc.id, claims = made, "claimed the numbers of a request written elsewhere");
    }
    Ok(())
}

/// Makes the number claims of every open request that lacks them, and notes that it was done.
/// Returns how many claims were made.
pub async fn adopt_all(couch: &Couch) -> Result<usize, StoreError> {
    views::ensure_service_db(couch).await?;
    let made = claims::adopt_all(couch).await?;
    let mut mark = MarkerDoc::new(ADOPTED, now_gregorian());
    if let Some(existing) = couch.get_doc::<MarkerDoc>(dbs::SERVICE, ADOPTED).await? {
        mark.rev = existing.rev;
    }
    match couch.save_doc(dbs::SERVICE, &mut mark).await {
        Ok(_) | Err(StoreError::Conflict) => Ok(made),
        Err(e) => Err(e),
    }
}

/// On the first start against a database, adopts the claims in the background.
pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        match state.couch.get_doc::<MarkerDoc>(dbs::SERVICE, ADOPTED).await {
            Ok(Some(_)) => {}
            Ok(None) => match adopt_all(&state.couch).await {
                Ok(made) => tracing::info!(claims = made, "claimed the numbers of the open port requests"),
                Err(e) => tracing::warn!(error = %e, "cannot claim the numbers of the open port requests"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot tell whether the open numbers are claimed"),
        }
    });
}
