//! Completion: each number becomes a phone number document (Kazoo 4.3's `knm_port_request`) in
//! its numbers database and in the owner's account database, all of them written at once (one
//! request per database, the databases side by side). All or nothing: when one number cannot
//! be written, what this attempt wrote is undone. Repeating is safe: numbers already activated
//! for this very request are written again for it.
//!
//! The request itself is saved as completed only after every number document is in (the
//! all-or-nothing rule allows no more overlap). With the number documents goes a journal of the
//! attempt in the service's database, sent first in the same moment, so that number documents
//! never land without it. The journal is removed once the request is saved; one left over (the
//! process died, or CouchDB went away under the request's write) is found by `repair`
//! (`jobs::completion_repair`), which removes the attempt's number documents unless the request
//! was saved completed.

use super::error::{AppError, NumberRefused, NumberTaken};
use crate::domain::documents::fields::Slot;
use crate::domain::documents::number::NumberDoc;
use crate::domain::documents::port_request::PortRequest;
use crate::domain::documents::service::CompletionJournal;
use crate::domain::ids::AccountId;
use crate::domain::phone_number::PhoneNumber;
use crate::domain::port_state::PortState;
use crate::domain::time::now_gregorian;
use crate::state::AppState;
use crate::store::{Couch, Document, StoreError, ViewQuery, dbs, views};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What one attempt wrote, so it can be undone: (database, new doc with its new `_rev`, the
/// document it replaced if any), and its journal (id, revision). Settled by the write of the
/// request (`app::write`): `finish` when it landed, `rollback` when it was refused; when its
/// fate is unknown it is left to the journal and the repair.
#[derive(Debug, Default)]
#[must_use]
pub struct Activation {
    written: Vec<(String, NumberDoc, Option<NumberDoc>)>,
    journal: Option<(String, String)>,
    /// The request and the numbers it activates.
    port_id: String,
    numbers: Vec<PhoneNumber>,
}

/// Why a number could not be activated.
enum Failure {
    Taken,
    Store(StoreError),
}

/// What writing one database did.
#[derive(Default)]
struct Placed {
    activation: Activation,
    failures: BTreeMap<String, Failure>,
}

impl Placed {
    fn fail(&mut self, doc: &NumberDoc, failure: Failure) {
        self.failures.insert(doc.id.clone(), failure);
    }
}

/// What to do with a number document that is already in a database.
enum Found {
    /// Someone else's: the number can't be activated.
    Taken,
    /// Replaced by this document (carrying the found one's `_rev`). `restore`: an undo puts the
    /// found one back; otherwise (it was written for this very request by an earlier attempt)
    /// an undo deletes it. Rewriting one of ours, rather than keeping it, makes an undo racing
    /// this attempt (one that read the older revision) fail instead of removing it.
    Replace { doc: NumberDoc, restore: bool },
}

/// Writes `docs` (new, without `_rev`) to `db` in one request. Only the numbers already there
/// are read, and `judge` says what becomes of each.
async fn place(
    couch: &Couch,
    db: &str,
    docs: Vec<NumberDoc>,
    judge: impl Fn(&NumberDoc, &NumberDoc) -> Found,
) -> Result<Placed, StoreError> {
    let mut placed = Placed::default();
    let contested = write_batch(couch, db, docs.into_iter().map(|d| (d, None)).collect(), &mut placed).await?;
    if contested.is_empty() {
        return Ok(placed);
    }
    let ids: Vec<String> = contested.iter().map(|d| d.id.clone()).collect();
    let existing: Vec<NumberDoc> = couch.get_docs(db, &ids).await?;
    let mut second = Vec::new();
    for doc in contested {
        // not found: deleted in between, someone else is on it right now
        match existing.iter().find(|e| e.id == doc.id).map(|found| (judge(&doc, found), found)) {
            Some((Found::Replace { doc, restore }, found)) => second.push((doc, restore.then(|| found.clone()))),
            Some((Found::Taken, _)) | None => placed.fail(&doc, Failure::Taken),
        }
    }
    for lost in write_batch(couch, db, second, &mut placed).await? {
        placed.fail(&lost, Failure::Taken);
    }
    Ok(placed)
}

/// Writes documents in one request; returns the ones CouchDB refused as conflicts.
async fn write_batch(
    couch: &Couch,
    db: &str,
    docs: Vec<(NumberDoc, Option<NumberDoc>)>,
    placed: &mut Placed,
) -> Result<Vec<NumberDoc>, StoreError> {
    let mut conflicts = Vec::new();
    if docs.is_empty() {
        return Ok(conflicts);
    }
    let bodies: Vec<NumberDoc> = docs.iter().map(|(d, _)| d.clone()).collect();
    let results = match couch.bulk_save_docs(db, &bodies).await {
        Err(StoreError::NotFound) => {
            // the first number of its range: the database is created on demand
            couch.ensure_db(db).await?;
            couch.bulk_save_docs(db, &bodies).await?
        }
        other => other?,
    };
    for ((mut doc, previous), result) in docs.into_iter().zip(results) {
        match result {
            Ok(rev) => {
                doc.set_rev(rev);
                placed.activation.written.push((db.to_owned(), doc, previous));
            }
            Err(StoreError::Conflict) => conflicts.push(doc),
            Err(e) => placed.fail(&doc, Failure::Store(e)),
        }
    }
    Ok(conflicts)
}

/// Writes the number documents of `numbers` of `request`, which is being completed: every
/// numbers database and the owner's account database at once. Most numbers are new everywhere,
/// so each database gets one write, and only a number found there is read.
pub async fn activate(
    state: &AppState,
    request: &PortRequest,
    numbers: &[PhoneNumber],
) -> Result<Activation, AppError> {
    let owner = request.owner().cloned().ok_or_else(|| AppError::Unavailable("the request has no owner".into()))?;
    let port_id = request.id.to_string();
    let module = state
        .directory
        .config_value("number_manager", "port_in_module_name")
        .await?
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "knm_local".to_owned());
    let now = now_gregorian();
    let on_request = request.numbers_shown();
    let fresh = |n: &PhoneNumber| {
        let mut doc = NumberDoc::ported_in(n, &owner, &port_id, &module, now);
        doc.used_by = on_request.get(n).map(|m| m.used_by.clone()).unwrap_or_default();
        doc
    };
    let mut by_db: BTreeMap<String, Vec<NumberDoc>> = BTreeMap::new();
    for n in numbers {
        by_db.entry(n.db_name()).or_default().push(fresh(n));
    }
    let in_numbers_db = |new: &NumberDoc, found: &NumberDoc| {
        let ours = found.is_ported_by(&owner, &port_id);
        if !ours && !found.is_reusable_by(&owner) {
            return Found::Taken;
        }
        let mut doc = new.clone();
        doc.rev = found.rev.clone();
        doc.created = found.created.clone();
        if doc.created.is_absent() {
            doc.created.set(now);
        }
        Found::Replace { doc, restore: !ours }
    };
    // the owner's copies: whatever is there is the owner's own, and is replaced
    let in_account_db = |new: &NumberDoc, found: &NumberDoc| {
        let mut copy = new.clone();
        copy.rev = found.rev.clone();
        Found::Replace { doc: copy, restore: !found.is_ported_by(&owner, &port_id) }
    };
    let copies: Vec<NumberDoc> = numbers.iter().map(fresh).collect();
    let account_db = owner.db_name();
    let mut journal =
        CompletionJournal::new(&port_id, Some(owner.as_str()), numbers.iter().map(|n| n.to_string()).collect(), now);
    let couch = &state.couch;
    // the journal is sent first: number documents never land without it
    let (journaled, numbers_dbs, account) = futures_util::future::join3(
        couch.create_unique_doc(dbs::SERVICE, &mut journal),
        futures_util::future::join_all(by_db.into_iter().map(|(db, docs)| {
            let judge = &in_numbers_db;
            async move { place(couch, &db, docs, judge).await }
        })),
        place(couch, &account_db, copies, in_account_db),
    )
    .await;

    let mut all = Placed::default();
    all.activation.port_id = port_id.clone();
    all.activation.numbers = numbers.to_vec();
    let mut store_error = None;
    match journaled {
        Ok(rev) => all.activation.journal = Some((journal.id.clone(), rev)),
        Err(e) => store_error = Some(e),
    }
    for result in numbers_dbs.into_iter().chain([account]) {
        match result {
            Ok(p) => {
                all.activation.written.extend(p.activation.written);
                all.failures.extend(p.failures);
            }
            Err(e) => store_error = Some(e),
        }
    }
    let Placed { activation, failures } = all;
    if let Some(e) = store_error {
        undo(couch, activation).await;
        return Err(AppError::Store(e));
    }
    if failures.is_empty() {
        return Ok(activation);
    }
    undo(couch, activation).await;
    let mut refused = Vec::new();
    let mut unavailable = None;
    for (number, failure) in failures {
        match failure {
            Failure::Taken => refused.push(NumberRefused { raw: number, why: NumberTaken::NotActivatable }),
            Failure::Store(e) => {
                tracing::warn!(%number, error = %e, "a number document could not be written; nothing was changed");
                unavailable = Some(e);
            }
        }
    }
    match unavailable {
        // the caller gets the datastore's usual answer; where it failed is in the log only
        Some(e) if refused.is_empty() => Err(AppError::Store(e)),
        _ => Err(AppError::Numbers(refused)),
    }
}

