//! Completion: each number becomes a phone_number document (`kazoo-4.3-port-features.md` §5)
//! in its numbers database and in the owner's account database. All or nothing: when one
//! number cannot be written, what this attempt wrote is undone. Repeating is safe: numbers
//! already activated for this very request are left as they are.

use crate::couch::{Couch, StoreError, encode};
use crate::domain::phone_number::numbers_db_name;
use crate::domain::time::now_gregorian;
use crate::error::{ApiError, ValidationErrors, dotted_path};
use crate::state::AppState;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What one attempt wrote, so it can be undone.
#[derive(Debug, Default)]
pub struct Activation {
    /// (database, new doc with its new `_rev`, the document it replaced if any)
    written: Vec<(String, Value, Option<Value>)>,
}

/// Why a number could not be activated.
enum Failure {
    Taken,
    Store(StoreError),
}

/// An attempt in progress: what it wrote, and the numbers it could not write.
#[derive(Default)]
struct Attempt {
    activation: Activation,
    failures: BTreeMap<String, Failure>,
}

impl Attempt {
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

/// Already activated for this request (an earlier attempt got this far)?
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
    /// Written for this very request by an earlier attempt: kept as it is.
    Ours(Value),
    /// Someone else's: the number can't be activated.
    Taken,
    /// Replaced by this document (carrying the found one's `_rev`).
    Replace(Value),
}

/// Writes `docs` (new, without `_rev`) to `db` in one request. Only the numbers already there
/// are read, and `judge` says what becomes of each; documents kept as they are come back.
async fn place(
    couch: &Couch,
    db: &str,
    docs: Vec<Value>,
    judge: impl Fn(&Value, &Value) -> Found,
    attempt: &mut Attempt,
) -> Result<Vec<Value>, StoreError> {
    let mut kept = Vec::new();
    if docs.is_empty() {
        return Ok(kept);
    }
    let contested = write_batch(couch, db, docs.into_iter().map(|d| (d, None)).collect(), attempt).await?;
    if contested.is_empty() {
        return Ok(kept);
    }
    let ids: Vec<String> = contested.iter().filter_map(|d| d["_id"].as_str().map(str::to_owned)).collect();
    let existing = couch.get_many(db, &ids).await?;
    let mut second = Vec::new();
    for doc in contested {
        // not found: deleted in between, someone else is on it right now
        match existing.iter().find(|e| e["_id"] == doc["_id"]).map(|found| (judge(&doc, found), found)) {
            Some((Found::Ours(d), _)) => kept.push(d),
            Some((Found::Replace(d), found)) => second.push((d, Some(found.clone()))),
            Some((Found::Taken, _)) | None => attempt.fail(&doc, Failure::Taken),
        }
    }
    for lost in write_batch(couch, db, second, attempt).await? {
        attempt.fail(&lost, Failure::Taken);
    }
    Ok(kept)
}

/// Writes documents in one request; returns the ones CouchDB refused as conflicts.
async fn write_batch(
    couch: &Couch,
    db: &str,
    docs: Vec<(Value, Option<Value>)>,
    attempt: &mut Attempt,
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
                attempt.activation.written.push((db.to_owned(), doc, previous));
            }
            Err(StoreError::Conflict) => conflicts.push(doc),
            Err(e) => attempt.fail(&doc, Failure::Store(e)),
        }
    }
    Ok(conflicts)
}

/// Writes the number documents of a request that is being completed. Most numbers are new to
/// both databases, so each database gets one write, and only a number found there is read.
pub async fn activate(state: &AppState, request: &Value) -> Result<Activation, ApiError> {
    let owner = request.get("pvt_account_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let port_id = request.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let owner_id =
        crate::domain::ids::AccountId::parse(&owner).map_err(|_| ApiError::Internal("request without owner".into()))?;
    let module = state
        .directory
        .config_value("number_manager", "port_in_module_name")
        .await?
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "knm_local".to_owned());
    let numbers = request.get("numbers").and_then(Value::as_object).cloned().unwrap_or_default();
    let meta = |n: &str| numbers.get(n).cloned().unwrap_or(json!({}));

    let mut by_db: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for n in numbers.keys() {
        by_db.entry(numbers_db_name(n)).or_default().push(number_doc(n, &owner, &port_id, &module, &meta(n), None));
    }
    let mut attempt = Attempt::default();
    let result: Result<(), StoreError> = async {
        let in_numbers_db = |new: &Value, found: &Value| {
            let n = new["_id"].as_str().unwrap_or_default();
            if is_ours(found, &owner, &port_id) {
                Found::Ours(found.clone())
            } else if !is_reusable(found, &owner) {
                Found::Taken
            } else {
                Found::Replace(number_doc(n, &owner, &port_id, &module, &meta(n), Some(found)))
            }
        };
        let mut copies = Vec::new();
        for (db, docs) in by_db {
            copies.extend(place(&state.couch, &db, docs, in_numbers_db, &mut attempt).await?);
        }
        if attempt.failures.is_empty() {
            // the same documents in the owner's account database, as new ones there
            copies.extend(attempt.activation.written.iter().map(|(_, d, _)| d.clone()));
            for copy in &mut copies {
                copy.as_object_mut().map(|o| o.remove("_rev"));
            }
            let in_account_db = |new: &Value, found: &Value| {
                if is_ours(found, &owner, &port_id) {
                    Found::Ours(found.clone())
                } else {
                    let mut copy = new.clone();
                    copy["_rev"] = found["_rev"].clone();
                    Found::Replace(copy)
                }
            };
            place(&state.couch, &owner_id.db_name(), copies, in_account_db, &mut attempt).await?;
        }
        Ok(())
    }
    .await;
    let Attempt { activation, failures } = attempt;
    if let Err(e) = result {
        rollback(state, activation).await;
        return Err(ApiError::from(e));
    }
    if failures.is_empty() {
        return Ok(activation);
    }
    rollback(state, activation).await;
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

/// Undoes what an attempt wrote: new documents are deleted, replaced ones restored.
pub async fn rollback(state: &AppState, activation: Activation) {
    let mut by_db: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (db, written, previous) in activation.written {
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
    for (db, docs) in by_db {
        if let Err(e) = state.couch.bulk_save(&db, &docs).await {
            tracing::error!(%db, error = %e, "could not undo number documents of a failed completion");
        }
    }
}

/// The request after completion: `numbers` moves to `pvt_ported_numbers`.
pub fn clear_numbers(doc: &mut Value) {
    let numbers = doc.get("numbers").cloned().unwrap_or(json!({}));
    doc["pvt_ported_numbers"] = numbers;
    doc["numbers"] = json!({});
}
