//! Follows `port_requests/_changes` from a checkpoint kept in our database, and for each
//! changed request:
//! - makes the delivery records of its events (this instance's queue) that nobody made yet,
//!   from the revision CouchDB keeps: a change is read with every copy's say (`r` = `n`) once it
//!   is a moment old, so the events of a revision that lost a race are never delivered;
//! - makes the number claims of an open request that lacks some (one Kazoo wrote);
//! - resolves a conflicted request deterministically (`domain::conflicts`).
//!
//! The checkpoint moves only past changes that were dealt with; after a restart the feed is
//! taken up from there, and what was done already is found done. With no checkpoint (the first
//! start against an existing database) the feed starts from now: history is not mailed.

use super::records;
use super::worker::Sender;
use crate::couch::{Resend, StoreError, StoreResult, dbs};
use crate::domain::events;
use crate::domain::port_state::PortState;
use crate::domain::time::now_gregorian;
use crate::port_requests::numbers;
use crate::state::AppState;
use actix_web::web;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// How old a change must be before it is acted on: the writes racing it are decided by then.
const SETTLE: Duration = Duration::from_millis(150);
/// How often the checkpoint is written while changes keep coming.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(3);

/// The records this follower made lately: never made twice by it, whatever a read of our
/// database says a moment later (PouchDB Server's `_all_docs` can miss a document just written).
type Made = moka::sync::Cache<String, ()>;

