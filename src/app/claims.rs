//! Is a number free to port? Not on another open request anywhere in the system, and not
//! assigned to an account in the numbers databases. Every number is checked, and each refusal
//! names the number as the client wrote it.
//!
//! The number claims are the index of open numbers: one document per number in the service's
//! database (`number_claim:+E164`), read by key, never through a view (a view can lag a write).
//! A request claims each of its numbers before it is saved; CouchDB lets one writer create a
//! document or update one revision, and on a cluster the writes know whether they won, so of
//! any number of requests racing for a number exactly one holds it. Claims for requests Kazoo
//! (or an older version) wrote are made by `jobs::claim_adoption`.
//!
//! What a change claimed is held by a `Claims` guard: given back when the change is refused
//! or fails before its write, kept when the write landed or its fate is unknown (`app::write`).

use super::error::{AppError, NumberRefused, NumberTaken};
use crate::domain::claims::{self, ClaimDoc, Verdict};
use crate::domain::documents::number::NumberDoc;
use crate::domain::documents::port_request::PortRequest;
use crate::domain::ids::AccountId;
use crate::domain::phone_number::PhoneNumber;
use crate::domain::port_request::Candidate;
use crate::domain::time::now_unix;
use crate::state::AppState;
use crate::store::{Couch, StoreError, ViewQuery, dbs, views};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The claims a change took for request `port_id` (id, revision), to give back unless the
/// change's write lands. Dropped without being settled (a change that failed half-way, a task
/// cancelled), they are given back in the background.
#[must_use]
pub struct Claims {
    state: Option<Arc<AppState>>,
    port_id: String,
    taken: Vec<(String, String)>,
}

impl Claims {
    /// Nothing taken.
    pub fn none() -> Self {
        Claims { state: None, port_id: String::new(), taken: Vec::new() }
    }

    fn new(state: &Arc<AppState>, port_id: &str) -> Self {
        Claims { state: Some(state.clone()), port_id: port_id.to_owned(), taken: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.taken.is_empty()
    }

    /// How many claims are held.
    pub fn len(&self) -> usize {
        self.taken.len()
    }

    /// The change's write landed, or its fate is unknown (the request may be saved with these
    /// numbers): the claims stay.
    pub fn keep(mut self) {
        self.taken.clear();
    }

    /// The change was refused: the claims go back now.
    pub async fn give_back(mut self) {
        let (Some(state), taken) = (self.state.take(), std::mem::take(&mut self.taken)) else { return };
        release(&state, &self.port_id, taken).await;
    }
}

impl Drop for Claims {
    /// Claims nobody settled (a change that failed between claiming and writing, or was
    /// cancelled) go back in the background, once any write of the change would have been
    /// decided: a CouchDB timeout later. `release` then keeps those the request holds.
    fn drop(&mut self) {
        let (Some(state), taken) = (self.state.take(), std::mem::take(&mut self.taken)) else { return };
        if taken.is_empty() {
            return;
        }
        let port_id = std::mem::take(&mut self.port_id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                tokio::time::sleep(state.couch.timeout() + std::time::Duration::from_secs(1)).await;
                release(&state, &port_id, taken).await
            });
        }
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
    Stored(&'a [PhoneNumber]),
}

impl Asking<'_> {
    /// Did the request hold `number` before this change? A claim naming the request on a
    /// number it did not hold is another writer's of the same request, who may still give it
    /// back.
    fn held_before(&self, number: &PhoneNumber) -> bool {
        matches!(self, Asking::Stored(held) if held.contains(number))
    }
}

/// The numbers among `numbers` that are assigned to an account in the numbers databases.
pub async fn assigned_numbers(couch: &Couch, numbers: &[PhoneNumber]) -> Result<Vec<PhoneNumber>, StoreError> {
    let mut by_db: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in numbers {
        by_db.entry(n.db_name()).or_default().push(n.to_string());
    }
    let reads = by_db.iter().map(|(db, ids)| couch.get_many(db, ids));
    let mut found = Vec::new();
    for docs in futures_util::future::try_join_all(reads).await? {
        for doc in docs.into_iter().filter_map(|d| serde_json::from_value::<NumberDoc>(d).ok()) {
            if doc.is_assigned()
                && let Ok(n) = PhoneNumber::exact(&doc.id)
            {
                found.push(n);
            }
        }
    }
    Ok(found)
}

