//! Notifications that are never lost and sent once.
//!
//! A change records its events in the port request itself (`domain::events`), in the same
//! write. Delivery workers follow `port_requests/_changes` from a checkpoint kept in CouchDB
//! (`follower`) and make one delivery record per event and channel in our database, with an id
//! derived from the event, so that workers racing make the same record and exactly one of them
//! holds it (the cluster-safe writes of `couch::write` decide). The holder sends it (`worker`),
//! retrying with backoff and recording every attempt; a record whose holder died is taken over
//! when its lease runs out. A crash in the middle of a send can repeat that one send (at least
//! once); nothing else is ever sent twice.

mod follower;
mod records;
mod worker;

use crate::couch::{Couch, StoreResult, dbs, design};
use crate::domain::events;
use crate::domain::time::now_gregorian;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::web;
use serde_json::Value;

const DELIVERY_VIEWS: &str = include_str!("../../couchdb_views/deliveries.json");

/// Creates our database and its `_design/deliveries` (kept up to date); drops the views of
/// the outbox of earlier versions.
pub async fn ensure_db(couch: &Couch) -> StoreResult<()> {
    couch.ensure_db(dbs::SERVICE).await?;
    let ddoc: Value = serde_json::from_str(DELIVERY_VIEWS).expect("couchdb_views/deliveries.json is valid JSON");
    design::install_or_update(couch, dbs::SERVICE, &ddoc).await?;
    design::remove(couch, dbs::SERVICE, "outbox").await?;
    Ok(())
}

/// Starts the follower, the sender and the reminders, when this instance delivers.
pub fn spawn(state: web::Data<AppState>) {
    if !state.settings.outbox.worker {
        return;
    }
    worker::spawn(state);
}

/// The delivery records of a request (every queue's), oldest first: read by their ids,
/// which follow from the request's events, so the log is current.
pub async fn log(state: &AppState, doc: &Value) -> Result<Vec<Value>, ApiError> {
    let id = doc["_id"].as_str().unwrap_or_default();
    let mut ids: Vec<String> = events::of(doc)
        .iter()
        .flat_map(|e| e.deliveries().into_iter().map(|d| d.record_id(&e.id)).collect::<Vec<_>>())
        .collect();
    let age = state.settings.outbox.reminder_age.as_secs() as i64;
    let created = doc["pvt_created"].as_i64().unwrap_or_else(now_gregorian);
    let periods = ((now_gregorian() - created) / age.max(1)).clamp(0, 100);
    ids.extend((1..=periods).map(|p| events::reminder_record_id(id, p)));
    let mut found = state.couch.get_many(dbs::SERVICE, &ids).await?;
    found.sort_by_key(|r| r["created"].as_i64().unwrap_or(0));
    Ok(found.iter().map(records::public).collect())
}
