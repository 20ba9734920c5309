//! Sending: the records this instance holds (made by the follower, or taken over once they are
//! due) are delivered a few at a time, and every attempt is recorded on the record.

use super::channels;
use crate::domain::deliveries::{self, DeliveryDoc, Retries};
use crate::domain::time::now_unix;
use crate::state::AppState;
use crate::store::{StoreError, ViewQuery, dbs, views};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How many deliveries one instance makes at a time.
const CONCURRENCY: usize = 32;
/// How many due records one look takes.
const BATCH: u64 = 50;

/// Delivers the records this instance holds, a few at a time. Whoever hands a record over
/// waits for a free slot first, so no held record waits in a queue while its lease runs out.
#[derive(Clone)]
pub struct Sender {
    state: Arc<AppState>,
    permits: Arc<Semaphore>,
    /// Rung when records were made that nobody holds (no slot was free): the look for due
    /// records goes at once instead of at its next round.
    due: Arc<Notify>,
}

pub fn spawn(state: Arc<AppState>) -> Sender {
    let sender = Sender { state, permits: Arc::new(Semaphore::new(CONCURRENCY)), due: Arc::new(Notify::new()) };
    tokio::spawn(due(sender.clone()));
    sender
}

impl Sender {
    /// Waits for a free slot (before taking a lease).
    pub async fn slot(&self) -> OwnedSemaphorePermit {
        self.permits.clone().acquire_owned().await.expect("the semaphore is never closed")
    }

    /// Records are due that nobody holds: look for them now.
    pub fn due_now(&self) {
        self.due.notify_one();
    }

    /// As many free slots as there are, up to `n`, without waiting.
    pub fn free_slots(&self, n: usize) -> Vec<OwnedSemaphorePermit> {
        (0..n).map_while(|_| self.permits.clone().try_acquire_owned().ok()).collect()
    }

    /// Delivers a record held now, in the slot taken for it.
    pub fn send(&self, record: DeliveryDoc, slot: OwnedSemaphorePermit) {
        let state = self.state.clone();
        tokio::spawn(async move {
            send(&state, record).await;
            drop(slot);
        });
    }
}

pub(super) fn retries(state: &AppState) -> Retries {
    let cfg = &state.settings.jobs.delivery;
    Retries { base: cfg.retry_base, max: cfg.retry_max, give_up_after: cfg.give_up_after }
}

/// One attempt at a record this instance holds, and its outcome on the record.
async fn send(state: &Arc<AppState>, mut record: DeliveryDoc) {
    // a lease that ran out may be someone else's by now
    if record.next_attempt_at.get().is_some_and(|until| *until <= now_unix()) {
        return;
    }
    let outcome = channels::deliver(state, &record).await;
    crate::metrics::get().deliveries.with_label_values(&[record.channel.as_str(), outcome.result()]).inc();
    match &outcome {
        deliveries::Outcome::Failed(error) => {
            tracing::info!(record = %record.id, %error, "notification not delivered yet")
        }
        deliveries::Outcome::Wait(why) => {
            tracing::debug!(record = %record.id, %why, "delivery waits for an earlier one")
        }
        _ => {}
    }
    deliveries::record_outcome(&mut record, outcome, &retries(state));
    match state.couch.save_doc(dbs::SERVICE, &mut record).await {
        Ok(_) => {}
        // our lease ran out and someone took the record over: theirs is the next attempt
        Err(StoreError::Conflict) => {
            tracing::warn!(record = %record.id, "a delivery record changed hands mid-delivery")
        }
        // the lease will run out and the record will be tried again (at least once)
        Err(e) => tracing::warn!(error = %e, "cannot record a delivery attempt"),
    }
}

/// Takes over due records: retries after a backoff, and records whose holder's lease ran out.
/// The view only finds candidates (it may lag); the lease is a revision-checked write.
async fn due(sender: Sender) {
    let state = sender.state.clone();
    let cfg = &state.settings.jobs.delivery;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.poll) => {}
            _ = sender.due.notified() => {}
        }
        let queue = cfg.queue.as_str();
        let now = now_unix();
        let query =
            ViewQuery { limit: Some(BATCH), ..ViewQuery::range(json!([queue, 0]), json!([queue, now])).with_docs() };
        let rows = match state.couch.view(dbs::SERVICE, views::SERVICE_DDOC, "due", &query).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for due deliveries");
                continue;
            }
        };
        for mut record in
            rows.into_iter().filter_map(|r| r.doc).filter_map(|d| serde_json::from_value::<DeliveryDoc>(d).ok())
        {
            if !deliveries::is_due(&record, now) {
                continue;
            }
            let slot = sender.slot().await;
            deliveries::take_lease(&mut record, cfg.lease.as_secs());
            match state.couch.save_doc(dbs::SERVICE, &mut record).await {
                Ok(_) => sender.send(record, slot),
                Err(StoreError::Conflict) => {} // someone else has it
                Err(e) => tracing::warn!(error = %e, "cannot take a delivery record"),
            }
        }
    }
}