/// The reads a stored request's check starts with (its claims and the numbers databases), made
/// ahead, at the same time as the request's own read, for the numbers it is expected to hold.
pub struct Ahead {
    numbers: Vec<PhoneNumber>,
    claims: Vec<ClaimDoc>,
    assigned: Vec<PhoneNumber>,
}

/// Reads ahead for `numbers` (`None` when either read fails: the check reads again).
pub async fn read_ahead(couch: &Couch, numbers: Vec<PhoneNumber>) -> Option<Ahead> {
    let ids: Vec<String> = numbers.iter().map(claims::claim_id).collect();
    let (claims, assigned) =
        futures_util::future::join(couch.get_docs::<ClaimDoc>(dbs::SERVICE, &ids), assigned_numbers(couch, &numbers))
            .await;
    Some(Ahead { numbers, claims: claims.ok()?, assigned: assigned.ok()? })
}

/// Checks every candidate for `account`'s request `port_id` and claims the ones it does not
/// hold yet. When any number is refused, the claims taken here are given back at once and the
/// refusals answered; otherwise the claims are returned, held until the change's write.
/// `ahead`: reads made ahead, used only when they were made for these very numbers.
pub async fn claim_numbers(
    state: &Arc<AppState>,
    account: &AccountId,
    port_id: &str,
    candidates: &[Candidate],
    asking: Asking<'_>,
    ahead: Option<Ahead>,
) -> Result<Claims, AppError> {
    let mut taken = Claims::new(state, port_id);
    if candidates.is_empty() {
        return Ok(taken);
    }
    let couch = &state.couch;
    let mut all: Vec<PhoneNumber> = candidates.iter().map(|c| c.number.clone()).collect();
    all.dedup();
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
            None => assigned_numbers(couch, &all).await,
        }
    };
    // the numbers databases and the claims at once
    let (assigned, held) =
        futures_util::future::join(assigned, claim(state, account, port_id, &all, asking, known_claims, &mut taken))
            .await;
    let held = held?;
    let assigned = assigned?;
    let refused = refusals(candidates, account, &held, &assigned);
    if !refused.is_empty() {
        taken.give_back().await;
        return Err(AppError::Numbers(refused));
    }
    Ok(taken)
}

/// Each candidate another request holds, or that is in service elsewhere.
fn refusals(
    candidates: &[Candidate],
    account: &AccountId,
    held: &BTreeMap<PhoneNumber, (String, String)>,
    assigned: &[PhoneNumber],
) -> Vec<NumberRefused> {
    let mut refused = Vec::new();
    for c in candidates {
        let why = if let Some((request, holder_account)) = held.get(&c.number) {
            Some(match (request.as_str(), holder_account == account.as_str()) {
                ("", _) => NumberTaken::Busy,
                (_, true) => NumberTaken::OnRequest(request.clone()),
                (_, false) => NumberTaken::OtherAccount,
            })
        } else if assigned.contains(&c.number) {
            Some(NumberTaken::InService)
        } else {
            None
        };
        if let Some(why) = why {
            refused.push(NumberRefused { raw: c.raw.clone(), why });
        }
    }
    refused
}

/// The refusals `claim_numbers` would give, found without claiming anything (a dry run):
/// numbers in service elsewhere, and numbers another open request holds.
pub async fn preview(
    state: &AppState,
    account: &AccountId,
    port_id: &str,
    candidates: &[Candidate],
) -> Result<Vec<NumberRefused>, AppError> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let couch = &state.couch;
    let all: Vec<PhoneNumber> = candidates.iter().map(|c| c.number.clone()).collect();
    let ids: Vec<String> = all.iter().map(claims::claim_id).collect();
    let (current, assigned) =
        futures_util::future::join(couch.get_docs::<ClaimDoc>(dbs::SERVICE, &ids), assigned_numbers(couch, &all)).await;
    let (current, assigned) = (current?, assigned?);
    let holders = holders(state, &current, port_id).await?;
    let now = now_unix();
    let mut held = BTreeMap::new();
    for n in &all {
        if let Some(claim) = current.iter().find(|c| c.number == n.as_str()) {
            let holder = holders.iter().find(|h| h.id.as_str() == claim.port_request_id);
            if let Verdict::Held { port_request_id, account_id } = claims::judge(claim, holder, n, port_id, now) {
                held.insert(n.clone(), (port_request_id, account_id));
            }
        }
    }
    Ok(refusals(candidates, account, &held, &assigned))
}

