//! The changes of a port request, in crossbar's order: load CouchDB's current revision,
//! validate and authorize everything, then one write that carries the change and the events it
//! notifies (`pvt_events`). Nothing is written before or beside the request for notifying, so a
//! refused change leaves nothing behind, and a saved one cannot lose its notifications.
//!
//! A change whose write meets a concurrent change of the same request (409) is made again on
//! the new revision, as if it had arrived a moment later, unless the client pinned the revision
//! with `If-Match` or it is a full replace (`POST`), which made again would undo the other
//! writer's fields: those answer 409.

use super::numbers::{self, Asking, Candidate, Taken};
use super::{completion, is_authority, load_in_scope};
use crate::auth::Caller;
use crate::directory::Account;
use crate::domain::comments;
use crate::domain::events::{self, Event, What};
use crate::domain::ids::{AccountId, new_doc_id};
use crate::domain::number_progress::{self, NumberMoveError};
use crate::domain::phone_number::to_e164;
use crate::domain::port_request::{
    self as pr, client_fields, normalize_numbers, public_fields, record_transition, transition_entry, with_public,
};
use crate::domain::port_state::{PortState, Role, TransitionError, TransitionPolicy};
use crate::domain::schedule::{ScheduleError, scheduled_date};
use crate::domain::time::now_gregorian;
use crate::error::{ApiError, IntoResult, ValidationErrors};
use crate::schema::{self, Schema};
use crate::state::AppState;
use actix_web::web;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// What a change was asked with.
pub struct Request<'a> {
    pub state: &'a web::Data<AppState>,
    pub caller: &'a Caller,
    pub request_id: &'a str,
    pub if_match: Option<&'a str>,
    /// The body's `data`.
    pub data: &'a Value,
    /// `reason`, from the query string or the body.
    pub reason: Option<String>,
    /// `accept_charges=true` was given.
    pub accept_charges: bool,
}

/// A change's outcome: the saved document, and whether the caller sees private comments.
pub struct Saved {
    pub doc: Value,
    pub is_authority: bool,
}

/// How often a change is made again after meeting a concurrent one.
pub(crate) const ATTEMPTS: usize = 12;

