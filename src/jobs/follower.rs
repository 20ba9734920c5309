//! Follows `port_requests/_changes` from a checkpoint kept in CouchDB and hands each changed
//! request, as CouchDB keeps it, to the jobs of this instance that need to see every change:
//! - `delivery`: the delivery records of its events (this instance's queue);
//! - `claim_adoption`: the number claims of an open request that lacks some (one Kazoo wrote);
//! - `conflict_resolution`: a request held in conflicting revisions, resolved.
//!
//! A change is acted on once it is a moment old, read with every copy's say (`r` = `n`): the
//! writes racing it are decided by then, so the events of a revision that lost a race are never
//! delivered. The checkpoint moves only past changes that were dealt with; after a restart the
//! feed is taken up from there, and what was done already is found done. Instances that run the
//! same jobs (and, for delivery, share a queue) share a checkpoint; with none (the first start
//! against an existing database) the feed starts from now: history is not mailed.

use super::delivery::{self, Sender};
use crate::domain::claims;
use crate::domain::documents::port_request::PortRequest;
use crate::domain::documents::service::CheckpointDoc;
use crate::state::AppState;
use crate::store::couch::Resend;
use crate::store::{StoreError, StoreResult, dbs};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How old a change must be before it is acted on: the writes racing it are decided by then.
const SETTLE: Duration = Duration::from_millis(150);
/// How often the checkpoint is written while changes keep coming.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(3);

/// The jobs the follower feeds.
#[derive(Clone)]
pub struct Fed {
    pub delivery: Option<Sender>,
    pub claim_adoption: bool,
    pub conflict_resolution: bool,
}

impl Fed {
    pub fn any(&self) -> bool {
        self.delivery.is_some() || self.claim_adoption || self.conflict_resolution
    }

    /// The checkpoint of this set of jobs. With every job on, the delivery checkpoint of the
    /// queue (as earlier versions named it).
    fn checkpoint_id(&self, queue: &str) -> String {
        if self.delivery.is_some() && self.claim_adoption && self.conflict_resolution {
            return format!("delivery_checkpoint:{queue}");
        }
        let mut jobs = Vec::new();
        if self.delivery.is_some() {
            jobs.push(format!("delivery@{queue}"));
        }
        if self.claim_adoption {
            jobs.push("claim_adoption".into());
        }
        if self.conflict_resolution {
            jobs.push("conflict_resolution".into());
        }
        format!("feed_checkpoint:{}", jobs.join("+"))
    }
}

/// The records this follower made lately: never made twice by it, whatever a read of the
/// service's database says a moment later (PouchDB Server's `_all_docs` can miss a document
/// just written).
type Made = moka::sync::Cache<String, ()>;

pub fn spawn(state: Arc<AppState>, fed: Fed) {
    if !fed.any() {
        return;
    }
    tokio::spawn(async move {
        let made: Made =
            moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(900)).build();
        loop {
            if let Err(e) = follow(&state, &fed, &made).await {
                tracing::warn!(error = %e, "following port_requests changes; taking it up again");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

/// The saved checkpoint, or a new one at the database's current sequence.
async fn checkpoint(state: &AppState, id: String) -> StoreResult<CheckpointDoc> {
    if let Some(doc) = state.couch.get_doc::<CheckpointDoc>(dbs::SERVICE, &id).await? {
        return Ok(doc);
    }
    let seq = state.couch.update_seq(dbs::PORT_REQUESTS).await?;
    let mut doc = CheckpointDoc::new(id.clone(), seq);
    match state.couch.save_doc(dbs::SERVICE, &mut doc).await {
        Ok(_) => Ok(doc),
        // another instance started at the same moment
        Err(StoreError::Conflict) => state.couch.get_doc(dbs::SERVICE, &id).await?.ok_or(StoreError::NotFound),
        Err(e) => Err(e),
    }
}

/// Moves the checkpoint to `seq`. Instances sharing it: whichever writes last wins, and one
/// that is behind only makes the next start look at changes again.
async fn save_checkpoint(state: &AppState, doc: &mut CheckpointDoc, seq: &Value) {
    if &doc.seq == seq {
        return;
    }
    doc.seq = seq.clone();
    for _ in 0..3 {
        match state.couch.save_doc(dbs::SERVICE, doc).await {
            Ok(_) => return,
            Err(StoreError::Conflict) => match state.couch.get_doc::<CheckpointDoc>(dbs::SERVICE, &doc.id).await {
                Ok(Some(mut current)) => {
                    current.seq = seq.clone();
                    *doc = current;
                }
                _ => return,
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot save the feed checkpoint");
                return;
            }
        }
    }
}

async fn follow(state: &Arc<AppState>, fed: &Fed, made: &Made) -> StoreResult<()> {
    let mut mark = checkpoint(state, fed.checkpoint_id(&state.settings.jobs.delivery.queue)).await?;
    let mut feed = state.couch.changes(dbs::PORT_REQUESTS, &mark.seq).await?;
    let mut saved = Instant::now();
    while let Some(batch) = feed.next_batch(500, Duration::from_millis(50)).await {
        let seen = Instant::now();
        handle(state, fed, made, batch, seen).await?;
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

fn needs_of(state: &AppState, fed: &Fed, doc: &PortRequest) -> Needs {
    let records = if fed.delivery.is_some() { delivery::wanted(state, doc) } else { Vec::new() };
    let claims =
        if fed.claim_adoption { doc.held_numbers().iter().map(claims::claim_id).collect() } else { Vec::new() };
    let conflicted = fed.conflict_resolution && !doc.conflicts().is_empty();
    Needs { records, claims, conflicted }
}

/// Which of `ids` exist in the service's database (deleted ones do not).
async fn existing(state: &AppState, ids: &[String]) -> StoreResult<HashSet<String>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let path = format!("/{}/_all_docs", crate::store::couch::encode(dbs::SERVICE));
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

async fn handle(state: &Arc<AppState>, fed: &Fed, made: &Made, batch: Vec<Value>, seen: Instant) -> StoreResult<()> {
    // the newest change of each request
    let mut docs: BTreeMap<String, PortRequest> = BTreeMap::new();
    for change in batch {
        let (Some(id), Some(doc)) = (change["id"].as_str(), change.get("doc")) else { continue };
        if doc.get("_deleted") == Some(&json!(true)) {
            continue;
        }
        if let Ok(doc) = PortRequest::from_stored(doc.clone())
            && doc.is_port_request()
        {
            docs.insert(id.to_owned(), doc);
        }
    }
    let needs: BTreeMap<String, Needs> = docs.iter().map(|(id, d)| (id.clone(), needs_of(state, fed, d))).collect();
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
        let looked = futures_util::future::join_all(group.iter().map(|id| look_at(state, fed, made, id, &there))).await;
        looked.into_iter().collect::<StoreResult<Vec<()>>>()?;
    }
    Ok(())
}

/// Deals with one changed request, as CouchDB keeps it.
async fn look_at(state: &Arc<AppState>, fed: &Fed, made: &Made, id: &str, there: &HashSet<String>) -> StoreResult<()> {
    let Some(doc) = state.port_requests.load_settled(id).await? else { return Ok(()) };
    if fed.conflict_resolution && !doc.conflicts().is_empty() {
        // resolved once, the same way by everyone; the resolution is a change of its own
        return super::conflict_resolution::resolve(state, id).await;
    }
    if let Some(sender) = &fed.delivery {
        delivery::make_records(state, sender, &doc, there, |record| made.insert(record, ())).await?;
    }
    if fed.claim_adoption {
        super::claim_adoption::adopt(state, &doc, there).await?;
    }
    Ok(())
}