/// The requests (other than `port_id`) that `claims` name, as they are now.
async fn holders(state: &AppState, claims: &[ClaimDoc], port_id: &str) -> Result<Vec<PortRequest>, StoreError> {
    let ids: Vec<String> =
        claims.iter().map(|c| c.port_request_id.clone()).filter(|id| id != port_id && !id.is_empty()).collect();
    state.port_requests.load_many(&ids).await
}

/// Claims `numbers` for `port_id` into `taken`: new claims are created, stale ones taken over
/// with their revision; a claim lost to a concurrent writer is looked at again. Returns the
/// numbers another request holds (its id and account). When CouchDB fails half-way, what was
/// taken goes back with `taken`'s guard.
async fn claim(
    state: &AppState,
    account: &AccountId,
    port_id: &str,
    numbers: &[PhoneNumber],
    asking: Asking<'_>,
    mut known: Option<Vec<ClaimDoc>>,
    taken: &mut Claims,
) -> Result<BTreeMap<PhoneNumber, (String, String)>, StoreError> {
    // a number whose claim was given back between our write and our read is claimed afresh;
    // each such round follows another request's refusal, so a few rounds settle every number
    const ROUNDS: usize = 10;
    let couch = &state.couch;
    let now = now_unix();
    let fresh = |n: &PhoneNumber| claims::claim_doc(n, port_id, account, now);
    let mut held = BTreeMap::new();
    let mut contested: Vec<PhoneNumber> = Vec::new();
    let mut docs: Vec<ClaimDoc> = match asking {
        Asking::New => numbers.iter().map(fresh).collect(),
        // a stored request already holds most of its claims: read them first
        Asking::Stored(_) => {
            contested = numbers.to_vec();
            Vec::new()
        }
    };
    for round in 0..ROUNDS {
        if !docs.is_empty() {
            for (doc, result) in docs.iter().zip(couch.bulk_save_docs(dbs::SERVICE, &docs).await?) {
                match result {
                    Ok(rev) => taken.taken.push((doc.id.clone(), rev)),
                    Err(StoreError::Conflict) => contested.extend(PhoneNumber::exact(&doc.number)),
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
                let ids: Vec<String> = contested.iter().map(claims::claim_id).collect();
                couch.get_docs::<ClaimDoc>(dbs::SERVICE, &ids).await?
            }
        };
        let holders = holders(state, &current, port_id).await?;
        let last_round = round + 1 == ROUNDS;
        for number in std::mem::take(&mut contested) {
            let Some(existing) = current.iter().find(|c| c.number == number.as_str()) else {
                // free (or given back meanwhile): claim it, unless the rounds are over (then
                // someone is on it right now, and this request must not take it unclaimed)
                if last_round {
                    held.insert(number, (String::new(), String::new()));
                } else {
                    docs.push(fresh(&number));
                }
                continue;
            };
            let holder = holders.iter().find(|h| h.id.as_str() == existing.port_request_id);
            let take_over = |existing: &ClaimDoc| {
                let mut doc = fresh(&number);
                doc.rev = existing.rev.clone();
                doc
            };
            match claims::judge(existing, holder, &number, port_id, now) {
                Verdict::Ours if asking.held_before(&number) || last_round => {}
                // another writer of this request took it and may give it back if its change is
                // refused: take it over (one update of the revision read), so that giving it
                // back meets a conflict, or this write does and claims afresh
                Verdict::Ours => docs.push(take_over(existing)),
                Verdict::Held { port_request_id, account_id } => {
                    held.insert(number, (port_request_id, account_id));
                }
                Verdict::Stale if !last_round => docs.push(take_over(existing)),
                // writers in a row beat us to it: someone else is on it right now
                Verdict::Stale => {
                    held.insert(number, (existing.port_request_id.clone(), existing.account_id.clone()));
                }
            }
        }
    }
    Ok(held)
}

/// Gives claims back, but not those of numbers the request holds as it stands: every writer of
/// a request counts a claim naming the request as its own, so the claim one writer took may
/// be what a rival writer of the same request (another edit, or a creation of the same id
/// through another instance) saved the number on. Best effort: a claim left behind is stale
/// once its request is seen not to hold the number, or after `claims::IN_FLIGHT_SECS` if the
/// request was never saved.
async fn release(state: &AppState, port_id: &str, taken: Vec<(String, String)>) {
    if taken.is_empty() {
        return;
    }
    let request = match state.port_requests.load_settled(port_id).await {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, "cannot give number claims back");
            return;
        }
    };
    let held =
        |claim_id: &str| claims::number_of(claim_id).is_some_and(|n| request.as_ref().is_some_and(|r| r.holds(&n)));
    let gone: Vec<serde_json::Value> = taken
        .into_iter()
        .filter(|(id, _)| !held(id))
        .map(|(id, rev)| serde_json::json!({"_id": id, "_rev": rev, "_deleted": true}))
        .collect();
    if gone.is_empty() {
        return;
    }
    if let Err(e) = state.couch.bulk_save(dbs::SERVICE, &gone).await {
        tracing::warn!(error = %e, "cannot give number claims back");
    }
}

