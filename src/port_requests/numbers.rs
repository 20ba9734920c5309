//! Is a number free to port? Not on another open request anywhere in the system, and not
//! assigned to an account in the numbers databases. Every number is checked and each error is
//! reported under the number as the client wrote it, with Kazoo's messages.

use crate::couch::{StoreError, ViewQuery, dbs, design};
use crate::domain::claims;
use crate::domain::phone_number::numbers_db_name;
use crate::domain::time::now_unix;
use crate::error::{ApiError, ValidationErrors, dotted_path};
use crate::state::AppState;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const ON_A_REQUEST: &str = "Number is on a port request already: ";
pub const OTHER_ACCOUNT: &str = "Number is being ported for a different account";
pub const MULTIPLE: &str = "Number is currently on multiple port requests. Contact a system admin to rectify";
pub const EXISTS: &str = "Number exists on the system already";
/// Our own: claims for the number kept changing hands while this request asked for it.
pub const BUSY: &str = "Number is being claimed by another port request right now; try again";

/// A number as the client wrote it, and its E.164 form.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub raw: String,
    pub e164: String,
}

fn error(errors: &mut ValidationErrors, raw: &str, message: String) {
    errors.add(&dotted_path(&[raw]), "type", json!({ "message": message, "cause": raw }));
}

/// The numbers among `e164s` that are assigned to an account in the numbers databases.
pub async fn assigned_numbers(state: &AppState, e164s: &[String]) -> Result<BTreeMap<String, Value>, ApiError> {
    let mut by_db: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in e164s {
        by_db.entry(numbers_db_name(n)).or_default().push(n.clone());
    }
    let reads = by_db.iter().map(|(db, ids)| state.couch.get_many(db, ids));
    let mut found = BTreeMap::new();
    for docs in futures_util::future::try_join_all(reads).await? {
        for doc in docs {
            let assigned = doc.get("pvt_assigned_to").and_then(Value::as_str).is_some_and(|a| !a.is_empty());
            if let (true, Some(id)) = (assigned, doc.get("_id").and_then(Value::as_str)) {
                found.insert(id.to_owned(), doc.clone());
            }
        }
    }
    Ok(found)
}

/// Checks every candidate for `account_id`'s request `port_id` (a new id when creating) and
/// claims the ones it does not hold yet, so that a request racing for the same number loses.
/// The numbers in `saved` are on the stored request already: every other checker sees them
/// in the view, so they need no claim. When any number is refused, the claims taken here are
/// given back.
pub async fn check(
    state: &AppState,
    account_id: &str,
    port_id: &str,
    candidates: &[Candidate],
    saved: &[String],
) -> Result<ValidationErrors, ApiError> {
    let mut errors = ValidationErrors::new();
    if candidates.is_empty() {
        return Ok(errors);
    }
    let query = ViewQuery { keys: candidates.iter().map(|c| json!(c.e164)).collect(), ..ViewQuery::default() };
    let all: Vec<String> = candidates.iter().map(|c| c.e164.clone()).collect();
    let new: Vec<String> = all.iter().filter(|n| !saved.contains(n)).cloned().collect();
    // the reads and the claims at once: the numbers databases are asked about every
    // candidate, and their answer, like the claims', counts only where no request in the view
    // holds the number
    let (rows, assigned, claims) = futures_util::future::join3(
        state.couch.view(dbs::PORT_REQUESTS, design::OWN_DDOC, "open_numbers", &query),
        assigned_numbers(state, &all),
        claim(state, account_id, port_id, &new),
    )
    .await;
    let claims = claims?;
    let (rows, assigned) = match rows.map_err(ApiError::from).and_then(|rows| Ok((rows, assigned?))) {
        Ok(both) => both,
        Err(e) => {
            release(state, claims.taken).await;
            return Err(e);
        }
    };

    let mut free = Vec::new();
    for c in candidates {
        let others: Vec<_> =
            rows.iter().filter(|r| r.key.as_str() == Some(&c.e164) && r.id.as_deref() != Some(port_id)).collect();
        match others.as_slice() {
            [] => free.push(c),
            [one] => {
                let same_account = one.value.get("account_id").and_then(Value::as_str) == Some(account_id);
                error(&mut errors, &c.raw, held_message(same_account, one.id.as_deref().unwrap_or_default()));
            }
            _ => error(&mut errors, &c.raw, MULTIPLE.to_owned()),
        }
    }

    for c in free {
        if assigned.contains_key(&c.e164) {
            error(&mut errors, &c.raw, EXISTS.to_owned());
        } else if let Some((request, account)) = claims.held.get(&c.e164) {
            error(&mut errors, &c.raw, held_message(account == account_id, request));
        }
    }
    if !errors.is_empty() {
        release(state, claims.taken).await;
    }
    Ok(errors)
}

fn held_message(same_account: bool, request: &str) -> String {
    match (request, same_account) {
        ("", _) => BUSY.to_owned(),
        (_, true) => format!("{ON_A_REQUEST}{request}"),
        (_, false) => OTHER_ACCOUNT.to_owned(),
    }
}

/// What claiming found: the claims this request took now (id, revision), and the numbers
/// another request holds (its id and account).
#[derive(Default)]
struct Claimed {
    taken: Vec<(String, String)>,
    held: BTreeMap<String, (String, String)>,
}

