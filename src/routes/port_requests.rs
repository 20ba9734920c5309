//! `/v2/accounts/{A}/port_requests/...`: one request's life cycle, in crossbar's order —
//! method → account and caller → load → validate everything → save → answer.

use super::{listings, resource};
use crate::directory::Account;
use crate::domain::comments;
use crate::domain::ids::{AccountId, is_doc_id, new_doc_id};
use crate::domain::phone_number::to_e164;
use crate::domain::port_request::{
    self as pr, client_fields, normalize_numbers, public_fields, record_transition, transition_entry, view_for,
    with_public,
};
use crate::domain::port_state::{PortState, Role, TransitionError, TransitionPolicy};
use crate::domain::schedule::{ScheduleError, scheduled_date};
use crate::domain::time::now_gregorian;
use crate::error::{ApiError, ValidationErrors};
use crate::http::envelope::Reply;
use crate::http::request::Ctx;
use crate::notify::{Facts, Proof};
use crate::port_requests::numbers::{self, Candidate};
use crate::port_requests::{self as store, completion, is_authority};
use crate::schema::{self, Schema};
use actix_web::{FromRequest, HttpRequest, web};
use serde_json::{Map, Value, json};
use std::cell::Cell;
use std::sync::Arc;

pub const BASE: &str = "/v2/accounts/{account_id}/port_requests";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(BASE).route(web::get().to(listings::account_list)).route(web::put().to(create)))
        .service(
            resource(&format!("{BASE}/{{id}}"))
                .route(web::get().to(read))
                .route(web::post().to(update))
                .route(web::patch().to(patch))
                .route(web::delete().to(delete)),
        )
        .service(resource(&format!("{BASE}/{{id}}/timeline")).route(web::get().to(timeline)))
        .service(resource(&format!("{BASE}/{{id}}/notifications")).route(web::get().to(notifications)))
        .service(
            resource(&format!("{BASE}/{{id}}/comments"))
                .route(web::get().to(comments_list))
                .route(web::put().to(comments_add))
                .route(web::delete().to(comments_forbidden)),
        )
        .service(web::resource(format!("{BASE}/{{id}}/comments/{{n}}")).to(comments_forbidden))
        .service(web::resource(format!("{BASE}/{{id}}/{{state}}")).to(transition));
}

/// The account in the path and one of its (or its descendants') requests, to read: it may
/// come from the cache.
async fn target(ctx: &Ctx, account_id: &str, id: &str) -> Result<(Arc<Account>, Value), ApiError> {
    let account = ctx.account(account_id).await?;
    let doc = store::load_in_scope(&ctx.state, &account, id).await?;
    Ok((account, doc))
}

/// How a change reads its document: from the cache when it may (noting whether the cache had
/// it), or from CouchDB itself.
struct Read {
    cache: bool,
    hit: Cell<bool>,
}

impl Read {
    fn couch() -> Self {
        Self { cache: false, hit: Cell::new(false) }
    }
}

/// Makes a change on the cached document and, when CouchDB refuses that revision (409, or 412
/// against the client's `If-Match`), once more on CouchDB's own: a cache a moment behind
/// another writer never shows, and the change is made as if it had come a moment later. A
/// change whose document came from CouchDB is not retried: its conflict is a real one.
async fn change(attempt: impl AsyncFn(&Read) -> Result<Reply, ApiError>) -> Result<Reply, ApiError> {
    let cached = Read { cache: true, hit: Cell::new(false) };
    match attempt(&cached).await {
        Err(ApiError::Conflict | ApiError::PreconditionFailed) if cached.hit.get() => {
            tracing::debug!("the cached revision was behind CouchDB's: once more on CouchDB's");
            attempt(&Read::couch()).await
        }
        other => other,
    }
}

/// `target`, to change, read as `read` says; the save checks the revision either way.
async fn target_to_change(
    ctx: &Ctx,
    account_id: &str,
    id: &str,
    read: &Read,
) -> Result<(Arc<Account>, Value), ApiError> {
    let account = ctx.account(account_id).await?;
    let doc = if read.cache {
        let (doc, origin) = store::load_traced_in_scope(&ctx.state, &account, id).await?;
        read.hit.set(origin == store::Origin::Cache);
        doc
    } else {
        store::load_fresh_in_scope(&ctx.state, &account, id).await?
    };
    Ok((account, doc))
}

