//! Completion: each number becomes a phone_number document (`kazoo-4.3-port-features.md` §5)
//! in its numbers database and in the owner's account database, all of them written at once
//! (one request per database, the databases side by side). All or nothing: when one number
//! cannot be written, what this attempt wrote is undone. Repeating is safe: numbers already
//! activated for this very request are written again for it.
//!
//! The request itself is saved as completed only after every number document is in (the
//! all-or-nothing rule allows no more overlap). With the number documents goes a journal of the
//! attempt in our database (`completion:<request>:<attempt>`), sent first in the same moment, so
//! that number documents never land without it. The journal is removed once the request is saved;
//! one left over (the process died, or CouchDB went away under the request's write) is found by
//! `repair`, which removes the attempt's number documents unless the request was saved completed.

use crate::couch::{Couch, StoreError, ViewQuery, dbs, encode};
use crate::domain::ids::AccountId;
use crate::domain::phone_number::numbers_db_name;
use crate::domain::port_state::PortState;
use crate::domain::time::now_gregorian;
use crate::error::{ApiError, ValidationErrors, dotted_path};
use crate::state::AppState;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What one attempt wrote, so it can be undone: (database, new doc with its new `_rev`, the
/// document it replaced if any), and its journal (id, revision).
#[derive(Debug, Default)]
pub struct Activation {
    written: Vec<(String, Value, Option<Value>)>,
    journal: Option<(String, String)>,
}

fn journal(request: &Value, numbers: &[String]) -> Value {
    let id = request["_id"].as_str().unwrap_or_default();
    json!({
        "_id": format!("completion:{id}:{}", crate::domain::ids::new_doc_id()),
        "pvt_type": "completion",
        "port_request_id": id,
        "account_id": request.get("pvt_account_id"),
        "numbers": numbers,
        "at": now_gregorian(),
    })
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
    fn fail(&mut self, doc: &Value, failure: Failure) {
        self.failures.insert(doc["_id"].as_str().unwrap_or_default().to_owned(), failure);
    }
}

fn number_doc(number: &str, owner: &str, port_id: &str, module: &str, meta: &Value, previous: Option<&Value>) -> Value {
    let now = now_gregorian();
    let mut doc = json!({
        "_id": number,
        "pvt_db_name": encode(&numbers_db_name(number)),
        "pvt_state": "in_service",
        "pvt_ported_in": true,
        "pvt_module_name": module,
        "pvt_modified": now,
        "pvt_created": previous.and_then(|p| p.get("pvt_created").cloned()).unwrap_or(json!(now)),
        "pvt_type": "number",
        "port_id": port_id,
        "pvt_assigned_to": owner,
        "pvt_features": { "local": {} },
    });
    if let Some(used_by) = meta.get("used_by").and_then(Value::as_str) {
        doc["pvt_used_by"] = json!(used_by);
    }
    if let Some(rev) = previous.and_then(|p| p.get("_rev")) {
        doc["_rev"] = rev.clone();
    }
    doc
}

/// Written for this very request (an earlier attempt got this far)?
fn is_ours(doc: &Value, owner: &str, port_id: &str) -> bool {
    doc.get("pvt_assigned_to").and_then(Value::as_str) == Some(owner)
        && doc.get("port_id").and_then(Value::as_str) == Some(port_id)
        && doc.get("pvt_state").and_then(Value::as_str) == Some("in_service")
}

/// Kazoo accepts existing numbers only in these states (and not someone else's).
fn is_reusable(doc: &Value, owner: &str) -> bool {
    let state = doc.get("pvt_state").or_else(|| doc.get("pvt_number_state")).and_then(Value::as_str);
    let assigned = doc.get("pvt_assigned_to").and_then(Value::as_str).filter(|a| !a.is_empty());
    matches!(state, Some("aging" | "available" | "port_in")) && assigned.is_none_or(|a| a == owner)
}

/// What to do with a number document that is already in a database.
enum Found {
    /// Someone else's: the number can't be activated.
    Taken,
    /// Replaced by this document (carrying the found one's `_rev`). `restore`: an undo puts the
    /// found one back; otherwise (it was written for this very request by an earlier attempt)
    /// an undo deletes it. Rewriting one of ours, rather than keeping it, makes an undo racing
    /// this attempt (one that read the older revision) fail instead of removing it.
    Replace { doc: Value, restore: bool },
}

/// Writes `docs` (new, without `_rev`) to `db` in one request. Only the numbers already there
/// are read, and `judge` says what becomes of each.
async fn place(
    couch: &Couch,
    db: &str,
    docs: Vec<Value>,
    judge: impl Fn(&Value, &Value) -> Found,
) -> Result<Placed, StoreError> {
    let mut placed = Placed::default();
    let contested = write_batch(couch, db, docs.into_iter().map(|d| (d, None)).collect(), &mut placed).await?;
    if contested.is_empty() {
        return Ok(placed);
    }
    let ids: Vec<String> = contested.iter().filter_map(|d| d["_id"].as_str().map(str::to_owned)).collect();
    let existing = couch.get_many(db, &ids).await?;
    let mut second = Vec::new();
    for doc in contested {
        // not found: deleted in between, someone else is on it right now
        match existing.iter().find(|e| e["_id"] == doc["_id"]).map(|found| (judge(&doc, found), found)) {
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
    docs: Vec<(Value, Option<Value>)>,
    placed: &mut Placed,
) -> Result<Vec<Value>, StoreError> {
    let mut conflicts = Vec::new();
    if docs.is_empty() {
        return Ok(conflicts);
    }
    let bodies: Vec<Value> = docs.iter().map(|(d, _)| d.clone()).collect();
    let results = match couch.bulk_save(db, &bodies).await {
        Err(StoreError::NotFound) => {
            // the first number of its range: the database is created on demand
            couch.ensure_db(db).await?;
            couch.bulk_save(db, &bodies).await?
        }
        other => other?,
    };
    for ((mut doc, previous), result) in docs.into_iter().zip(results) {
        match result {
            Ok(rev) => {
                doc["_rev"] = json!(rev);
                placed.activation.written.push((db.to_owned(), doc, previous));
            }
            Err(StoreError::Conflict) => conflicts.push(doc),
            Err(e) => placed.fail(&doc, Failure::Store(e)),
        }
    }
    Ok(conflicts)
}

/// Writes the number documents of a request that is being completed: every numbers database
/// and the owner's account database at once. Most numbers are new everywhere, so each database
/// gets one write, and only a number found there is read.
pub async fn activate(state: &AppState, request: &Value) -> Result<Activation, ApiError> {
    let owner = request.get("pvt_account_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let port_id = request.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let owner_id = AccountId::parse(&owner).map_err(|_| ApiError::Internal("request without owner".into()))?;
    let module = state
        .directory
        .config_value("number_manager", "port_in_module_name")
        .await?
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "knm_local".to_owned());
    let numbers = request.get("numbers").and_then(Value::as_object).cloned().unwrap_or_default();
    let meta = |n: &str| numbers.get(n).cloned().unwrap_or(json!({}));
    let fresh = |n: &str| number_doc(n, &owner, &port_id, &module, &meta(n), None);

    let mut by_db: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for n in numbers.keys() {
        by_db.entry(numbers_db_name(n)).or_default().push(fresh(n));
    }
    let in_numbers_db = |new: &Value, found: &Value| {
        let n = new["_id"].as_str().unwrap_or_default();
        let ours = is_ours(found, &owner, &port_id);
        if !ours && !is_reusable(found, &owner) {
            return Found::Taken;
        }
        Found::Replace { doc: number_doc(n, &owner, &port_id, &module, &meta(n), Some(found)), restore: !ours }
    };
    // the owner's copies: whatever is there is the owner's own, and is replaced
    let in_account_db = |new: &Value, found: &Value| {
        let mut copy = new.clone();
        copy["_rev"] = found["_rev"].clone();
        Found::Replace { doc: copy, restore: !is_ours(found, &owner, &port_id) }
    };
    let copies: Vec<Value> = numbers.keys().map(|n| fresh(n)).collect();
    let account_db = owner_id.db_name();
    let mut journal = journal(request, &numbers.keys().cloned().collect::<Vec<_>>());
    // the journal is sent first: number documents never land without it
    let (journaled, numbers_dbs, account) = futures_util::future::join3(
        state.couch.create_unique(dbs::SERVICE, &mut journal),
        futures_util::future::join_all(by_db.into_iter().map(|(db, docs)| {
            let judge = &in_numbers_db;
            async move { place(&state.couch, &db, docs, judge).await }
        })),
        place(&state.couch, &account_db, copies, in_account_db),
    )
    .await;

    let mut all = Placed::default();
    let mut store_error = None;
    match journaled {
        Ok(rev) => all.activation.journal = Some((journal["_id"].as_str().unwrap_or_default().to_owned(), rev)),
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
        rollback(&state.couch, activation).await;
        return Err(ApiError::from(e));
    }
    if failures.is_empty() {
        return Ok(activation);
    }
    rollback(&state.couch, activation).await;
    let mut errors = ValidationErrors::new();
    let mut unavailable = Vec::new();
    for (number, failure) in &failures {
        match failure {
            Failure::Taken => errors.add(
                &dotted_path(&[number]),
                "activation",
                json!({ "message": super::numbers::EXISTS, "cause": number }),
            ),
            Failure::Store(e) => unavailable.push(format!("{number} ({e})")),
        }
    }
    if !unavailable.is_empty() && errors.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "number documents could not be written for {}; nothing was changed",
            unavailable.join(", ")
        )));
    }
    Err(ApiError::Validation(errors))
}

