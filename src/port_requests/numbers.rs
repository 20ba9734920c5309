//! Is a number free to port? Not on another open request anywhere in the system, and not
//! assigned to an account in the numbers databases. Every number is checked and each error is
//! reported under the number as the client wrote it, with Kazoo's messages.
//!
//! The number claims are the index of open numbers: one document per number in our database
//! (`number_claim:+E164`), read by key, never through a view (a view can lag a write). A request
//! claims each of its numbers before it is saved; CouchDB lets one writer create a document or
//! update one revision, and on a cluster the writes know whether they won, so of any number of
//! requests racing for a number exactly one holds it. Claims for requests Kazoo (or an older
//! version) wrote are made by `bootstrap` and by the follower of `port_requests/_changes`.

use crate::couch::{Couch, StoreError, ViewQuery, dbs};
use crate::domain::claims;
use crate::domain::phone_number::numbers_db_name;
use crate::domain::time::now_unix;
use crate::error::{ApiError, ValidationErrors, dotted_path};
use crate::state::AppState;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const ON_A_REQUEST: &str = "Number is on a port request already: ";
pub const OTHER_ACCOUNT: &str = "Number is being ported for a different account";
pub const EXISTS: &str = "Number exists on the system already";
/// Our own: claims for the number kept changing hands while this request asked for it.
pub const BUSY: &str = "Number is being claimed by another port request right now; try again";

/// A number as the client wrote it, and its E.164 form.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub raw: String,
    pub e164: String,
}

/// The claims a check took for request `port_id` (id, revision): given back if the request is
/// not saved after all.
#[derive(Debug, Default)]
#[must_use]
pub struct Taken {
    port_id: String,
    claims: Vec<(String, String)>,
}

impl Taken {
    pub fn merge(&mut self, other: Taken) {
        if self.port_id.is_empty() {
            self.port_id = other.port_id;
        }
        self.claims.extend(other.claims);
    }
}

/// Whether the request asking may hold claims already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asking<'a> {
    /// A request being created: its claims are written at once, and only numbers someone else
    /// claimed are read.
    New,
    /// A stored request, holding these numbers in the revision the writer read: its claims are
    /// read first, and only missing ones are written.
    Stored(&'a [String]),
}

impl Asking<'_> {
    /// Did the request hold `e164` before this change? A claim naming the request on a number
    /// it did not hold is another writer's of the same request, who may still give it back.
    fn held_before(&self, e164: &str) -> bool {
        matches!(self, Asking::Stored(held) if held.iter().any(|n| n == e164))
    }
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

/// The reads a stored request's check starts with (its claims and the numbers databases), made
/// ahead, at the same time as the request's own read, for the numbers it is expected to hold.
pub struct Ahead {
    numbers: Vec<String>,
    claims: Vec<Value>,
    assigned: BTreeMap<String, Value>,
}

/// Reads ahead for `e164s` (`None` when either read fails: the check reads again).
pub async fn read_ahead(state: &AppState, e164s: Vec<String>) -> Option<Ahead> {
    let ids: Vec<String> = e164s.iter().map(|n| claims::claim_id(n)).collect();
    let (claims, assigned) =
        futures_util::future::join(state.couch.get_many(dbs::SERVICE, &ids), assigned_numbers(state, &e164s)).await;
    Some(Ahead { numbers: e164s, claims: claims.ok()?, assigned: assigned.ok()? })
}

