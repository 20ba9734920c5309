//! Delivery: notifications that are never lost and sent once.
//!
//! A change records its events in the port request itself (`domain::events`), in the same
//! write. The follower of `port_requests/_changes` (`jobs::follower`) hands each changed request,
//! as CouchDB keeps it, to `make_records`, which makes one delivery record per event and
//! channel in the service's database, with an id derived from the event, so that workers racing
//! make the same record and exactly one of them holds it (the cluster-safe writes of
//! `store::couch::write` decide). The holder sends it (`sender`), retrying with backoff and
//! recording every attempt; a record whose holder died is taken over when its lease runs out.
//! A crash in the middle of a send can repeat that one send (at least once); nothing else is
//! ever sent twice.

mod bus;
mod channels;
pub mod digest;
mod mail;
mod order;
mod sender;

pub use sender::Sender;

use crate::app::error::AppError;
use crate::domain::deliveries::{self, DeliveryDoc};
use crate::domain::documents::port_request::PortRequest;
use crate::domain::events;
use crate::domain::time::now_gregorian;
use crate::state::AppState;
use crate::store::{StoreError, StoreResult, dbs};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;

/// Starts the sender (due records, and the records the follower hands over), and the
/// collection of teletype's answers when it mails.
pub fn spawn(state: &Arc<AppState>) -> Sender {
    bus::collect_answers(state.clone());
    sender::spawn(state.clone())
}

/// The delivery record ids a changed request needs for this instance's queue (events within
/// the give-up horizon).
pub fn wanted(state: &AppState, doc: &PortRequest) -> Vec<String> {
    let queue = state.settings.jobs.delivery.queue.as_str();
    let horizon = now_gregorian() - state.settings.jobs.delivery.give_up_after.as_secs() as i64;
    events::record_ids(doc, queue).into_iter().filter(|(_, e, _)| e.at >= horizon).map(|(id, _, _)| id).collect()
}

/// Makes the delivery records of `doc`'s events (this instance's queue) that are not `there`;
/// those made are held and sent at once where a sending slot is free, the rest are due for
/// anyone. Each id made (or found made by another worker) is told to `made` as soon as it is
/// known, even when another record of the same save failed: a record already being sent must
/// never be made again.
pub async fn make_records(
    state: &AppState,
    sender: &Sender,
    doc: &PortRequest,
    there: &HashSet<String>,
    mut made: impl FnMut(String),
) -> StoreResult<()> {
    let queue = state.settings.jobs.delivery.queue.as_str();
    let horizon = now_gregorian() - state.settings.jobs.delivery.give_up_after.as_secs() as i64;
    let lease = state.settings.jobs.delivery.lease.as_secs();
    let missing: Vec<_> = events::record_ids(doc, queue)
        .into_iter()
        .filter(|(record_id, e, _)| e.at >= horizon && !there.contains(record_id))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut slots = sender.free_slots(missing.len());
    let new: Vec<DeliveryDoc> = missing
        .iter()
        .enumerate()
        .map(|(i, (_, e, d))| deliveries::new(doc, queue, e, d, (i < slots.len()).then_some(lease)))
        .collect();
    let results = state.couch.bulk_save_docs(dbs::SERVICE, &new).await?;
    if slots.len() < new.len() {
        sender.due_now();
    }
    let mut failed = None;
    for (mut record, result) in new.into_iter().zip(results) {
        match result {
            Ok(rev) => {
                made(record.id.clone());
                if !record.lease.is_absent() {
                    record.rev.set(rev);
                    sender.send(record, slots.pop().expect("one slot per held record"));
                }
            }
            // another worker made it: it holds it
            Err(StoreError::Conflict) => made(record.id.clone()),
            Err(e) => failed = Some(e),
        }
    }
    failed.map_or(Ok(()), Err)
}

/// The delivery records of a request (every queue's), oldest first: read by their ids, which
/// follow from the request's events, so the log is current.
pub async fn log(state: &AppState, doc: &PortRequest) -> Result<Vec<Value>, AppError> {
    let mut ids: Vec<String> =
        doc.events().flat_map(|e| e.deliveries().into_iter().map(|d| d.record_id(&e.id)).collect::<Vec<_>>()).collect();
    let age = state.settings.jobs.reminders.age.as_secs() as i64;
    let created = doc.created.copied().unwrap_or_else(now_gregorian);
    let periods = ((now_gregorian() - created) / age.max(1)).clamp(0, 100);
    ids.extend((1..=periods).map(|p| events::reminder_record_id(doc.id.as_str(), p)));
    ids.extend((1..=periods).map(|p| events::reminder_bus_record_id(doc.id.as_str(), p)));
    let mut found: Vec<DeliveryDoc> = state.couch.get_docs(dbs::SERVICE, &ids).await?;
    found.sort_by_key(|r| r.created);
    Ok(found.iter().map(deliveries::public).collect())
}