/// The request was saved completed: the attempt's journal goes (in the background; one left
/// behind is found completed by the repair and removed then).
pub fn finish(couch: &Couch, activation: Activation) {
    if let Some((id, rev)) = activation.journal {
        let couch = couch.clone();
        tokio::spawn(async move {
            let _ = couch.delete(dbs::SERVICE, &id, &rev).await;
        });
    }
}

/// Undoes what an attempt wrote: new documents are deleted, replaced ones restored (a document
/// changed since, by another attempt, is left alone), then the journal. What cannot be undone
/// now is left to the repair, which the journal leads to.
pub async fn rollback(couch: &Couch, activation: Activation) {
    let Activation { written, journal } = activation;
    let mut by_db: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (db, written, previous) in written {
        let rev = written["_rev"].clone();
        let undo = match previous {
            Some(mut old) => {
                old["_rev"] = rev;
                old
            }
            None => json!({ "_id": written["_id"], "_rev": rev, "_deleted": true }),
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
pub async fn repair(couch: &Couch, grace_secs: i64) -> Result<usize, StoreError> {
    let query =
        ViewQuery { limit: Some(200), ..ViewQuery::range(json!(0), json!(now_gregorian() - grace_secs)).with_docs() };
    let mut removed = 0;
    for journal in
        couch.view(dbs::SERVICE, "deliveries", "completions", &query).await?.into_iter().filter_map(|r| r.doc)
    {
        let (Some(port_id), Some(owner)) = (journal["port_request_id"].as_str(), journal["account_id"].as_str()) else {
            continue;
        };
        let request = couch.get(dbs::PORT_REQUESTS, port_id).await?;
        let numbers: Vec<String> = journal["numbers"]
            .as_array()
            .map(|n| n.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        // saved: the request completed, or these numbers ported on their own
        let completed =
            request.as_ref().is_some_and(|r| PortState::of_doc(r) == PortState::Completed || all_ported(r, &numbers));
        if !completed && let Some(owner_id) = AccountId::from_any(owner) {
            let mut by_db: BTreeMap<String, Vec<String>> = BTreeMap::new();
            by_db.insert(owner_id.db_name(), numbers.clone());
            for n in &numbers {
                by_db.entry(numbers_db_name(n)).or_default().push(n.clone());
            }
            for (db, ids) in by_db {
                let ours: Vec<Value> = couch
                    .get_many(&db, &ids)
                    .await?
                    .into_iter()
                    .filter(|d| is_ours(d, owner, port_id))
                    .map(|d| json!({ "_id": d["_id"], "_rev": d["_rev"], "_deleted": true }))
                    .collect();
                removed += couch.bulk_save(&db, &ours).await?.into_iter().filter(Result::is_ok).count();
            }
            tracing::warn!(port_request = port_id, "undid the number documents of a completion that was never saved");
        }
        let (id, rev) = (journal["_id"].as_str().unwrap_or_default(), journal["_rev"].as_str().unwrap_or_default());
        match couch.delete(dbs::SERVICE, id, rev).await {
            Ok(_) | Err(StoreError::Conflict) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// The request after completion: `numbers` moves to `pvt_ported_numbers` (beside the numbers
/// ported on their own before).
pub fn clear_numbers(doc: &mut Value) {
    let numbers = doc.get("numbers").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut ported = doc.get("pvt_ported_numbers").and_then(Value::as_object).cloned().unwrap_or_default();
    ported.extend(numbers);
    doc["pvt_ported_numbers"] = Value::Object(ported);
    doc["numbers"] = json!({});
}

/// Does the request, as stored, hold every one of `numbers` as ported (an attempt whose
/// number documents must stay)?
pub fn all_ported(request: &Value, numbers: &[String]) -> bool {
    let ported = request.get("pvt_ported_numbers").and_then(Value::as_object);
    !numbers.is_empty() && numbers.iter().all(|n| ported.is_some_and(|p| p.contains_key(n)))
}