/// Checks every candidate for `account_id`'s request `port_id` and claims the ones it does not
/// hold yet. When any number is refused, the claims taken here are given back at once;
/// otherwise they are returned, to give back should the request not be saved. `ahead`: reads
/// made ahead, used only when they were made for these very numbers.
pub async fn check(
    state: &AppState,
    account_id: &str,
    port_id: &str,
    candidates: &[Candidate],
    asking: Asking<'_>,
    ahead: Option<Ahead>,
) -> Result<(ValidationErrors, Taken), ApiError> {
    let mut errors = ValidationErrors::new();
    if candidates.is_empty() {
        return Ok((errors, Taken::default()));
    }
    let all: Vec<String> = candidates.iter().map(|c| c.e164.clone()).collect();
    let ahead = ahead.filter(|a| {
        let (mut want, mut got) = (all.clone(), a.numbers.clone());
        want.sort();
        got.sort();
        matches!(asking, Asking::Stored(_)) && want == got
    });
    let (known_claims, known_assigned) = match ahead {
        Some(a) => (Some(a.claims), Some(a.assigned)),
        None => (None, None),
    };
    let assigned = async {
        match known_assigned {
            Some(a) => Ok(a),
            None => assigned_numbers(state, &all).await,
        }
    };
    // the numbers databases and the claims at once
    let (assigned, claimed) =
        futures_util::future::join(assigned, claim(state, account_id, port_id, &all, asking, known_claims)).await;
    let claimed = claimed?;
    let assigned = match assigned {
        Ok(a) => a,
        Err(e) => {
            release(state, claimed.taken).await;
            return Err(e);
        }
    };
    for c in candidates {
        if let Some((request, account)) = claimed.held.get(&c.e164) {
            error(&mut errors, &c.raw, held_message(account == account_id, request));
        } else if assigned.contains_key(&c.e164) {
            error(&mut errors, &c.raw, EXISTS.to_owned());
        }
    }
    if !errors.is_empty() {
        release(state, claimed.taken).await;
        return Ok((errors, Taken::default()));
    }
    Ok((errors, claimed.taken))
}

/// The refusals `check` would give, found without claiming anything (a dry run): numbers in
/// service elsewhere, and numbers another open request holds.
pub async fn preview(
    state: &AppState,
    account_id: &str,
    port_id: &str,
    candidates: &[Candidate],
) -> Result<ValidationErrors, ApiError> {
    let mut errors = ValidationErrors::new();
    if candidates.is_empty() {
        return Ok(errors);
    }
    let all: Vec<String> = candidates.iter().map(|c| c.e164.clone()).collect();
    let ids: Vec<String> = all.iter().map(|n| claims::claim_id(n)).collect();
    let (current, assigned) =
        futures_util::future::join(state.couch.get_many(dbs::SERVICE, &ids), assigned_numbers(state, &all)).await;
    let (current, assigned) = (current?, assigned?);
    let holders = holders(state, &current, port_id).await?;
    let now = now_unix();
    for c in candidates {
        let existing = current.iter().find(|claim| claim["number"] == c.e164.as_str());
        let verdict = existing.map(|claim| {
            let holder = holders.iter().find(|h| h["_id"] == claim["port_request_id"]);
            claims::judge(claim, holder, &c.e164, port_id, now)
        });
        if let Some(claims::Verdict::Held { port_request_id, account_id: holder_account }) = verdict {
            error(&mut errors, &c.raw, held_message(holder_account == account_id, &port_request_id));
        } else if assigned.contains_key(&c.e164) {
            error(&mut errors, &c.raw, EXISTS.to_owned());
        }
    }
    Ok(errors)
}

/// The requests (other than `port_id`) that `claims` name, as they are now.
async fn holders(state: &AppState, claims: &[Value], port_id: &str) -> Result<Vec<Value>, StoreError> {
    let ids: Vec<String> = claims
        .iter()
        .filter_map(|c| c["port_request_id"].as_str())
        .filter(|id| *id != port_id)
        .map(str::to_owned)
        .collect();
    state.couch.get_many(dbs::PORT_REQUESTS, &ids).await
}

fn held_message(same_account: bool, request: &str) -> String {
    match (request, same_account) {
        ("", _) => BUSY.to_owned(),
        (_, true) => format!("{ON_A_REQUEST}{request}"),
        (_, false) => OTHER_ACCOUNT.to_owned(),
    }
}

/// What claiming found: the claims this request took now, and the numbers another request
/// holds (its id and account).
#[derive(Default)]
struct Claimed {
    taken: Taken,
    held: BTreeMap<String, (String, String)>,
}