fn data_object(ctx: &Ctx) -> Result<&Value, ApiError> {
    match ctx.data() {
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

/// Schema, numbers, schedule and webhook checks of a candidate document; normalises the
/// numbers and computes `scheduled_date` in place. Returns the numbers as written.
/// `ported`: the request is completed, so its `numbers` may be empty.
fn validate_public(public: &mut Map<String, Value>, ported: bool) -> Result<Vec<Candidate>, ApiError> {
    let mut errors = ValidationErrors::new();
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
    if let Some(url) = public.get("notifications").and_then(|n| n.pointer("/webhook/url")).and_then(Value::as_str)
        && !is_http_url(url)
    {
        errors.add(
            "notifications.webhook.url",
            "wrong_format",
            json!({ "message": "Field is not in the correct format", "format": "http(s) URL", "value": url }),
        );
    }
    errors.into_result()?;
    Ok(candidates)
}

/// New comments checked for privacy and completed with their author; returns the full,
/// sorted list to store (stored comments are never dropped) and the new ones.
async fn merge_comments(
    ctx: &Ctx,
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
    let by = store::commenter(&ctx.state, &ctx.caller).await?;
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
async fn prepare_edit(ctx: &Ctx, doc: &Value, mut public: Map<String, Value>, is_auth: bool) -> Result<Edit, ApiError> {
    let ported = PortState::of_doc(doc) == PortState::Completed;
    let candidates = validate_public(&mut public, ported)?;
    let requested = public.get("comments").and_then(Value::as_array).cloned().unwrap_or_default();
    let (all, new_comments) = merge_comments(ctx, &comments::of(doc), &requested, false, is_auth).await?;
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

async fn check_numbers(ctx: &Ctx, doc: &Value, candidates: &[Candidate]) -> Result<(), ApiError> {
    let owner = doc.get("pvt_account_id").and_then(Value::as_str).unwrap_or_default();
    let id = doc.get("_id").and_then(Value::as_str).unwrap_or_default();
    numbers::check(&ctx.state, owner, id, candidates, &pr::numbers(doc)).await?.into_result()
}

/// Stamps the private fields, refreshes `pvt_tree` from the owner, saves, and answers with
/// the public view (private comments only for the authority). The outbox `events` are written
/// first, so an event of a saved change is never lost; they are delivered after the save.
async fn save_and_reply(
    ctx: &Ctx,
    mut doc: Value,
    is_auth: bool,
    events: &[Value],
) -> Result<(Value, Reply), ApiError> {
    prepare(ctx, &mut doc).await?;
    commit(ctx, doc, is_auth, events).await
}

/// Refreshes `pvt_tree` from the owner and stamps the private fields, ready to save.
async fn prepare(ctx: &Ctx, doc: &mut Value) -> Result<(), ApiError> {
    if let Some(owner) =
        doc.get("pvt_account_id").and_then(Value::as_str).and_then(crate::domain::ids::AccountId::from_any)
        && let Some(account) = ctx.state.directory.account(&owner).await?
    {
        doc["pvt_tree"] = json!(account.tree());
    }
    pr::stamp(doc, &stamp_of(ctx));
    Ok(())
}

/// Writes the outbox `events`, then the prepared document; wakes the worker once both are in.
async fn commit(ctx: &Ctx, mut doc: Value, is_auth: bool, events: &[Value]) -> Result<(Value, Reply), ApiError> {
    let queued = ctx.state.outbox.enqueue(events).await?;
    let rev = match store::save(&ctx.state, &mut doc).await {
        Ok(rev) => rev,
        Err(ApiError::Conflict) => {
            ctx.state.outbox.withdraw(queued).await;
            return Err(ApiError::Conflict);
        }
        Err(e) => return Err(e),
    };
    if !events.is_empty() {
        ctx.state.outbox.wake();
    }
    let reply = Reply::ok(view_for(&doc, is_auth)).with_revision(Some(&rev));
    Ok((doc, reply))
}

fn stamp_of(ctx: &Ctx) -> pr::Stamp<'_> {
    pr::Stamp {
        now: now_gregorian(),
        request_id: &ctx.request_id,
        auth_account_id: ctx.caller.account_id().as_str(),
        auth_user_id: ctx.caller.owner_id.as_deref(),
    }
}

/// `PUT /v2/accounts/{A}/port_requests`
pub async fn create(ctx: Ctx, path: web::Path<String>, req: HttpRequest) -> Result<Reply, ApiError> {
    let account = ctx.account(&path).await?;
    let data = data_object(&ctx)?;
    let id = match data.get("id") {
        None | Some(Value::Null) => new_doc_id(),
        Some(Value::String(s)) if is_doc_id(s) => s.clone(),
        Some(other) => {
            return Err(ApiError::validation(
                "id",
                "pattern",
                json!({ "message": "Failed to match pattern '^[0-9a-f]{32}$'", "value": other }),
            ));
        }
    };
    let (doc, is_auth) = create_request(&ctx, &account, client_fields(data), id, None).await?;
    let location = format!("{}/{}", req.path().trim_end_matches('/'), doc["_id"].as_str().unwrap_or_default());
    Ok(Reply::created(view_for(&doc, is_auth), &location).with_revision(doc["_rev"].as_str()))
}

/// Creates a port request from its public fields, checked like any other; with `submit`
/// (a reason), it is submitted in the same write, as the Fone Dynamics API does. Returns the
/// saved document and whether the caller is its port authority.
pub async fn create_request(
    ctx: &Ctx,
    account: &Account,
    mut public: Map<String, Value>,
    id: String,
    submit: Option<&str>,
) -> Result<(Value, bool), ApiError> {
    let candidates = validate_public(&mut public, false)?;
    let state = &ctx.state;
    let authority = store::find_authority(&state.directory, account).await?;
    let is_auth = ctx.caller.is_superduper_admin() || ctx.caller.account_id() == &authority;
    let requested = public.get("comments").and_then(Value::as_array).cloned().unwrap_or_default();
    let (all_comments, _) = merge_comments(ctx, &[], &requested, true, is_auth).await?;
    if !all_comments.is_empty() {
        public.insert("comments".into(), Value::Array(all_comments));
    }
    numbers::check(state, account.id.as_str(), &id, &candidates, &[]).await?.into_result()?;
    let claimed: Vec<String> = candidates.iter().map(|c| c.e164.clone()).collect();
    match build_and_commit(ctx, account, public, id.clone(), submit, authority, is_auth).await {
        Ok(doc) => Ok((doc, is_auth)),
        Err(e) => {
            // nothing was saved: the numbers are free again at once
            numbers::release_claims(state, &id, &claimed).await;
            Err(e)
        }
    }
}

/// The new document of `create_request`, its events, and the write.
async fn build_and_commit(
    ctx: &Ctx,
    account: &Account,
    public: Map<String, Value>,
    id: String,
    submit: Option<&str>,
    authority: AccountId,
    is_auth: bool,
) -> Result<Value, ApiError> {
    let state = &ctx.state;

    let actor = store::actor(state, &ctx.caller).await?;
    let mut doc = Value::Object(public);
    doc["_id"] = json!(id);
    doc["pvt_type"] = json!("port_request");
    doc["pvt_port_state"] = json!(PortState::Unconfirmed);
    doc["pvt_account_id"] = json!(account.id);
    doc["pvt_account_name"] = json!(account.name());
    doc["pvt_port_authority"] = json!(authority);
    doc["pvt_port_authority_name"] = json!(store::account_name(&state.directory, &authority).await?);
    let at = now_gregorian();
    doc["pvt_transitions"] = json!([transition_entry(None, PortState::Unconfirmed, &actor, None, at)]);
    let mut events = Vec::new();
    if let Some(reason) = submit {
        let count = doc.get("numbers").and_then(Value::as_object).map_or(0, |n| n.len());
        if let Some(per_number) = state.settings.port_activation_charge {
            // an API that submits at once accepts the configured charge; it is recorded
            doc["pvt_accepted_charges"] = json!({
                "activation_charges": per_number * count as f64, "per_number": per_number, "numbers": count,
                "accepted_by": { "account_id": ctx.caller.account_id(), "user_id": ctx.caller.owner_id }, "timestamp": at,
            });
        }
        let entry = transition_entry(Some(PortState::Unconfirmed), PortState::Submitted, &actor, Some(reason), at);
        record_transition(&mut doc, PortState::Submitted, entry);
        prepare(ctx, &mut doc).await?;
        events = transition_events(
            ctx,
            &doc,
            &[],
            PortState::Unconfirmed,
            PortState::Submitted,
            at,
            Some(reason.to_owned()),
            &actor,
        )
        .await?;
    }
    prepare(ctx, &mut doc).await?;
    let (doc, _) = commit(ctx, doc, is_auth, &events).await?;
    Ok(doc)
}

/// `GET /v2/accounts/{A}/port_requests/{id}` — also the per-state and `last_submitted`
/// listings of seed 002, since ids are hex and those are words.
pub async fn read(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    if !is_doc_id(&id) && (PortState::parse(&id).is_some() || id == "last_submitted") {
        return listings::account_list_by_path(ctx, account_id, id).await;
    }
    let (_, doc) = target(&ctx, &account_id, &id).await?;
    let is_auth = is_authority(&ctx.caller, &doc);
    Ok(Reply::ok(view_for(&doc, is_auth)).with_revision(doc["_rev"].as_str()))
}

/// `POST /{id}`: full replace of the public fields, only while unconfirmed or rejected
/// (superduper admins excepted).
pub async fn update(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    // a full replace starts from CouchDB's revision: made again on a newer one, it would
    // silently undo what the other writer changed
    let (_, doc) = target_to_change(&ctx, &account_id, &id, &Read::couch()).await?;
    store::check_if_match(ctx.if_match.as_deref(), &doc)?;
    let current = PortState::of_doc(&doc);
    if !current.is_editable() && !ctx.caller.is_superduper_admin() {
        return Err(not_updatable(current));
    }
    let is_auth = is_authority(&ctx.caller, &doc);
    let edit = prepare_edit(&ctx, &doc, client_fields(data_object(&ctx)?), is_auth).await?;
    check_numbers(&ctx, &doc, &edit.candidates).await?;
    let new_doc = with_public(&doc, edit.public);
    let events = ctx.state.outbox.comment_items(&new_doc, &edit.new_comments);
    let (_, reply) = save_and_reply(&ctx, new_doc, is_auth, &events).await?;
    Ok(reply)
}

/// The stored public part with the request's fields merged in (PATCH semantics).
fn patched_public(doc: &Value, data: &Value) -> Map<String, Value> {
    let mut public = public_fields(doc);
    public.remove("id");
    pr::merge_patch(&mut public, &client_fields(data));
    public
}

/// `PATCH /{id}`: deep merge; changing the numbers follows the same rules as POST.
pub async fn patch(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    change(async |read| patch_once(&ctx, &account_id, &id, read).await).await
}

/// One attempt at a `PATCH`, on the document `read` gives.
async fn patch_once(ctx: &Ctx, account_id: &str, id: &str, read: &Read) -> Result<Reply, ApiError> {
    let (_, doc) = target_to_change(ctx, account_id, id, read).await?;
    store::check_if_match(ctx.if_match.as_deref(), &doc)?;
    let is_auth = is_authority(&ctx.caller, &doc);
    let edit = prepare_edit(ctx, &doc, patched_public(&doc, data_object(ctx)?), is_auth).await?;
    if edit.numbers_changed {
        let current = PortState::of_doc(&doc);
        if !current.is_editable() && !ctx.caller.is_superduper_admin() {
            return Err(not_updatable(current));
        }
        check_numbers(ctx, &doc, &edit.candidates).await?;
    }
    let new_doc = with_public(&doc, edit.public);
    let events = ctx.state.outbox.comment_items(&new_doc, &edit.new_comments);
    let (_, reply) = save_and_reply(ctx, new_doc, is_auth, &events).await?;
    Ok(reply)
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

async fn transition_policy(ctx: &Ctx) -> Result<TransitionPolicy, ApiError> {
    let allow = match ctx.state.settings.allow_submitted_to_scheduled {
        Some(v) => v,
        None => ctx
            .state
            .directory
            .config_value("number_manager", "allow_port_transition_from_submitted_to_scheduled")
            .await?
            .is_some_and(|v| v == json!(true) || v == json!("true")),
    };
    Ok(TransitionPolicy { allow_submitted_to_scheduled: allow })
}

/// 402 until the per-number port charge is accepted; returns what to record once it is.
fn check_charges(ctx: &Ctx, doc: &Value, number_count: usize) -> Result<Option<Value>, ApiError> {
    let Some(per_number) = ctx.state.settings.port_activation_charge else { return Ok(None) };
    let amount = per_number * number_count as f64;
    let already = doc.pointer("/pvt_accepted_charges/activation_charges").and_then(Value::as_f64).unwrap_or(-1.0);
    if already >= amount {
        return Ok(None);
    }
    if !ctx.req_true("accept_charges") {
        return Err(ApiError::AcceptCharges(json!({
            "activation_charges": amount,
            "number_services": { "port": { "activation_charges": amount } },
        })));
    }
    Ok(Some(json!({
        "activation_charges": amount,
        "per_number": per_number,
        "numbers": number_count,
        "accepted_by": { "account_id": ctx.caller.account_id(), "user_id": ctx.caller.owner_id },
        "timestamp": now_gregorian(),
    })))
}

/// `PATCH /{id}/{state}`: body fields and comments are merged first, then the move.
pub async fn transition(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String, String)>,
) -> Result<Reply, ApiError> {
    let (account_id, id, token) = path.into_inner();
    let to = PortState::parse(&token).filter(|s| *s != PortState::Unconfirmed).ok_or(ApiError::NotFound)?;
    if req.method() != actix_web::http::Method::PATCH {
        return Err(ApiError::InvalidMethod);
    }
    let ctx = Ctx::from_request(&req, &mut payload.into_inner()).await?;
    change(async |read| move_to(&ctx, &account_id, &id, to, read).await).await
}

/// One attempt at a move, on the document `read` gives.
async fn move_to(ctx: &Ctx, account_id: &str, id: &str, to: PortState, read: &Read) -> Result<Reply, ApiError> {
    let (_, doc) = target_to_change(ctx, account_id, id, read).await?;
    store::check_if_match(ctx.if_match.as_deref(), &doc)?;
    let from = PortState::of_doc(&doc);
    let is_auth = is_authority(&ctx.caller, &doc);
    // the state machine decides first: a refused move is refused whatever the body says
    let role = if is_auth { Role::Authority } else { Role::Member };
    transition_policy(ctx).await?.check(from, to, role).map_err(|e| transition_error(e, to))?;
    let edit = prepare_edit(ctx, &doc, patched_public(&doc, data_object(ctx)?), is_auth).await?;
    if edit.numbers_changed && !from.is_editable() && !ctx.caller.is_superduper_admin() {
        return Err(not_updatable(from));
    }
    if to == PortState::Scheduled {
        schema::validate(Schema::ToScheduled, &Value::Object(edit.public.clone())).map_err(ApiError::Validation)?;
    }
    let mut charges = None;
    if to == PortState::Submitted || edit.numbers_changed {
        let candidates = if edit.numbers_changed {
            edit.candidates.clone()
        } else {
            pr::numbers(&doc).into_iter().map(|n| Candidate { raw: n.clone(), e164: n }).collect()
        };
        check_numbers(ctx, &doc, &candidates).await?;
        if to == PortState::Submitted {
            let count = edit.public.get("numbers").and_then(Value::as_object).map_or(0, |n| n.len());
            charges = check_charges(ctx, &doc, count)?;
        }
    }

    let mut new_doc = with_public(&doc, edit.public);
    if let Some(accepted) = charges {
        new_doc["pvt_accepted_charges"] = accepted;
    }
    let actor = store::actor(&ctx.state, &ctx.caller).await?;
    let reason = ctx.req_str("reason");
    let at = now_gregorian();
    record_transition(&mut new_doc, to, transition_entry(Some(from), to, &actor, reason.as_deref(), at));
    prepare(ctx, &mut new_doc).await?;
    let events = transition_events(ctx, &new_doc, &edit.new_comments, from, to, at, reason, &actor).await?;

    if to != PortState::Completed {
        let (_, reply) = commit(ctx, new_doc, is_auth, &events).await?;
        return Ok(reply);
    }
    // the events, and a guard that undoes the number documents should the request never be
    // saved as completed (the process dies, CouchDB goes away), are in before any number is
    let mut events = events;
    events.push(
        ctx.state.outbox.completion_guard(
            &new_doc,
            &Proof::Transition { state: to, at, account: ctx.caller.account_id().as_str() },
        ),
    );
    // (left queued on a conflict: the guard must outlive a rollback that fails)
    let _guarded = ctx.state.outbox.enqueue(&events).await?;
    let activation = completion::activate(&ctx.state, &new_doc).await?;
    completion::clear_numbers(&mut new_doc);
    match commit(ctx, new_doc, is_auth, &[]).await {
        Ok((_, reply)) => {
            ctx.state.outbox.wake();
            Ok(reply)
        }
        Err(e) => {
            // someone else completed it meanwhile: the number documents are theirs now too
            let completed_elsewhere =
                store::load_fresh(&ctx.state, id).await.is_ok_and(|d| PortState::of_doc(&d) == PortState::Completed);
            if !completed_elsewhere {
                completion::rollback(&ctx.state, activation).await;
            }
            Err(e)
        }
    }
}

/// The outbox items of a move: new comments first (as Kazoo), then the state's emails, the
/// request's webhook, and the carrier push when the owner has a `submitted_port_requests_url`.
#[allow(clippy::too_many_arguments)]
async fn transition_events(
    ctx: &Ctx,
    doc: &Value,
    new_comments: &[Value],
    from: PortState,
    to: PortState,
    at: i64,
    reason: Option<String>,
    actor: &pr::Actor,
) -> Result<Vec<Value>, ApiError> {
    let outbox = &ctx.state.outbox;
    let mut events = outbox.comment_items(doc, new_comments);
    let carrier_push = to == PortState::Submitted && {
        let owner = doc.get("pvt_account_id").and_then(Value::as_str).and_then(crate::domain::ids::AccountId::from_any);
        match owner {
            Some(o) => {
                ctx.state.directory.account(&o).await?.is_some_and(|a| a.doc["submitted_port_requests_url"].is_string())
            }
            None => false,
        }
    };
    let author = actor.user.as_ref().and_then(|u| u.full_name.clone()).or_else(|| actor.account_name.clone());
    let proof = Proof::Transition { state: to, at, account: ctx.caller.account_id().as_str() };
    let facts = Facts { reason, reason_author: author, previous: Some(from), at: Some(at) };
    events.extend(outbox.transition_items(doc, to, &proof, &facts, carrier_push));
    Ok(events)
}

/// `DELETE /{id}`: soft delete, only while unconfirmed, rejected or canceled.
pub async fn delete(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    change(async |read| delete_once(&ctx, &account_id, &id, read).await).await
}

async fn delete_once(ctx: &Ctx, account_id: &str, id: &str, read: &Read) -> Result<Reply, ApiError> {
    let (_, doc) = target_to_change(ctx, account_id, id, read).await?;
    store::check_if_match(ctx.if_match.as_deref(), &doc)?;
    if !PortState::of_doc(&doc).is_deletable() {
        return Err(ApiError::InvalidMethod);
    }
    let mut deleted = doc.clone();
    deleted["pvt_deleted"] = json!(true);
    pr::stamp(&mut deleted, &stamp_of(ctx));
    store::save(&ctx.state, &mut deleted).await?;
    // crossbar answers with the document as it was, marked deleted, at its old revision
    let mut data = Value::Object(public_fields(&doc));
    comments::filter_view(&mut data, is_authority(&ctx.caller, &doc));
    data["_read_only"] = json!({ "deleted": true });
    Ok(Reply::ok(data).with_revision(doc["_rev"].as_str()))
}

/// `GET /{id}/timeline`: transitions and visible comments by time.
pub async fn timeline(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let (_, doc) = target(&ctx, &account_id, &id).await?;
    Ok(Reply::ok(json!(pr::timeline(&doc, is_authority(&ctx.caller, &doc)))).with_automatic_revision())
}

/// `GET /{id}/notifications`: the delivery records of the request's emails, webhooks and
/// carrier pushes. For the port authority and superduper admins only.
pub async fn notifications(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let (_, doc) = target(&ctx, &account_id, &id).await?;
    if !is_authority(&ctx.caller, &doc) {
        return Err(ApiError::Forbidden(None));
    }
    let records: Vec<Value> = ctx
        .state
        .outbox
        .for_request(&id)
        .await?
        .into_iter()
        .filter(|item| item["channel"] != "completion_guard")
        .map(|item| {
            let attempts = item["attempts"].as_array().cloned().unwrap_or_default();
            let last_error = attempts.iter().rev().find_map(|a| a.get("error").cloned());
            json!({
                "id": item["_id"], "event": item["event"], "channel": item["channel"], "audience": item.get("audience"),
                "recipients": item.get("recipients").cloned().unwrap_or(json!([])), "status": item["status"],
                "attempts": attempts.len(), "attempts_log": attempts, "last_error": last_error,
                "created": item["created"], "next_attempt_at": item["next_attempt_at"],
                "url": item.pointer("/webhook/url"),
            })
        })
        .map(|mut r| {
            if let Some(o) = r.as_object_mut() {
                o.retain(|_, v| !v.is_null());
            }
            r
        })
        .collect();
    Ok(Reply::ok(json!(records)).with_automatic_revision())
}

/// `GET /{id}/comments`
pub async fn comments_list(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    let (_, doc) = target(&ctx, &account_id, &id).await?;
    let visible = comments::visible(comments::of(&doc), is_authority(&ctx.caller, &doc));
    Ok(Reply::ok(json!({ "comments": visible })).with_revision(doc["_rev"].as_str()))
}

/// `PUT /{id}/comments`: appends the comments of the body.
pub async fn comments_add(ctx: Ctx, path: web::Path<(String, String)>) -> Result<Reply, ApiError> {
    let (account_id, id) = path.into_inner();
    change(async |read| add_comments(&ctx, &account_id, &id, read).await).await
}

async fn add_comments(ctx: &Ctx, account_id: &str, id: &str, read: &Read) -> Result<Reply, ApiError> {
    let (_, doc) = target_to_change(ctx, account_id, id, read).await?;
    store::check_if_match(ctx.if_match.as_deref(), &doc)?;
    let requested = match data_object(ctx)?.get("comments") {
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
    let is_auth = is_authority(&ctx.caller, &doc);
    let (all, new) = merge_comments(ctx, &comments::of(&doc), &requested, true, is_auth).await?;
    let mut new_doc = doc.clone();
    new_doc["comments"] = Value::Array(all);
    let events = ctx.state.outbox.comment_items(&new_doc, &new);
    let (saved, _) = save_and_reply(ctx, new_doc, is_auth, &events).await?;
    let visible = comments::visible(comments::of(&saved), is_auth);
    Ok(Reply::ok(json!({ "comments": visible })).with_revision(saved["_rev"].as_str()))
}

/// Comments are append-only: deleting them, or touching a single one, is refused.
pub async fn comments_forbidden(ctx: Ctx, req: HttpRequest) -> Result<Reply, ApiError> {
    let message = if req.match_info().get("n").is_some() {
        "operation on a single comment is not allowed"
    } else {
        "delete operation on comments is not allowed"
    };
    let account_id = req.match_info().get("account_id").unwrap_or_default();
    let id = req.match_info().get("id").unwrap_or_default();
    target(&ctx, account_id, id).await?;
    Err(ApiError::validation("comments", "forbidden", json!({ "message": message, "cause": "comments" })))
}