pub async fn run(state: web::Data<AppState>, sender: Sender) {
    let made: Made = moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(900)).build();
    loop {
        if let Err(e) = follow(&state, &sender, &made).await {
            tracing::warn!(error = %e, "following port_requests changes; taking it up again");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn checkpoint_id(queue: &str) -> String {
    format!("delivery_checkpoint:{queue}")
}

/// The saved checkpoint, or a new one at the database's current sequence.
async fn checkpoint(state: &AppState) -> StoreResult<Value> {
    let id = checkpoint_id(state.settings.outbox.queue.as_str());
    if let Some(doc) = state.couch.get(dbs::SERVICE, &id).await? {
        return Ok(doc);
    }
    let seq = state.couch.update_seq(dbs::PORT_REQUESTS).await?;
    let mut doc = json!({ "_id": id, "pvt_type": "delivery_checkpoint", "seq": seq });
    match state.couch.save(dbs::SERVICE, &mut doc).await {
        Ok(_) => Ok(doc),
        // another instance of the queue started at the same moment
        Err(StoreError::Conflict) => state.couch.get(dbs::SERVICE, &id).await?.ok_or(StoreError::NotFound),
        Err(e) => Err(e),
    }
}

/// Moves the checkpoint to `seq`. Instances of one queue share it; whichever writes last wins,
/// and one that is behind only makes the next start look at changes again.
async fn save_checkpoint(state: &AppState, doc: &mut Value, seq: &Value) {
    if &doc["seq"] == seq {
        return;
    }
    doc["seq"] = seq.clone();
    for _ in 0..3 {
        match state.couch.save(dbs::SERVICE, doc).await {
            Ok(_) => return,
            Err(StoreError::Conflict) => {
                match state.couch.get(dbs::SERVICE, doc["_id"].as_str().unwrap_or_default()).await {
                    Ok(Some(mut current)) => {
                        current["seq"] = seq.clone();
                        *doc = current;
                    }
                    _ => return,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot save the delivery checkpoint");
                return;
            }
        }
    }
}

async fn follow(state: &AppState, sender: &Sender, made: &Made) -> StoreResult<()> {
    let mut mark = checkpoint(state).await?;
    let mut feed = state.couch.changes(dbs::PORT_REQUESTS, &mark["seq"]).await?;
    let mut saved = Instant::now();
    while let Some(batch) = feed.next_batch(500, Duration::from_millis(50)).await {
        let seen = Instant::now();
        handle(state, sender, made, batch, seen).await?;
        if saved.elapsed() > CHECKPOINT_EVERY {
            save_checkpoint(state, &mut mark, &feed.since).await;
            saved = Instant::now();
        }
    }
    save_checkpoint(state, &mut mark, &feed.since).await;
    Ok(())
}

/// What a changed request may need.
struct Needs {
    records: Vec<String>,
    claims: Vec<String>,
    conflicted: bool,
}

fn needs_of(doc: &Value, queue: &str, horizon: i64) -> Needs {
    let records =
        events::record_ids(doc, queue).into_iter().filter(|(_, e, _)| e.at >= horizon).map(|(id, _, _)| id).collect();
    let deleted = doc.get("pvt_deleted") == Some(&json!(true));
    let state = PortState::of_doc(doc);
    let claims = if !deleted && state.is_open() {
        crate::domain::port_request::numbers(doc).iter().map(|n| crate::domain::claims::claim_id(n)).collect()
    } else {
        Vec::new()
    };
    let conflicted = doc.get("_conflicts").and_then(Value::as_array).is_some_and(|c| !c.is_empty());
    Needs { records, claims, conflicted }
}

/// Which of `ids` exist in our database (deleted ones do not).
async fn existing(state: &AppState, ids: &[String]) -> StoreResult<HashSet<String>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let path = format!("/{}/_all_docs", crate::couch::encode(dbs::SERVICE));
    let keys = json!({ "keys": ids });
    let resp = state.couch.send(Resend::Read, |c| c.req(Method::POST, &path, None).json(&keys)).await?;
    if !resp.status().is_success() {
        return Err(StoreError::Fault(format!("reading delivery records: {}", resp.status())));
    }
    let body: Value = resp.json().await?;
    Ok(body["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r.get("error").is_none() && r.pointer("/value/deleted") != Some(&json!(true)))
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

async fn handle(state: &AppState, sender: &Sender, made: &Made, batch: Vec<Value>, seen: Instant) -> StoreResult<()> {
    let queue = state.settings.outbox.queue.as_str();
    let horizon = now_gregorian() - state.settings.outbox.give_up_after.as_secs() as i64;
    // the newest change of each request
    let mut docs: BTreeMap<String, Value> = BTreeMap::new();
    for change in batch {
        let (Some(id), Some(doc)) = (change["id"].as_str(), change.get("doc")) else { continue };
        if doc.get("_deleted") == Some(&json!(true)) || doc["pvt_type"] != "port_request" {
            continue;
        }
        docs.insert(id.to_owned(), doc.clone());
    }
    let needs: BTreeMap<String, Needs> = docs.iter().map(|(id, d)| (id.clone(), needs_of(d, queue, horizon))).collect();
    let wanted: Vec<String> = needs.values().flat_map(|n| n.records.iter().chain(&n.claims).cloned()).collect();
    let mut there = existing(state, &wanted).await?;
    there.extend(wanted.iter().filter(|id| made.contains_key(*id)).cloned());
    let to_look_at: Vec<&String> = needs
        .iter()
        .filter(|(_, n)| n.conflicted || n.records.iter().chain(&n.claims).any(|id| !there.contains(id)))
        .map(|(id, _)| id)
        .collect();
    if to_look_at.is_empty() {
        return Ok(());
    }
    tokio::time::sleep(SETTLE.saturating_sub(seen.elapsed())).await;
    for group in to_look_at.chunks(8) {
        let looked =
            futures_util::future::join_all(group.iter().map(|id| look_at(state, sender, made, id, &there))).await;
        looked.into_iter().collect::<StoreResult<Vec<()>>>()?;
    }
    Ok(())
}

/// Deals with one changed request, as CouchDB keeps it.
async fn look_at(state: &AppState, sender: &Sender, made: &Made, id: &str, there: &HashSet<String>) -> StoreResult<()> {
    let Some(doc) = state.couch.get_settled(dbs::PORT_REQUESTS, id).await? else { return Ok(()) };
    if doc.get("_conflicts").and_then(Value::as_array).is_some_and(|c| !c.is_empty()) {
        // resolved once, the same way by everyone; the resolution is a change of its own
        return crate::port_requests::conflicts::resolve(state, id).await;
    }
    let queue = state.settings.outbox.queue.as_str();
    let horizon = now_gregorian() - state.settings.outbox.give_up_after.as_secs() as i64;
    let lease = state.settings.outbox.lease.as_secs();
    let missing: Vec<_> = events::record_ids(&doc, queue)
        .into_iter()
        .filter(|(record_id, e, _)| e.at >= horizon && !there.contains(record_id))
        .collect();
    if !missing.is_empty() {
        // held (and sent) at once where a sending slot is free; the rest is due for anyone
        let mut slots = sender.free_slots(missing.len());
        let new: Vec<Value> = missing
            .iter()
            .enumerate()
            .map(|(i, (_, e, d))| records::new(&doc, queue, e, d, (i < slots.len()).then_some(lease)))
            .collect();
        let results = state.couch.bulk_save(dbs::SERVICE, &new).await?;
        if slots.len() < new.len() {
            sender.due_now();
        }
        for (mut record, result) in new.into_iter().zip(results) {
            if matches!(result, Ok(_) | Err(StoreError::Conflict)) {
                made.insert(record["_id"].as_str().unwrap_or_default().to_owned(), ());
            }
            match result {
                Ok(rev) if record.get("lease").is_some() => {
                    record["_rev"] = json!(rev);
                    sender.send(record, slots.pop().expect("one slot per held record"));
                }
                Ok(_) => {}
                Err(StoreError::Conflict) => {} // another worker made it: it holds it
                Err(e) => return Err(e),
            }
        }
    }
    let needs = needs_of(&doc, queue, horizon);
    if needs.claims.iter().any(|c| !there.contains(c)) {
        let made = numbers::adopt(&state.couch, &doc).await?;
        if made > 0 {
            tracing::info!(port_request = id, claims = made, "claimed the numbers of a request written elsewhere");
        }
    }
    Ok(())
}