impl Activation {
    /// The request was saved completed: the attempt's journal goes (in the background; one
    /// left behind is found completed by the repair and removed then).
    pub fn finish(self, couch: &Couch) {
        if let Some((id, rev)) = self.journal {
            let couch = couch.clone();
            tokio::spawn(async move {
                let _ = couch.delete(dbs::SERVICE, &id, &rev).await;
            });
        }
    }

    /// The request's write was refused: what this attempt wrote is undone, unless someone else
    /// completed these numbers of the request meanwhile.
    pub async fn rollback(self, state: &AppState) {
        let completed_elsewhere =
            state.port_requests.load(&self.port_id).await.ok().flatten().is_some_and(|d| all_ported(&d, &self.numbers));
        if !completed_elsewhere {
            undo(&state.couch, self).await;
        }
    }

    /// The request's write has an unknown fate: the journal stays, and the repair settles it.
    pub fn leave_to_repair(self) {}
}

/// Undoes what an attempt wrote: new documents are deleted, replaced ones restored (a document
/// changed since, by another attempt, is left alone), then the journal. What cannot be undone
/// now is left to the repair, which the journal leads to.
async fn undo(couch: &Couch, activation: Activation) {
    let Activation { written, journal, .. } = activation;
    let mut by_db: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (db, written, previous) in written {
        let rev = written.rev.get().cloned();
        let undo = match previous {
            Some(mut old) => {
                old.rev = Slot::from_option(rev);
                old.to_value()
            }
            None => json!({ "_id": written.id, "_rev": rev, "_deleted": true }),
        };
        by_db.entry(db).or_default().push(undo);
    }
    let undo = by_db.into_iter().map(|(db, docs)| async move { couch.bulk_save(&db, &docs).await.is_ok() });
    let undone = futures_util::future::join_all(undo).await.into_iter().all(|ok| ok);
    if let (true, Some((id, rev))) = (undone, journal) {
        let _ = couch.delete(dbs::SERVICE, &id, &rev).await;
    }
}