/// Claims `e164s` for `port_id`: new claims are created, stale ones taken over with their
/// revision; a claim lost to a concurrent writer is looked at again (three rounds at most).
async fn claim(state: &AppState, account_id: &str, port_id: &str, e164s: &[String]) -> Result<Claimed, StoreError> {
    let mut out = Claimed::default();
    match claim_rounds(state, account_id, port_id, e164s, &mut out).await {
        Ok(()) => Ok(out),
        Err(e) => {
            // CouchDB failed half-way: give back what was taken
            release(state, out.taken).await;
            Err(e)
        }
    }
}

async fn claim_rounds(
    state: &AppState,
    account_id: &str,
    port_id: &str,
    e164s: &[String],
    out: &mut Claimed,
) -> Result<(), StoreError> {
    // a number whose claim was given back between our write and our read is claimed afresh;
    // each such round follows another request's refusal, so a few rounds settle every number
    const ROUNDS: usize = 10;
    let now = now_unix();
    let mut docs: Vec<Value> = e164s.iter().map(|n| claims::claim_doc(n, port_id, account_id, now)).collect();
    for round in 0..ROUNDS {
        if docs.is_empty() {
            break;
        }
        let results = state.couch.bulk_save(dbs::SERVICE, &docs).await?;
        let mut contested = Vec::new();
        for (doc, result) in docs.iter().zip(results) {
            let (id, number) = (doc["_id"].as_str().unwrap_or_default(), doc["number"].as_str().unwrap_or_default());
            match result {
                Ok(rev) => out.taken.push((id.to_owned(), rev)),
                Err(StoreError::Conflict) => contested.push(number.to_owned()),
                Err(e) => return Err(e),
            }
        }
        docs = Vec::new();
        if contested.is_empty() {
            break;
        }
        let ids: Vec<String> = contested.iter().map(|n| claims::claim_id(n)).collect();
        let current = state.couch.get_many(dbs::SERVICE, &ids).await?;
        let holder_ids: Vec<String> = current
            .iter()
            .filter_map(|c| c["port_request_id"].as_str())
            .filter(|id| *id != port_id)
            .map(str::to_owned)
            .collect();
        let holders = state.couch.get_many(dbs::PORT_REQUESTS, &holder_ids).await?;
        let last_round = round + 1 == ROUNDS;
        for number in contested {
            let Some(existing) = current.iter().find(|c| c["number"] == number.as_str()) else {
                // given back meanwhile: claim it afresh, unless the rounds are over (then
                // someone is on it right now, and this request must not take it unclaimed)
                if last_round {
                    out.held.insert(number, (String::new(), String::new()));
                } else {
                    docs.push(claims::claim_doc(&number, port_id, account_id, now));
                }
                continue;
            };
            let holder = holders.iter().find(|h| h["_id"] == existing["port_request_id"]);
            match claims::judge(existing, holder, &number, port_id, now) {
                claims::Verdict::Ours => {}
                claims::Verdict::Held { port_request_id, account_id } => {
                    out.held.insert(number, (port_request_id, account_id));
                }
                claims::Verdict::Stale if !last_round => {
                    let mut doc = claims::claim_doc(&number, port_id, account_id, now);
                    doc["_rev"] = existing["_rev"].clone();
                    docs.push(doc);
                }
                claims::Verdict::Stale => {
                    // writers in a row beat us to it: someone else is on it right now
                    let by = existing["port_request_id"].as_str().unwrap_or_default().to_owned();
                    out.held.insert(number, (by, existing["account_id"].as_str().unwrap_or_default().to_owned()));
                }
            }
        }
    }
    Ok(())
}

/// Gives claims back (best effort: one left behind is stale once its request is seen not to
/// hold the number, or after `claims::IN_FLIGHT_SECS` if the request was never saved).
async fn release(state: &AppState, taken: Vec<(String, String)>) {
    if taken.is_empty() {
        return;
    }
    let docs: Vec<Value> =
        taken.into_iter().map(|(id, rev)| json!({"_id": id, "_rev": rev, "_deleted": true})).collect();
    if let Err(e) = state.couch.bulk_save(dbs::SERVICE, &docs).await {
        tracing::warn!(error = %e, "cannot give number claims back");
    }
}

/// Gives back the claims `port_id` holds on `e164s` (a creation that was not saved).
pub async fn release_claims(state: &AppState, port_id: &str, e164s: &[String]) {
    let ids: Vec<String> = e164s.iter().map(|n| claims::claim_id(n)).collect();
    let Ok(current) = state.couch.get_many(dbs::SERVICE, &ids).await else { return };
    let ours = current
        .iter()
        .filter(|c| c["port_request_id"] == port_id)
        .filter_map(|c| Some((c["_id"].as_str()?.to_owned(), c["_rev"].as_str()?.to_owned())))
        .collect();
    release(state, ours).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_number_names_its_request_only_within_the_account() {
        assert_eq!(held_message(true, "abc"), format!("{ON_A_REQUEST}abc"));
        assert_eq!(held_message(false, "abc"), OTHER_ACCOUNT);
        assert_eq!(held_message(true, ""), BUSY);
    }
}