/// Claims `e164s` for `port_id`: new claims are created, stale ones taken over with their
/// revision; a claim lost to a concurrent writer is looked at again.
async fn claim(
    state: &AppState,
    account_id: &str,
    port_id: &str,
    e164s: &[String],
    asking: Asking<'_>,
    known: Option<Vec<Value>>,
) -> Result<Claimed, StoreError> {
    let mut out = Claimed { taken: Taken { port_id: port_id.to_owned(), claims: Vec::new() }, ..Claimed::default() };
    match claim_rounds(state, account_id, port_id, e164s, asking, known, &mut out).await {
        Ok(()) => Ok(out),
        Err(e) => {
            // CouchDB failed half-way: give back what was taken
            release(state, std::mem::take(&mut out.taken)).await;
            Err(e)
        }
    }
}

async fn claim_rounds(
    state: &AppState,
    account_id: &str,
    port_id: &str,
    e164s: &[String],
    asking: Asking<'_>,
    mut known: Option<Vec<Value>>,
    out: &mut Claimed,
) -> Result<(), StoreError> {
    // a number whose claim was given back between our write and our read is claimed afresh;
    // each such round follows another request's refusal, so a few rounds settle every number
    const ROUNDS: usize = 10;
    let now = now_unix();
    let fresh = |n: &str| claims::claim_doc(n, port_id, account_id, now);
    let mut contested: Vec<String> = Vec::new();
    let mut docs: Vec<Value> = match asking {
        Asking::New => e164s.iter().map(|n| fresh(n)).collect(),
        // a stored request already holds most of its claims: read them first
        Asking::Stored(_) => {
            contested = e164s.to_vec();
            Vec::new()
        }
    };
    for round in 0..ROUNDS {
        if !docs.is_empty() {
            for (doc, result) in docs.iter().zip(state.couch.bulk_save(dbs::SERVICE, &docs).await?) {
                let (id, number) =
                    (doc["_id"].as_str().unwrap_or_default(), doc["number"].as_str().unwrap_or_default());
                match result {
                    Ok(rev) => out.taken.claims.push((id.to_owned(), rev)),
                    Err(StoreError::Conflict) => contested.push(number.to_owned()),
                    Err(e) => return Err(e),
                }
            }
            docs.clear();
        }
        if contested.is_empty() {
            break;
        }
        let current = match known.take() {
            Some(read_ahead) => read_ahead,
            None => {
                let ids: Vec<String> = contested.iter().map(|n| claims::claim_id(n)).collect();
                state.couch.get_many(dbs::SERVICE, &ids).await?
            }
        };
        let holders = holders(state, &current, port_id).await?;
        let last_round = round + 1 == ROUNDS;
        for number in std::mem::take(&mut contested) {
            let Some(existing) = current.iter().find(|c| c["number"] == number.as_str()) else {
                // free (or given back meanwhile): claim it, unless the rounds are over (then
                // someone is on it right now, and this request must not take it unclaimed)
                if last_round {
                    out.held.insert(number, (String::new(), String::new()));
                } else {
                    docs.push(fresh(&number));
                }
                continue;
            };
            let holder = holders.iter().find(|h| h["_id"] == existing["port_request_id"]);
            match claims::judge(existing, holder, &number, port_id, now) {
                claims::Verdict::Ours if asking.held_before(&number) || last_round => {}
                claims::Verdict::Ours => {
                    // another writer of this request took it and may give it back if its
                    // change is refused: take it over (one update of the revision read), so
                    // that giving it back meets a conflict, or this write does and claims afresh
                    let mut doc = fresh(&number);
                    doc["_rev"] = existing["_rev"].clone();
                    docs.push(doc);
                }
                claims::Verdict::Held { port_request_id, account_id } => {
                    out.held.insert(number, (port_request_id, account_id));
                }
                claims::Verdict::Stale if !last_round => {
                    let mut doc = fresh(&number);
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

/// Gives claims back, but not those of numbers the request holds as it stands: every writer of
/// a request counts a claim naming the request as its own, so the claim one writer took may
/// be what a rival writer of the same request (another edit, or a creation of the same id
/// through another instance) saved the number on. Best effort: a claim left behind is stale
/// once its request is seen not to hold the number, or after `claims::IN_FLIGHT_SECS` if the
/// request was never saved.
pub async fn release(state: &AppState, taken: Taken) {
    if taken.claims.is_empty() {
        return;
    }
    let request = match state.couch.get_settled(dbs::PORT_REQUESTS, &taken.port_id).await {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, "cannot give number claims back");
            return;
        }
    };
    let held = |claim_id: &str| {
        let number = claim_id.strip_prefix(claims::CLAIM_PREFIX).unwrap_or_default();
        request.as_ref().is_some_and(|r| claims::holds(r, number))
    };
    let docs: Vec<Value> = taken
        .claims
        .into_iter()
        .filter(|(id, _)| !held(id))
        .map(|(id, rev)| json!({"_id": id, "_rev": rev, "_deleted": true}))
        .collect();
    if docs.is_empty() {
        return;
    }
    if let Err(e) = state.couch.bulk_save(dbs::SERVICE, &docs).await {
        tracing::warn!(error = %e, "cannot give number claims back");
    }
}

/// Gives back the claims `port_id` holds on `e164s` (numbers it no longer has open), in the
/// background: a claim left behind is stale anyway.
pub fn release_later(state: &actix_web::web::Data<AppState>, port_id: &str, e164s: Vec<String>) {
    if e164s.is_empty() {
        return;
    }
    let (state, port_id) = (state.clone(), port_id.to_owned());
    tokio::spawn(async move {
        let ids: Vec<String> = e164s.iter().map(|n| claims::claim_id(n)).collect();
        let Ok(current) = state.couch.get_many(dbs::SERVICE, &ids).await else { return };
        let ours = current
            .iter()
            .filter(|c| c["port_request_id"] == port_id.as_str())
            .filter_map(|c| Some((c["_id"].as_str()?.to_owned(), c["_rev"].as_str()?.to_owned())))
            .collect();
        release(&state, Taken { port_id, claims: ours }).await;
    });
}

/// Makes the claims of an open request that has none for some of its numbers (one Kazoo or an
/// older version wrote). A number claimed by another request stays with that one.
pub async fn adopt(couch: &Couch, request: &Value) -> Result<usize, StoreError> {
    let (Some(port_id), Some(account_id)) = (request["_id"].as_str(), request["pvt_account_id"].as_str()) else {
        return Ok(0);
    };
    let now = now_unix();
    let docs: Vec<Value> = crate::domain::port_request::numbers(request)
        .iter()
        .map(|n| claims::claim_doc(n, port_id, account_id, now))
        .collect();
    Ok(couch.bulk_save(dbs::SERVICE, &docs).await?.into_iter().filter(Result::is_ok).count())
}

/// Makes the missing claims of every open request, from the `open_numbers` view (this is
/// start-up work, not a decision: a number claimed already keeps its claim). Returns how many
/// claims were made.
pub async fn adopt_all(couch: &Couch) -> Result<usize, StoreError> {
    const PAGE: u64 = 1000;
    let mut made = 0;
    let mut query = ViewQuery { limit: Some(PAGE + 1), ..ViewQuery::default() };
    loop {
        let rows = couch.view(dbs::PORT_REQUESTS, crate::couch::design::OWN_DDOC, "open_numbers", &query).await?;
        let now = now_unix();
        let docs: Vec<Value> = rows
            .iter()
            .take(PAGE as usize)
            .filter_map(|r| {
                let number = r.key.as_str()?;
                let account = r.value.get("account_id").and_then(Value::as_str).unwrap_or_default();
                Some(claims::claim_doc(number, r.id.as_deref()?, account, now))
            })
            .collect();
        made += couch.bulk_save(dbs::SERVICE, &docs).await?.into_iter().filter(Result::is_ok).count();
        match rows.get(PAGE as usize) {
            Some(next) => {
                query.start_key = Some(next.key.clone());
                query.start_key_doc_id = next.id.clone();
            }
            None => return Ok(made),
        }
    }
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
