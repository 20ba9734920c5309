//! Turns: one writer per generation of a port request, on a cluster.
//!
//! Settling a write (`couch/write.rs`) tells whether its revision is on the winning branch
//! *now*. That verdict lasts only if no rival branch grows later, and on a cluster one can: two
//! updates of one revision through two nodes are both accepted by some copies, a third writer
//! that read one of them builds on it, a fourth builds on the other, and the branch that was
//! winning when its writer settled is outgrown after the answer was sent (measured: with 24
//! writers on one request, an acknowledged change lost in about one run in five). Port requests
//! are the only documents many writers update at once, so before updating one the writer
//! creates `turn:<request>:<generation>` in the service's database. A creation is a race CouchDB
//! decides for good (it is settled, and a creation cannot be built on), so of all writers that
//! read one revision exactly one updates it; the others meet a conflict before writing anything,
//! and the request never gets a second branch from this service.
//!
//! A writer that dies holding a turn would block the request, so a turn expires after
//! `LEASE_TIMEOUTS` CouchDB timeouts; the next writer then takes the next round of that
//! generation (`turn:<request>:<generation>:<round>`). A holder writes only while at least one
//! timeout and a margin are left, so an expired holder never writes beside its successor.
//! Done turns are deleted in the background; a turn left behind is harmless (its generation
//! is past, so a writer that takes it again meets a conflict on the request itself).

use super::couch::{Couch, StoreError, StoreResult};
use crate::domain::documents::service::TurnDoc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many CouchDB timeouts a turn lasts.
const LEASE_TIMEOUTS: u32 = 3;
/// Rounds of one generation tried before giving up (each after an expired one).
const ROUNDS: u32 = 4;

/// The turn a writer holds to update one document at one revision.
#[derive(Debug)]
struct Turn {
    id: String,
    rev: String,
    until_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// The generation of revision `rev` (`3-abc` → 3).
fn generation(rev: &str) -> Option<u64> {
    rev.split_once('-').and_then(|(pos, _)| pos.parse().ok())
}

/// The id of round `round` of the turn at `generation` of document `id`.
pub fn turn_id(id: &str, generation: u64, round: u32) -> String {
    match round {
        0 => format!("turn:{id}:{generation}"),
        r => format!("turn:{id}:{generation}:{r}"),
    }
}

/// Where turns are kept, and the CouchDB they guard.
#[derive(Clone)]
pub struct Turns {
    couch: Couch,
    /// The database the turn documents live in.
    db: &'static str,
}

impl Turns {
    pub fn new(couch: Couch, db: &'static str) -> Self {
        Self { couch, db }
    }

    /// Makes `write`, an update of `id` in `db` at revision `rev`, while holding the turn for it
    /// where one is needed (on a cluster). A write whose fate is unknown keeps its turn until it
    /// expires, so nobody builds beside a write that may still land.
    pub async fn write<T>(
        &self,
        (db, id, rev): (&str, &str, Option<&str>),
        write: impl AsyncFnOnce() -> StoreResult<T>,
    ) -> StoreResult<T> {
        let turn = self.take(db, id, rev).await?;
        if !self.still_holds(&turn) {
            return Err(StoreError::Unreachable(format!("taking the turn to write {db}/{id} took too long")));
        }
        let result = write().await;
        if matches!(result, Ok(_) | Err(StoreError::Conflict | StoreError::NotFound)) {
            self.end(turn);
        }
        result
    }

    /// Takes the turn to update document `id` of `db` at revision `rev`; `None` where no turn
    /// is needed. Someone else holding it is a `Conflict`: the caller's revision is about to be
    /// (or has been) built on, so it would lose anyway.
    async fn take(&self, db: &str, id: &str, rev: Option<&str>) -> StoreResult<Option<Turn>> {
        let Some(generation) = rev.and_then(generation) else { return Ok(None) };
        if !self.couch.copies(db).await?.is_some_and(|n| n > 1) {
            return Ok(None);
        }
        let _timer = crate::metrics::CouchTimer::start("turn");
        let lease = self.couch.timeout() * LEASE_TIMEOUTS;
        for round in 0..ROUNDS {
            let until_ms = now_ms() + lease.as_millis() as u64;
            // its `holder`: two writers taking one turn in one millisecond would otherwise
            // write the same document, get the same revision, and both hold the turn
            let mut doc = TurnDoc::new(turn_id(id, generation, round), rev, until_ms);
            match self.couch.save_doc(self.db, &mut doc).await {
                Ok(turn_rev) => return Ok(Some(Turn { id: doc.id, rev: turn_rev, until_ms })),
                Err(StoreError::Conflict) => {
                    let held = self.couch.get_settled(self.db, &doc.id).await?;
                    let expired = held.is_some_and(|t| t["until"].as_u64().is_some_and(|u| u < now_ms()));
                    if !expired {
                        crate::metrics::get().couch_settled.with_label_values(&["turn_taken"]).inc();
                        return Err(StoreError::Conflict);
                    }
                    tracing::info!(id, generation, round, "a turn expired unused: taking the next round");
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Is the turn still good for a write that may take a whole timeout?
    fn still_holds(&self, turn: &Option<Turn>) -> bool {
        let margin = self.couch.timeout() + Duration::from_secs(1);
        turn.as_ref().is_none_or(|t| now_ms() + margin.as_millis() as u64 <= t.until_ms)
    }

    /// Deletes a used turn, in the background: the write it guarded is decided.
    fn end(&self, turn: Option<Turn>) {
        let Some(turn) = turn else { return };
        let (couch, db) = (self.couch.clone(), self.db);
        tokio::spawn(async move {
            if let Err(e) = couch.delete(db, &turn.id, &turn.rev).await
                && !matches!(e, StoreError::Conflict | StoreError::NotFound)
            {
                tracing::debug!(turn = turn.id, error = %e, "a used turn stays (harmless)");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_named_by_document_generation_and_round() {
        assert_eq!(generation("12-abc"), Some(12));
        assert_eq!(generation("abc"), None);
        assert_eq!(turn_id("r1", 3, 0), "turn:r1:3");
        assert_eq!(turn_id("r1", 3, 2), "turn:r1:3:2");
    }

    #[test]
    fn a_turn_about_to_expire_does_not_hold() {
        let couch = Couch::new(
            &crate::configuration::CouchSettings::parse("http://127.0.0.1:1", Duration::from_secs(10)).unwrap(),
        )
        .unwrap();
        let turns = Turns::new(couch, "service");
        assert!(turns.still_holds(&None));
        let soon = Some(Turn { id: "t".into(), rev: "1-a".into(), until_ms: now_ms() + 5_000 });
        assert!(!turns.still_holds(&soon));
        let later = Some(Turn { id: "t".into(), rev: "1-a".into(), until_ms: now_ms() + 30_000 });
        assert!(turns.still_holds(&later));
    }
}