/// Gives back the claims `port_id` holds on `numbers` (numbers it no longer has open), in the
/// background: a claim left behind is stale anyway.
pub fn release_later(state: &Arc<AppState>, port_id: &str, numbers: Vec<PhoneNumber>) {
    if numbers.is_empty() {
        return;
    }
    let (state, port_id) = (state.clone(), port_id.to_owned());
    tokio::spawn(async move {
        let ids: Vec<String> = numbers.iter().map(claims::claim_id).collect();
        let Ok(current) = state.couch.get_docs::<ClaimDoc>(dbs::SERVICE, &ids).await else { return };
        let ours = current
            .into_iter()
            .filter(|c| c.port_request_id == port_id)
            .filter_map(|c| Some((c.id, c.rev.get()?.clone())))
            .collect();
        release(&state, &port_id, ours).await;
    });
}

/// Makes the claims of an open request that has none for some of its numbers (one Kazoo or an
/// older version wrote). A number claimed by another request stays with that one.
pub async fn adopt(couch: &Couch, request: &PortRequest) -> Result<usize, StoreError> {
    let Some(account) = request.owner() else { return Ok(0) };
    let now = now_unix();
    let docs: Vec<ClaimDoc> =
        request.held_numbers().iter().map(|n| claims::claim_doc(n, request.id.as_str(), account, now)).collect();
    Ok(couch.bulk_save_docs(dbs::SERVICE, &docs).await?.into_iter().filter(Result::is_ok).count())
}

/// Makes the missing claims of every open request, from the `open_numbers` view (this is
/// start-up work, not a decision: a number claimed already keeps its claim). Returns how many
/// claims were made.
pub async fn adopt_all(couch: &Couch) -> Result<usize, StoreError> {
    const PAGE: u64 = 1000;
    let mut made = 0;
    let mut query = ViewQuery { limit: Some(PAGE + 1), ..ViewQuery::default() };
    loop {
        let rows = couch.view(dbs::PORT_REQUESTS, views::OWN_DDOC, "open_numbers", &query).await?;
        let now = now_unix();
        let docs: Vec<ClaimDoc> = rows
            .iter()
            .take(PAGE as usize)
            .filter_map(|r| {
                let number = PhoneNumber::exact(r.key.as_str()?).ok()?;
                let account = r.value.get("account_id").and_then(|a| a.as_str()).and_then(AccountId::from_any)?;
                Some(claims::claim_doc(&number, r.id.as_deref()?, &account, now))
            })
            .collect();
        made += couch.bulk_save_docs(dbs::SERVICE, &docs).await?.into_iter().filter(Result::is_ok).count();
        match rows.get(PAGE as usize) {
            Some(next) => {
                query.start_key = Some(next.key.clone());
                query.start_key_doc_id = next.id.clone();
            }
            None => return Ok(made),
        }
    }
}