/// The pause before attempt `n + 1` of a change that met a concurrent one: the winner of the
/// race is saving right now, so let it, then look again. It doubles from 5 ms, with
/// jitter so the losers do not meet again, up to 250 ms; twelve attempts span about 1.5 s, enough
/// for a few dozen writers of one request on a busy cluster to take their turns.
pub(crate) async fn pause_after_conflict(n: usize) {
    let base = (5u64 << (n.saturating_sub(1)).min(6)).min(250);
    let pause = base / 2 + rand::random::<u64>() % base.max(1);
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

/// Makes `attempt`, a change of request `id`, after the changes of it this instance is making
/// already, and again after a 409, unless the client pinned the revision.
pub(crate) async fn again_on_conflict<T>(
    req: &Request<'_>,
    id: &str,
    attempt: impl AsyncFn() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let _place = req.state.writes.enter(id, req.state.couch.timeout()).await;
    for n in 1.. {
        match attempt().await {
            Err(ApiError::Conflict) if req.if_match.is_none() && n < ATTEMPTS => pause_after_conflict(n).await,
            other => return other,
        }
    }
    unreachable!("the loop returns")
}

/// The body's `data` as an object (Kazoo's 400 otherwise).
pub fn data_object(data: &Value) -> Result<&Value, ApiError> {
    match data {
        d @ Value::Object(_) => Ok(d),
        other => Err(ApiError::validation(
            "data",
            "type",
            json!({ "message": "Value did not match type(s): object", "target": "object", "value": other }),
        )),
    }
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

fn webhook_url(doc: &Value) -> Option<&str> {
    doc.get("notifications").and_then(|n| n.pointer("/webhook/url")).and_then(Value::as_str)
}

/// Schema, numbers, schedule and webhook checks of a candidate document; normalises the
/// numbers and computes `scheduled_date` in place. Returns the numbers as written.
/// `ported`: the request is completed, so its `numbers` may be empty.
async fn validate_public(
    state: &AppState,
    public: &mut Map<String, Value>,
    ported: bool,
) -> Result<Vec<Candidate>, ApiError> {
    let mut errors = ValidationErrors::new();
    // a numbers entry's `_*` keys are the service's (per-number progress): never a client's
    if let Some(Value::Object(nums)) = public.get_mut("numbers") {
        number_progress::strip_reserved(nums);
    }
    if let Err(mut e) = schema::validate(Schema::PortRequest, &Value::Object(public.clone())) {
        if ported {
            // a completed request keeps `numbers: {}`; its numbers are in pvt_ported_numbers
            e.remove("numbers");
        }
        errors.merge(e);
    }
    let mut candidates = Vec::new();
    if let Some(Value::Object(nums)) = public.get("numbers") {
        candidates =
            nums.keys().filter_map(|raw| to_e164(raw).map(|e164| Candidate { raw: raw.clone(), e164 })).collect();
        match normalize_numbers(nums) {
            Ok(normalized) => {
                public.insert("numbers".into(), Value::Object(normalized));
            }
            Err(e) => errors.merge(e),
        }
    }
    if let Some(on) = public.get("schedule_on")
        && let (Some(dt), Some(tz)) =
            (on.get("date_time").and_then(Value::as_str), on.get("timezone").and_then(Value::as_str))
    {
        match scheduled_date(dt, tz) {
            Ok(at) => {
                public.insert("scheduled_date".into(), json!(at));
            }
            Err(ScheduleError::UnknownTimezone) => errors.add(
                "schedule_on.timezone",
                "enum",
                json!({ "message": "Value not found in enumerated list of values", "value": tz }),
            ),
            Err(ScheduleError::BadDateTime) => errors.add(
                "schedule_on.date_time",
                "pattern",
                json!({ "message": "Failed to match pattern 'YYYY-MM-DD HH:MM' (a real date and time)", "value": dt }),
            ),
        }
    }
    let hook = public.get("notifications").and_then(|n| n.pointer("/webhook/url")).and_then(Value::as_str);
    match hook {
        Some(url) if !is_http_url(url) => errors.add(
            "notifications.webhook.url",
            "wrong_format",
            json!({ "message": "Field is not in the correct format", "format": "http(s) URL", "value": url }),
        ),
        Some(url) if !state.settings.outbox.allow_private_webhooks => {
            if let Err(why) = crate::webhook::check_target(url, false).await {
                errors.add("notifications.webhook.url", "forbidden", json!({ "message": why, "value": url }));
            }
        }
        _ => {}
    }
    errors.into_result()?;
    Ok(candidates)
}

/// New comments checked for privacy and completed with their author; returns the full,
/// sorted list to store (stored comments are never dropped) and the new ones.
async fn merge_comments(
    req: &Request<'_>,
    stored: &[Value],
    requested: &[Value],
    all_new: bool,
    is_auth: bool,
) -> Result<(Vec<Value>, Vec<Value>), ApiError> {
    let stored: Vec<Value> = stored.iter().cloned().map(comments::migrate).collect();
    let new = if all_new { requested.to_vec() } else { comments::new_comments(requested, &stored) };
    if new.is_empty() {
        return Ok((stored, new));
    }
    schema::validate(Schema::Comments, &json!({ "comments": new })).map_err(ApiError::Validation)?;
    match comments::check_privacy(&new, is_auth) {
        Ok(()) => {}
        Err(comments::PrivacyViolation::NotAllowed) => {
            return Err(ApiError::Forbidden(Some(json!({ "comments": { "forbidden": {
                "message": "you're not allowed to make private comment or set action_required",
                "cause": "comments" } } }))));
        }
        Err(comments::PrivacyViolation::PrivateActionRequired) => {
            return Err(ApiError::validation(
                "comments",
                "rejected",
                json!({ "message": "setting action_required on private comment is not allowed", "cause": "comments" }),
            ));
        }
    }
    let by = super::commenter(req.state, req.caller).await?;
    let new: Vec<Value> = new.iter().map(|c| comments::enrich(c, &by)).collect();
    let mut all = stored;
    all.extend(new.iter().cloned());
    comments::sort(&mut all);
    Ok((all, new))
}

/// An edit validated and ready to store.
struct Edit {
    public: Map<String, Value>,
    candidates: Vec<Candidate>,
    numbers_changed: bool,
    /// Comments added by this edit, as stored (they are notified).
    new_comments: Vec<Value>,
}

/// Validates a new public part for `doc`: schema, numbers, schedule, comments.
async fn prepare_edit(
    req: &Request<'_>,
    doc: &Value,
    mut public: Map<String, Value>,
    is_auth: bool,
) -> Result<Edit, ApiError> {
    let ported = PortState::of_doc(doc) == PortState::Completed;
    let candidates = validate_public(req.state, &mut public, ported).await?;
    let requested = public.get("comments").and_then(Value::as_array).cloned().unwrap_or_default();
    let (all, new_comments) = merge_comments(req, &comments::of(doc), &requested, false, is_auth).await?;
    if all.is_empty() {
        public.remove("comments");
    } else {
        public.insert("comments".into(), Value::Array(all));
    }
    let mut before = pr::numbers(doc);
    let mut after: Vec<String> =
        public.get("numbers").and_then(Value::as_object).map(|n| n.keys().cloned().collect()).unwrap_or_default();
    before.sort();
    after.sort();
    Ok(Edit { public, candidates, numbers_changed: before != after, new_comments })
}

fn not_updatable(state: PortState) -> ApiError {
    ApiError::validation(
        state.as_str(),
        "type",
        json!({ "message": "Updating port requests not allowed in current port state", "cause": state }),
    )
}

/// Checks and claims `candidates` for the stored request `doc` (with the reads made `ahead`).
async fn check_numbers(
    req: &Request<'_>,
    doc: &Value,
    candidates: &[Candidate],
    ahead: Option<numbers::Ahead>,
) -> Result<Taken, ApiError> {
    let owner = doc.get("pvt_account_id").and_then(Value::as_str).unwrap_or_default();
    let id = doc.get("_id").and_then(Value::as_str).unwrap_or_default();
    let held = pr::numbers(doc);
    let (errors, taken) = numbers::check(req.state, owner, id, candidates, Asking::Stored(&held), ahead).await?;
    errors.into_result()?;
    Ok(taken)
}

/// An event of this change, for the queue of this instance.
pub(crate) fn event(req: &Request<'_>, doc: &Value, at: i64, what: What) -> Event {
    Event {
        id: new_doc_id(),
        queue: req.state.settings.outbox.queue.clone(),
        at,
        what,
        webhook_url: webhook_url(doc).map(str::to_owned),
    }
}

fn comment_events(req: &Request<'_>, doc: &Value, new_comments: &[Value]) -> Vec<Event> {
    new_comments
        .iter()
        .map(|c| {
            let at = c.get("timestamp").and_then(Value::as_i64).unwrap_or_else(now_gregorian);
            event(req, doc, at, What::Comment { comment: c.clone() })
        })
        .collect()
}

/// Refreshes `pvt_tree` from the owner and stamps the private fields; records the events;
/// saves. A refused save gives back the claims this change took; a save whose fate is unknown
/// (CouchDB went away) keeps them, since the request may be there.
pub(crate) async fn commit(
    req: &Request<'_>,
    mut doc: Value,
    new_events: &[Event],
    taken: Taken,
) -> Result<Value, ApiError> {
    let state = req.state;
    if let Some(owner) = doc.get("pvt_account_id").and_then(Value::as_str).and_then(AccountId::from_any)
        && let Some(account) = state.directory.account(&owner).await?
    {
        doc["pvt_tree"] = json!(account.tree());
    }
    pr::stamp(&mut doc, &stamp_of(req));
    // a signature holds only for the letter that was signed
    crate::domain::customer::void_if_changed(&mut doc, now_gregorian());
    events::record(&mut doc, new_events);
    match super::save(state, &mut doc).await {
        Ok(_) => Ok(doc),
        Err(ApiError::Conflict) => {
            numbers::release(state, taken).await;
            Err(ApiError::Conflict)
        }
        Err(e) => Err(e),
    }
}

fn stamp_of<'a>(req: &'a Request<'_>) -> pr::Stamp<'a> {
    pr::Stamp {
        now: now_gregorian(),
        request_id: req.request_id,
        auth_account_id: req.caller.account_id().as_str(),
        auth_user_id: req.caller.owner_id.as_deref(),
    }
}

/// The numbers `before` had open that `after` does not hold open any more: their claims go.
fn released_numbers(before: &Value, after: &Value) -> Vec<String> {
    let still: Vec<String> = if PortState::of_doc(after).is_open() && after.get("pvt_deleted") != Some(&json!(true)) {
        pr::numbers(after)
    } else {
        Vec::new()
    };
    pr::numbers(before).into_iter().filter(|n| !still.contains(n)).collect()
}

fn release_unheld(req: &Request<'_>, before: &Value, after: &Value) {
    let id = before.get("_id").and_then(Value::as_str).unwrap_or_default();
    numbers::release_later(req.state, id, released_numbers(before, after));
}

/// What creating request `id` from `public` would refuse, found without writing anything (an
/// import's check): the fields, and its numbers as the claims and numbers databases stand.
pub async fn check_new(
    req: &Request<'_>,
    account: &Account,
    public: Map<String, Value>,
    id: &str,
) -> Result<(), ApiError> {
    let mut public = client_fields(&Value::Object(public));
    let candidates = validate_public(req.state, &mut public, false).await?;
    numbers::preview(req.state, account.id.as_str(), id, &candidates).await?.into_result()
}

/// `PUT /v2/accounts/{A}/port_requests`: a new request from its public fields, checked like any
/// other; with `submit` (a reason) it is submitted in the same write, as the Fone Dynamics API
/// does.
pub async fn create(
    req: &Request<'_>,
    account: &Account,
    mut public: Map<String, Value>,
    id: String,
    submit: Option<&str>,
) -> Result<Saved, ApiError> {
    let state = req.state;
    let candidates = validate_public(state, &mut public, false).await?;
    let authority = super::find_authority(&state.directory, account).await?;
    let is_auth = req.caller.is_superduper_admin() || req.caller.account_id() == &authority;
    let requested = public.get("comments").and_then(Value::as_array).cloned().unwrap_or_default();
    let (all_comments, new_comments) = merge_comments(req, &[], &requested, true, is_auth).await?;
    if !all_comments.is_empty() {
        public.insert("comments".into(), Value::Array(all_comments));
    }
    let (errors, taken) = numbers::check(state, account.id.as_str(), &id, &candidates, Asking::New, None).await?;
    errors.into_result()?;

    let built = async {
        let actor = super::actor(state, req.caller).await?;
        let mut doc = Value::Object(public);
        doc["_id"] = json!(id);
        doc["pvt_type"] = json!("port_request");
        doc["pvt_port_state"] = json!(PortState::Unconfirmed);
        doc["pvt_account_id"] = json!(account.id);
        doc["pvt_account_name"] = json!(account.name());
        doc["pvt_port_authority"] = json!(authority);
        doc["pvt_port_authority_name"] = json!(super::account_name(&state.directory, &authority).await?);
        let at = now_gregorian();
        doc["pvt_transitions"] = json!([transition_entry(None, PortState::Unconfirmed, &actor, None, at)]);
        let mut new_events = comment_events(req, &doc, &new_comments);
        if let Some(reason) = submit {
            let count = doc.get("numbers").and_then(Value::as_object).map_or(0, |n| n.len());
            if let Some(per_number) = state.settings.port_activation_charge {
                // an API that submits at once accepts the configured charge; it is recorded
                doc["pvt_accepted_charges"] = accepted_charges(req, per_number, count, at);
            }
            let entry = transition_entry(Some(PortState::Unconfirmed), PortState::Submitted, &actor, Some(reason), at);
            record_transition(&mut doc, PortState::Submitted, entry);
            let what =
                transition_what(req, &doc, PortState::Unconfirmed, PortState::Submitted, Some(reason), &actor).await?;
            new_events.push(event(req, &doc, at, what));
        }
        Ok::<_, ApiError>((doc, new_events))
    };
    match built.await {
        Ok((doc, new_events)) => Ok(Saved { doc: commit(req, doc, &new_events, taken).await?, is_authority: is_auth }),
        Err(e) => {
            // nothing was saved: the numbers are free again at once
            numbers::release(state, taken).await;
            Err(e)
        }
    }
}

/// `POST /{id}`: full replace of the public fields, only while unconfirmed or rejected
/// (superduper admins excepted).
pub async fn replace(req: &Request<'_>, account: &Account, id: &str) -> Result<Saved, ApiError> {
    let _place = req.state.writes.enter(id, req.state.couch.timeout()).await;
    let doc = load_in_scope(req.state, account, id).await?;
    super::check_if_match(req.if_match, &doc)?;
    let current = PortState::of_doc(&doc);
    if !current.is_editable() && !req.caller.is_superduper_admin() {
        return Err(not_updatable(current));
    }
    let is_auth = is_authority(req.caller, &doc);
    let edit = prepare_edit(req, &doc, client_fields(data_object(req.data)?), is_auth).await?;
    let taken = check_numbers(req, &doc, &edit.candidates, None).await?;
    let new_doc = with_public(&doc, edit.public);
    let new_events = comment_events(req, &new_doc, &edit.new_comments);
    let saved = commit(req, new_doc, &new_events, taken).await?;
    release_unheld(req, &doc, &saved);
    Ok(Saved { doc: saved, is_authority: is_auth })
}

/// The stored public part with the request's fields merged in (PATCH semantics).
fn patched_public(doc: &Value, data: &Value) -> Map<String, Value> {
    let mut public = public_fields(doc);
    public.remove("id");
    pr::merge_patch(&mut public, &client_fields(data));
    public
}

/// `PATCH /{id}`: deep merge; changing the numbers follows the same rules as POST.
pub async fn patch(req: &Request<'_>, account: &Account, id: &str) -> Result<Saved, ApiError> {
    again_on_conflict(req, id, async || {
        let doc = load_in_scope(req.state, account, id).await?;
        super::check_if_match(req.if_match, &doc)?;
        let is_auth = is_authority(req.caller, &doc);
        let edit = prepare_edit(req, &doc, patched_public(&doc, data_object(req.data)?), is_auth).await?;
        let mut taken = Taken::default();
        if edit.numbers_changed {
            let current = PortState::of_doc(&doc);
            if !current.is_editable() && !req.caller.is_superduper_admin() {
                return Err(not_updatable(current));
            }
            taken = check_numbers(req, &doc, &edit.candidates, None).await?;
        }
        let new_doc = with_public(&doc, edit.public);
        let new_events = comment_events(req, &new_doc, &edit.new_comments);
        let saved = commit(req, new_doc, &new_events, taken).await?;
        release_unheld(req, &doc, &saved);
        Ok(Saved { doc: saved, is_authority: is_auth })
    })
    .await
}

fn transition_error(e: TransitionError, to: PortState) -> ApiError {
    let message = match e {
        TransitionError::NotAllowed => {
            "you're not allowed to change to new state from current state, please contact your port authority"
        }
        TransitionError::InvalidFromState => "Cannot move to new state from current state",
    };
    ApiError::validation("port_state", "enum", json!({ "message": message, "cause": to }))
}

async fn transition_policy(state: &AppState) -> Result<TransitionPolicy, ApiError> {
    let allow = match state.settings.allow_submitted_to_scheduled {
        Some(v) => v,
        None => state
            .directory
            .config_value("number_manager", "allow_port_transition_from_submitted_to_scheduled")
            .await?
            .is_some_and(|v| v == json!(true) || v == json!("true")),
    };
    Ok(TransitionPolicy { allow_submitted_to_scheduled: allow })
}

fn accepted_charges(req: &Request<'_>, per_number: f64, numbers: usize, at: i64) -> Value {
    json!({
        "activation_charges": crate::domain::charges::amount(per_number, numbers),
        "per_number": per_number,
        "numbers": numbers,
        "accepted_by": { "account_id": req.caller.account_id(), "user_id": req.caller.owner_id },
        "timestamp": at,
    })
}

/// 402 until the per-number port charge is accepted; returns what to record once it is.
fn check_charges(req: &Request<'_>, doc: &Value, number_count: usize) -> Result<Option<Value>, ApiError> {
    let Some(per_number) = req.state.settings.port_activation_charge else { return Ok(None) };
    let amount = crate::domain::charges::amount(per_number, number_count);
    let already = doc.pointer("/pvt_accepted_charges/activation_charges").and_then(Value::as_f64).unwrap_or(-1.0);
    if already >= amount {
        return Ok(None);
    }
    if !req.accept_charges {
        let vendor = doc.get("pvt_port_authority").and_then(Value::as_str).unwrap_or_default();
        return Err(ApiError::AcceptCharges(crate::domain::charges::quote(per_number, number_count, vendor)));
    }
    Ok(Some(accepted_charges(req, per_number, number_count, now_gregorian())))
}

/// The event of a move: what the templates say about it, and whether the submission is pushed
/// to the owner's `submitted_port_requests_url`.
async fn transition_what(
    req: &Request<'_>,
    doc: &Value,
    from: PortState,
    to: PortState,
    reason: Option<&str>,
    actor: &pr::Actor,
) -> Result<What, ApiError> {
    let carrier_push = to == PortState::Submitted && {
        match doc.get("pvt_account_id").and_then(Value::as_str).and_then(AccountId::from_any) {
            Some(o) => {
                req.state.directory.account(&o).await?.is_some_and(|a| a.doc["submitted_port_requests_url"].is_string())
            }
            None => false,
        }
    };
    let reason_author = actor.reason_author();
    Ok(What::Transition {
        state: to,
        previous: Some(from),
        reason: reason.filter(|r| !r.is_empty()).map(str::to_owned),
        reason_author,
        carrier_push,
    })
}

/// `PATCH /{id}/{state}`: body fields and comments are merged first, then the move.
pub async fn move_to(req: &Request<'_>, account: &Account, id: &str, to: PortState) -> Result<Saved, ApiError> {
    again_on_conflict(req, id, async || move_once(req, account, id, to).await).await
}

async fn move_once(req: &Request<'_>, account: &Account, id: &str, to: PortState) -> Result<Saved, ApiError> {
    let state = req.state;
    // a submission checks the request's numbers: their reads go out with the request's own,
    // for the numbers the copy read last says it holds (used only if CouchDB's agrees)
    let guess = (to == PortState::Submitted).then(|| state.docs.get(id)).flatten().map(|d| pr::numbers(&d));
    let (doc, ahead) = futures_util::future::join(load_in_scope(state, account, id), async {
        match guess {
            Some(numbers) if !numbers.is_empty() => numbers::read_ahead(state, numbers).await,
            _ => None,
        }
    })
    .await;
    let doc = doc?;
    super::check_if_match(req.if_match, &doc)?;
    let from = PortState::of_doc(&doc);
    let is_auth = is_authority(req.caller, &doc);
    // the state machine decides first: a refused move is refused whatever the body says
    let role = if is_auth { Role::Authority } else { Role::Member };
    transition_policy(state).await?.check(from, to, role).map_err(|e| transition_error(e, to))?;
    let edit = prepare_edit(req, &doc, patched_public(&doc, data_object(req.data)?), is_auth).await?;
    if edit.numbers_changed && !from.is_editable() && !req.caller.is_superduper_admin() {
        return Err(not_updatable(from));
    }
    if to == PortState::Scheduled {
        schema::validate(Schema::ToScheduled, &Value::Object(edit.public.clone())).map_err(ApiError::Validation)?;
    }
    let mut charges = None;
    let mut taken = Taken::default();
    if to == PortState::Submitted || edit.numbers_changed {
        let candidates = if edit.numbers_changed {
            edit.candidates.clone()
        } else {
            pr::numbers(&doc).into_iter().map(|n| Candidate { raw: n.clone(), e164: n }).collect()
        };
        taken = check_numbers(req, &doc, &candidates, if edit.numbers_changed { None } else { ahead }).await?;
        if to == PortState::Submitted {
            let count = edit.public.get("numbers").and_then(Value::as_object).map_or(0, |n| n.len());
            charges = match check_charges(req, &doc, count) {
                Ok(c) => c,
                Err(e) => {
                    numbers::release(state, taken).await;
                    return Err(e);
                }
            };
        }
    }

    let mut new_doc = with_public(&doc, edit.public);
    if let Some(accepted) = charges {
        new_doc["pvt_accepted_charges"] = accepted;
    }
    let actor = super::actor(state, req.caller).await?;
    let at = now_gregorian();
    let reason = req.reason.as_deref();
    // a move of the request moves every number still on it
    number_progress::clear_for_request_move(&mut new_doc);
    record_transition(&mut new_doc, to, transition_entry(Some(from), to, &actor, reason, at));
    // new comments first, as Kazoo sends them
    let mut new_events = comment_events(req, &new_doc, &edit.new_comments);
    let what = transition_what(req, &new_doc, from, to, reason, &actor).await?;
    new_events.push(event(req, &new_doc, at, what));

    let saved = if to == PortState::Completed {
        let numbers = new_doc.clone();
        completion::clear_numbers(&mut new_doc);
        complete(req, id, &numbers, new_doc, &new_events, taken).await?
    } else {
        commit(req, new_doc, &new_events, taken).await?
    };
    release_unheld(req, &doc, &saved);
    Ok(Saved { doc: saved, is_authority: is_auth })
}

/// Completion: the number documents of both databases (with the attempt's journal) first, at
/// once, then the request; the all-or-nothing rule allows no more overlap, since a number found
/// taken must leave the request where it was. If a number cannot be written nothing is left
/// behind and the request stays where it was; if the request's write is refused, the number
/// documents are undone unless someone else completed it meanwhile. If its fate is unknown
/// (CouchDB went away under it) or this process dies before it, the journal leads the repair
/// pass (`completion::repair`) to undo them unless the request turns out saved completed.
///
/// `activated` is the request with the numbers to activate in `numbers` (all of them, or the one
/// ported on its own); `doc` is the request to save, those numbers already moved to
/// `pvt_ported_numbers`.
async fn complete(
    req: &Request<'_>,
    id: &str,
    activated: &Value,
    doc: Value,
    new_events: &[Event],
    taken: Taken,
) -> Result<Value, ApiError> {
    let state = req.state;
    let activation = completion::activate(state, activated).await?;
    match commit(req, doc, new_events, taken).await {
        Ok(saved) => {
            completion::finish(&state.couch, activation);
            Ok(saved)
        }
        Err(ApiError::Conflict) => {
            let numbers = pr::numbers(activated);
            let completed_elsewhere = super::load(state, id).await.is_ok_and(|d| completion::all_ported(&d, &numbers));
            if !completed_elsewhere {
                completion::rollback(&state.couch, activation).await;
            }
            Err(ApiError::Conflict)
        }
        // the journal stays: the repair settles it
        Err(e) => Err(e),
    }
}

fn number_move_error(e: NumberMoveError, number: &str, to: PortState) -> ApiError {
    match e {
        NumberMoveError::Transition(t) => transition_error(t, to),
        NumberMoveError::NotOnRequest => ApiError::validation(
            &crate::error::dotted_path(&["numbers", number]),
            "not_found",
            json!({ "message": "The number is not on this port request (or was ported or canceled already)", "cause": number }),
        ),
        NumberMoveError::RequestNotInProgress(state) => ApiError::validation(
            "port_state",
            "enum",
            json!({
                "message": "Numbers move on their own only while the request is submitted, pending, scheduled or rejected",
                "cause": state,
            }),
        ),
    }
}

/// `PATCH /{id}/numbers/{number}/{state}`: one number moves on its own, by the request's state
/// rules (`domain::number_progress`); a completed one is activated alone (its number documents
/// as a completion writes them), a canceled one let go; once no number is left on the request,
/// the request follows.
pub async fn move_number(
    req: &Request<'_>,
    account: &Account,
    id: &str,
    raw_number: &str,
    to: PortState,
) -> Result<Saved, ApiError> {
    let number = to_e164(raw_number).unwrap_or_else(|| raw_number.to_owned());
    again_on_conflict(req, id, async || {
        let state = req.state;
        let doc = load_in_scope(state, account, id).await?;
        super::check_if_match(req.if_match, &doc)?;
        let is_auth = is_authority(req.caller, &doc);
        let role = if is_auth { Role::Authority } else { Role::Member };
        let policy = transition_policy(state).await?;
        let from = number_progress::check_move(&doc, &number, to, role, &policy)
            .map_err(|e| number_move_error(e, &number, to))?;
        let actor = super::actor(state, req.caller).await?;
        let at = now_gregorian();
        let reason = req.reason.as_deref();
        let mut new_doc = Value::clone(&doc);
        let activated = json!({
            "_id": id,
            "pvt_account_id": doc.get("pvt_account_id"),
            "numbers": { number.as_str(): doc["numbers"][number.as_str()].clone() },
        });
        let moved = number_progress::apply_move(
            &mut new_doc,
            &number,
            to,
            transition_entry(Some(from), to, &actor, reason, at),
        );
        let mut new_events = vec![event(
            req,
            &new_doc,
            at,
            What::NumberProgress {
                number: number.clone(),
                state: to,
                previous: Some(from),
                reason: reason.filter(|r| !r.is_empty()).map(str::to_owned),
                reason_author: actor.reason_author(),
            },
        )];
        if let Some(follow) = moved.request_follows {
            let request_from = PortState::of_doc(&new_doc);
            record_transition(&mut new_doc, follow, transition_entry(Some(request_from), follow, &actor, None, at));
            let what = transition_what(req, &new_doc, request_from, follow, None, &actor).await?;
            new_events.push(event(req, &new_doc, at, what));
        }
        let saved = if to == PortState::Completed {
            complete(req, id, &activated, new_doc, &new_events, Taken::default()).await?
        } else {
            commit(req, new_doc, &new_events, Taken::default()).await?
        };
        release_unheld(req, &doc, &saved);
        Ok(Saved { doc: saved, is_authority: is_auth })
    })
    .await
}

/// `PUT /{id}/comments`: appends the comments of the body.
pub async fn add_comments(req: &Request<'_>, account: &Account, id: &str) -> Result<Saved, ApiError> {
    let requested = match data_object(req.data)?.get("comments") {
        Some(Value::Array(list)) if !list.is_empty() => list.clone(),
        Some(other) if !other.is_array() => {
            return Err(ApiError::validation(
                "comments",
                "type",
                json!({ "message": "Value did not match type(s): array", "target": "array", "value": other }),
            ));
        }
        _ => {
            return Err(ApiError::validation(
                "comments",
                "required",
                json!({ "message": "Field is required but missing", "value": "comments" }),
            ));
        }
    };
    again_on_conflict(req, id, async || {
        let doc = load_in_scope(req.state, account, id).await?;
        super::check_if_match(req.if_match, &doc)?;
        let is_auth = is_authority(req.caller, &doc);
        let (all, new) = merge_comments(req, &comments::of(&doc), &requested, true, is_auth).await?;
        let mut new_doc = Value::clone(&doc);
        new_doc["comments"] = Value::Array(all);
        let new_events = comment_events(req, &new_doc, &new);
        let saved = commit(req, new_doc, &new_events, Taken::default()).await?;
        Ok(Saved { doc: saved, is_authority: is_auth })
    })
    .await
}

/// `DELETE /{id}`: soft delete, only while unconfirmed, rejected or canceled. Returns the
/// request as it was.
pub async fn delete(req: &Request<'_>, account: &Account, id: &str) -> Result<Saved, ApiError> {
    again_on_conflict(req, id, async || {
        let doc = load_in_scope(req.state, account, id).await?;
        super::check_if_match(req.if_match, &doc)?;
        if !PortState::of_doc(&doc).is_deletable() {
            return Err(ApiError::InvalidMethod);
        }
        let mut deleted = Value::clone(&doc);
        deleted["pvt_deleted"] = json!(true);
        pr::stamp(&mut deleted, &stamp_of(req));
        super::save(req.state, &mut deleted).await?;
        release_unheld(req, &doc, &deleted);
        Ok(Saved { doc: Value::clone(&doc), is_authority: is_authority(req.caller, &doc) })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_or_editing_releases_what_is_no_longer_held() {
        let before = json!({"_id": "p", "pvt_port_state": "submitted", "numbers": {"+1": {}, "+2": {}}});
        let edited = json!({"_id": "p", "pvt_port_state": "submitted", "numbers": {"+2": {}, "+3": {}}});
        assert_eq!(released_numbers(&before, &edited), ["+1"]);
        let canceled = json!({"_id": "p", "pvt_port_state": "canceled", "numbers": {"+1": {}, "+2": {}}});
        assert_eq!(released_numbers(&before, &canceled), ["+1", "+2"]);
        let mut deleted = before.clone();
        deleted["pvt_deleted"] = json!(true);
        assert_eq!(released_numbers(&before, &deleted).len(), 2);
        let completed = json!({"_id": "p", "pvt_port_state": "completed", "numbers": {}});
        assert_eq!(released_numbers(&before, &completed).len(), 2);
    }
}