/// Finds the journals of completions older than `grace_secs` (their process died, or CouchDB
/// went away under the request's write) and settles each: nothing to undo when the request was
/// saved completed; otherwise the attempt's number documents are removed. A completion running
/// now is never touched: none takes that long, and one that rewrites a number document makes a
/// removal with the older revision fail. Returns how many number documents were removed.
pub async fn repair(state: &AppState, grace_secs: i64) -> Result<usize, StoreError> {
    let couch = &state.couch;
    let query =
        ViewQuery { limit: Some(200), ..ViewQuery::range(json!(0), json!(now_gregorian() - grace_secs)).with_docs() };
    let mut removed = 0;
    let rows = couch.view(dbs::SERVICE, views::SERVICE_DDOC, "completions", &query).await?;
    for journal in
        rows.into_iter().filter_map(|r| r.doc).filter_map(|d| serde_json::from_value::<CompletionJournal>(d).ok())
    {
        let Some(owner) = journal.account_id.as_deref().and_then(AccountId::from_any) else { continue };
        let port_id = journal.port_request_id.as_str();
        let request = state.port_requests.load(port_id).await?;
        let numbers: Vec<PhoneNumber> = journal.numbers.iter().filter_map(|n| PhoneNumber::exact(n).ok()).collect();
        // saved: the request completed, or these numbers ported on their own
        let completed =
            request.as_ref().is_some_and(|r| r.state() == Ok(PortState::Completed) || all_ported(r, &numbers));
        if !completed {
            let mut by_db: BTreeMap<String, Vec<String>> = BTreeMap::new();
            by_db.insert(owner.db_name(), journal.numbers.clone());
            for n in &numbers {
                by_db.entry(n.db_name()).or_default().push(n.to_string());
            }
            for (db, ids) in by_db {
                let ours: Vec<Value> = couch
                    .get_docs::<NumberDoc>(&db, &ids)
                    .await?
                    .into_iter()
                    .filter(|d| d.is_ported_by(&owner, port_id))
                    .map(|d| json!({ "_id": d.id, "_rev": d.rev.get(), "_deleted": true }))
                    .collect();
                removed += couch.bulk_save(&db, &ours).await?.into_iter().filter(Result::is_ok).count();
            }
            tracing::warn!(port_request = port_id, "undid the number documents of a completion that was never saved");
        }
        let rev = journal.rev.get().cloned().unwrap_or_default();
        match couch.delete(dbs::SERVICE, &journal.id, &rev).await {
            Ok(_) | Err(StoreError::Conflict) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// The request after completion: its `numbers` move to the ported numbers (beside the numbers
/// ported on their own before).
pub fn clear_numbers(doc: &mut PortRequest) {
    let numbers = doc.numbers.get().cloned().unwrap_or_default();
    doc.ported_numbers.get_or_default().extend(numbers);
    doc.numbers.set(Default::default());
}

/// Does the request, as stored, hold every one of `numbers` as ported (an attempt whose
/// number documents must stay)?
pub fn all_ported(request: &PortRequest, numbers: &[PhoneNumber]) -> bool {
    !numbers.is_empty() && numbers.iter().all(|n| request.ported().contains_key(n))
}
