//! The changes of a port request's fields, comments and state, in crossbar's order: every
//! change reads CouchDB's current revision, validates and authorizes everything, then makes one
//! write through `write::change`, which carries the change and the events it notifies.

use super::accounts::{account_name, actor, commenter, find_authority};
use super::claims::{self, Ahead, Asking};
use super::completion;
use super::desk;
use super::error::{AppError, IntoResult};
use super::write::{Again, Ask, Held, Who, Write, change, load_in_scope};
use crate::domain::charges;
use crate::domain::comments;
use crate::domain::desk::fingerprint as desk_fingerprint;
use crate::domain::documents::fields::{List, Slot};
use crate::domain::documents::port_request::Comment;
use crate::domain::documents::port_request::{AcceptedCharges, PortRequest};
use crate::domain::events::{Event, What};
use crate::domain::ids::{AccountId, PortRequestId};
use crate::domain::number_progress;
use crate::domain::phone_number::PhoneNumber;
use crate::domain::port_request::{
    self as pr, Candidate, client_fields, normalize_numbers, record_transition, transition_entry,
};
use crate::domain::port_state::{PortState, Role, TransitionPolicy};
use crate::domain::schedule::{ScheduleError, scheduled_date};
use crate::domain::schema::{self, Schema};
use crate::domain::time::now_gregorian;
use crate::domain::validation::ValidationErrors;
use crate::state::AppState;
use crate::store::directory::Account;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// A change's outcome: the request as saved, and whether the one asking sees private comments.
pub struct Saved {
    pub doc: Arc<PortRequest>,
    pub is_authority: bool,
}

/// The body's `data` as an object (Kazoo's 400 otherwise).
pub fn data_object(data: &Value) -> Result<&Map<String, Value>, AppError> {
    data.as_object().ok_or_else(|| {
        AppError::field(
            "data",
            "type",
            json!({ "message": "Value did not match type(s): object", "target": "object", "value": data }),
        )
    })
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// Schema, numbers, schedule and webhook checks of a candidate public part; normalises the
/// numbers and computes `scheduled_date` in place. Returns the numbers as written.
/// `ported`: the request is completed, so its `numbers` may be empty.
async fn validate_public(
    state: &AppState,
    public: &mut Map<String, Value>,
    ported: bool,
) -> Result<Vec<Candidate>, AppError> {
    let mut errors = ValidationErrors::new();
    // a numbers entry's `_*` keys are the service's (per-number progress): never a client's
    if let Some(Value::Object(nums)) = public.get_mut("numbers") {
        number_progress::strip_reserved(nums);
    }
    if let Err(mut e) = schema::validate(Schema::PortRequest, &Value::Object(public.clone())) {
        if ported {
            // a completed request keeps `numbers: {}`; its numbers are with the ported ones
            e.remove("numbers");
        }
        errors.merge(e);
    }
    let mut candidates = Vec::new();
    if let Some(Value::Object(nums)) = public.get("numbers") {
        match normalize_numbers(nums) {
            Ok((normalized, found)) => {
                candidates = found;
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
        Some(url) if !state.settings.webhooks.allow_private => {
            if let Err(why) = crate::channels::webhook::check_target(url, false).await {
                errors.add("notifications.webhook.url", "forbidden", json!({ "message": why, "value": url }));
            }
        }
        _ => {}
    }
    errors.into_result()?;
    Ok(candidates)
}

fn timestamp_of(comment: &Value) -> i64 {
    comment.get("timestamp").and_then(Value::as_i64).unwrap_or(0)
}

/// New comments checked for privacy and completed with their author; returns the full,
/// sorted list to store (stored comments are never dropped) and the new ones. A request's
/// comments as a client sends them back hold the stored ones: only those newer than the newest
/// stored one are new (`all_new`: every one is).
async fn merge_comments(
    ask: &Ask<'_>,
    stored: &PortRequest,
    requested: &[Value],
    all_new: bool,
    is_auth: bool,
) -> Result<(List<Comment>, Vec<Comment>), AppError> {
    let stored_list = stored.comments.get().cloned().unwrap_or_default();
    let newest = stored_list.iter().map(Comment::at).max();
    let new: Vec<&Value> = requested.iter().filter(|c| all_new || newest.is_none_or(|n| timestamp_of(c) > n)).collect();
    // the stored list as it was (unreadable entries kept), legacy flags migrated
    let mut all: List<Comment> = List(
        stored_list
            .0
            .into_iter()
            .map(|s| match s {
                Slot::Set(c) => Slot::Set(c.migrated()),
                other => other,
            })
            .collect(),
    );
    if new.is_empty() {
        return Ok((all, Vec::new()));
    }
    schema::validate(Schema::Comments, &json!({ "comments": new })).map_err(AppError::Invalid)?;
    let new: Vec<Comment> = new.into_iter().filter_map(|c| serde_json::from_value(c.clone()).ok()).collect();
    comments::check_privacy(&new, is_auth).map_err(AppError::Comment)?;
    let by = commenter(&ask.state.directory, ask.who).await?;
    let new: Vec<Comment> = new.iter().map(|c| comments::enrich(c, &by)).collect();
    all.0.extend(new.iter().cloned().map(Slot::Set));
    // `cb_comments:sort`, stable; unreadable ones keep their place at the front
    all.0.sort_by_key(|s| s.get().map_or(i64::MIN, Comment::at));
    Ok((all, new))
}

/// An edit validated and ready to store.
struct Edit {
    public: Map<String, Value>,
    candidates: Vec<Candidate>,
    numbers_changed: bool,
    /// Comments added by this edit, as stored (they are notified).
    new_comments: Vec<Comment>,
}

/// Validates a new public part for `doc`: schema, numbers, schedule, comments.
async fn prepare_edit(
    ask: &Ask<'_>,
    doc: &PortRequest,
    mut public: Map<String, Value>,
    is_auth: bool,
) -> Result<Edit, AppError> {
    let ported = doc.state() == Ok(PortState::Completed);
    let candidates = validate_public(ask.state, &mut public, ported).await?;
    let requested = public.get("comments").and_then(Value::as_array).cloned().unwrap_or_default();
    let (all, new_comments) = merge_comments(ask, doc, &requested, false, is_auth).await?;
    if all.is_empty() {
        public.remove("comments");
    } else {
        public.insert("comments".into(), serde_json::to_value(&all).unwrap_or(Value::Null));
    }
    let mut before: Vec<String> =
        doc.numbers.get().map(|n| n.keys().map(|k| k.to_string()).collect()).unwrap_or_default();
    let mut after: Vec<String> =
        public.get("numbers").and_then(Value::as_object).map(|n| n.keys().cloned().collect()).unwrap_or_default();
    before.sort();
    after.sort();
    // numbers stored unreadable are replaced by the edit, checked as new ones
    let numbers_changed = before != after || matches!(doc.numbers, Slot::Kept(_)) && public.contains_key("numbers");
    Ok(Edit { public, candidates, numbers_changed, new_comments })
}

/// The candidates a stored request holds (to check again on submission).
fn held_candidates(doc: &PortRequest) -> Result<Vec<Candidate>, AppError> {
    Ok(doc.numbers()?.keys().map(|n| Candidate { raw: n.to_string(), number: n.clone() }).collect())
}

/// Checks and claims `candidates` for the stored request `doc` (with the reads made `ahead`).
async fn claim_for(
    ask: &Ask<'_>,
    doc: &PortRequest,
    candidates: &[Candidate],
    ahead: Option<Ahead>,
    held: &mut Held,
) -> Result<(), AppError> {
    let owner = doc.owner().ok_or_else(|| AppError::Unavailable("the request has no owner".into()))?;
    let holding = doc.numbers_shown().keys().cloned().collect::<Vec<_>>();
    let taken =
        claims::claim_numbers(ask.state, owner, doc.id.as_str(), candidates, Asking::Stored(&holding), ahead).await?;
    held.claims(taken);
    Ok(())
}

fn comment_events(ask: &Ask<'_>, doc: &PortRequest, new_comments: &[Comment]) -> Vec<Event> {
    new_comments
        .iter()
        .map(|c| {
            ask.event(doc, c.timestamp.copied().unwrap_or_else(now_gregorian), What::Comment { comment: c.clone() })
        })
        .collect()
}

/// The request's state, for a rule that needs it.
fn state_of(doc: &PortRequest) -> Result<PortState, AppError> {
    Ok(doc.state()?)
}

/// What creating request `id` from `public` would refuse, found without writing anything (an
/// import's check): the fields, and its numbers as the claims and numbers databases stand.
pub async fn check_new(
    state: &AppState,
    account: &Account,
    public: Map<String, Value>,
    id: &PortRequestId,
) -> Result<(), AppError> {
    let mut public = client_fields(&Value::Object(public));
    let candidates = validate_public(state, &mut public, false).await?;
    let refused = claims::preview(state, &account.id, id.as_str(), &candidates).await?;
    if refused.is_empty() { Ok(()) } else { Err(AppError::Numbers(refused)) }
}

fn accepted_charges(ask: &Ask<'_>, per_number: f64, numbers: usize, at: i64) -> Slot<AcceptedCharges> {
    let value = json!({
        "activation_charges": charges::amount(per_number, numbers),
        "per_number": per_number,
        "numbers": numbers,
        "accepted_by": { "account_id": ask.who.account_id(), "user_id": ask.who.user_id() },
        "timestamp": at,
    });
    serde_json::from_value(value).unwrap_or_default()
}

/// A move's event: what the templates say about it, and whether the submission is pushed to
/// the owner's `submitted_port_requests_url`.
async fn transition_what(
    state: &AppState,
    doc: &PortRequest,
    from: PortState,
    to: PortState,
    reason: Option<&str>,
    reason_author: Option<String>,
) -> Result<What, AppError> {
    let carrier_push = to == PortState::Submitted && {
        match doc.owner() {
            Some(o) => {
                state.directory.account(o).await?.is_some_and(|a| a.doc.submitted_port_requests_url.get().is_some())
            }
            None => false,
        }
    };
    Ok(What::Transition {
        state: to,
        previous: Some(from),
        reason: reason.filter(|r| !r.is_empty()).map(str::to_owned),
        reason_author,
        rejection: None,
        carrier_push,
    })
}

/// `PUT /v2/accounts/{A}/port_requests`: a new request of the account asked through, from its
/// public fields, checked like any other; with `submit` (a reason) it is submitted in the same
/// write, as the Fone Dynamics API does.
pub async fn create(
    ask: &Ask<'_>,
    public: Map<String, Value>,
    id: PortRequestId,
    submit: Option<&str>,
) -> Result<Saved, AppError> {
    let (state, account) = (ask.state, ask.through);
    let mut public = client_fields(&Value::Object(public));
    let candidates = validate_public(state, &mut public, false).await?;
    let authority = find_authority(&state.directory, account).await?;
    let is_auth = ask.who.is_superduper_admin() || ask.who.account_id() == Some(&authority);
    let requested = public.get("comments").and_then(Value::as_array).cloned().unwrap_or_default();
    let (all_comments, new_comments) =
        merge_comments(ask, &PortRequest::new(id.clone()), &requested, true, is_auth).await?;
    if !all_comments.is_empty() {
        public.insert("comments".into(), serde_json::to_value(&all_comments).unwrap_or(Value::Null));
    }
    let mut held = Held::default();
    held.claims(claims::claim_numbers(state, &account.id, id.as_str(), &candidates, Asking::New, None).await?);
    let made = NewRequest { id, public, new_comments, authority, submit };
    match new_request(ask, made).await {
        Ok((doc, events)) => {
            let doc = super::write::create(ask, doc, events, held).await?;
            Ok(Saved { doc, is_authority: is_auth })
        }
        Err(e) => {
            // nothing was saved: the numbers are free again at once
            held.give_back(state).await;
            Err(e)
        }
    }
}

/// What a new request is made of.
struct NewRequest<'a> {
    id: PortRequestId,
    public: Map<String, Value>,
    new_comments: Vec<Comment>,
    authority: AccountId,
    submit: Option<&'a str>,
}

/// The new request's document and the events of its creation.
async fn new_request(ask: &Ask<'_>, made: NewRequest<'_>) -> Result<(PortRequest, Vec<Event>), AppError> {
    let (state, account) = (ask.state, ask.through);
    let actor = actor(&state.directory, ask.who).await?;
    let mut doc = PortRequest::new(made.id).with_public(made.public);
    doc.set_state(PortState::Unconfirmed);
    doc.account_id.set(account.id.clone());
    doc.account_name = Slot::from_option(account.name().map(str::to_owned));
    doc.authority_name = Slot::from_option(account_name(&state.directory, &made.authority).await?);
    doc.authority.set(made.authority);
    let at = now_gregorian();
    doc.transitions.set(List::from_iter([transition_entry(None, PortState::Unconfirmed, &actor, None, at)]));
    let mut events = comment_events(ask, &doc, &made.new_comments);
    if let Some(reason) = made.submit {
        let count = doc.numbers_shown().len();
        if let Some(per_number) = state.settings.port_activation_charge {
            // an API that submits at once accepts the configured charge; it is recorded
            doc.accepted_charges = accepted_charges(ask, per_number, count, at);
        }
        let entry = transition_entry(Some(PortState::Unconfirmed), PortState::Submitted, &actor, Some(reason), at);
        record_transition(&mut doc, PortState::Submitted, entry);
        let what = transition_what(
            state,
            &doc,
            PortState::Unconfirmed,
            PortState::Submitted,
            Some(reason),
            actor.reason_author(),
        )
        .await?;
        events.push(ask.event(&doc, at, what));
    }
    Ok((doc, events))
}

/// A change of the request's document through the one write path (`make` answers the document
/// to write and the events it notifies), answered as saved.
async fn change_doc(
    ask: &Ask<'_>,
    id: &PortRequestId,
    again: Again,
    mut make: impl AsyncFnMut(&Arc<PortRequest>, &mut Held) -> Result<(PortRequest, Vec<Event>), AppError>,
) -> Result<Saved, AppError> {
    let changed = change(ask, id, again, async |doc, held| {
        let (doc, events) = make(doc, held).await?;
        Ok((Some(Write::Document { doc, events }), ()))
    })
    .await?;
    // (the port authority is set at creation: the saved request names the same one)
    let is_authority = ask.who.is_authority(&changed.doc);
    Ok(Saved { doc: changed.doc, is_authority })
}

/// `POST /{id}`: full replace of the public fields, only while unconfirmed or rejected
/// (superduper admins excepted).
pub async fn replace(ask: &Ask<'_>, id: &PortRequestId, data: &Value) -> Result<Saved, AppError> {
    change_doc(ask, id, Again::Never, async |doc, held| {
        let current = state_of(doc)?;
        if !current.is_editable() && !ask.who.is_superduper_admin() {
            return Err(AppError::NotEditable(current));
        }
        let public = client_fields(&Value::Object(data_object(data)?.clone()));
        let edit = prepare_edit(ask, doc, public, ask.who.is_authority(doc)).await?;
        claim_for(ask, doc, &edit.candidates, None, held).await?;
        let new_doc = doc.with_public(edit.public);
        let events = comment_events(ask, &new_doc, &edit.new_comments);
        Ok((new_doc, events))
    })
    .await
}

/// `PATCH /{id}`: deep merge; changing the numbers follows the same rules as POST.
pub async fn patch(ask: &Ask<'_>, id: &PortRequestId, data: &Value) -> Result<Saved, AppError> {
    let data = Value::Object(data_object(data)?.clone());
    change_doc(ask, id, Again::OnConflict, async |doc, held| {
        let edit = prepare_edit(ask, doc, pr::patched_public(doc, &data), ask.who.is_authority(doc)).await?;
        if edit.numbers_changed {
            let current = state_of(doc)?;
            if !current.is_editable() && !ask.who.is_superduper_admin() {
                return Err(AppError::NotEditable(current));
            }
            claim_for(ask, doc, &edit.candidates, None, held).await?;
        }
        let new_doc = doc.with_public(edit.public);
        let events = comment_events(ask, &new_doc, &edit.new_comments);
        Ok((new_doc, events))
    })
    .await
}

/// `submitted -> scheduled` is allowed by this setting, or by `system_config/number_manager`.
async fn transition_policy(state: &AppState) -> Result<TransitionPolicy, AppError> {
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

/// 402 until the per-number port charge is accepted; returns what to record once it is.
fn check_charges(
    ask: &Ask<'_>,
    doc: &PortRequest,
    count: usize,
    accept: bool,
) -> Result<Option<Slot<AcceptedCharges>>, AppError> {
    let Some(per_number) = ask.state.settings.port_activation_charge else { return Ok(None) };
    let amount = charges::amount(per_number, count);
    let already = doc
        .accepted_charges
        .get()
        .and_then(|c| c.activation_charges.get())
        .and_then(serde_json::Number::as_f64)
        .unwrap_or(-1.0);
    if already >= amount {
        return Ok(None);
    }
    if !accept {
        let vendor = doc.authority.get().map(|a| a.to_string()).unwrap_or_default();
        return Err(AppError::AcceptCharges(charges::quote(per_number, count, &vendor)));
    }
    Ok(Some(accepted_charges(ask, per_number, count, now_gregorian())))
}

/// What a move is asked with beside the target state.
pub struct MoveAsk<'a> {
    /// The body's `data`: fields and comments merged first.
    pub data: &'a Value,
    /// `reason`, from the query string or the body.
    pub reason: Option<String>,
    /// `accept_charges=true` was given.
    pub accept_charges: bool,
    /// `reason_code`: a code of the rejection catalogue in effect (rejections only).
    pub reason_code: Option<String>,
}

/// `PATCH /{id}/{state}`: body fields and comments are merged first, then the move.
pub async fn move_to(ask: &Ask<'_>, id: &PortRequestId, to: PortState, asked: &MoveAsk<'_>) -> Result<Saved, AppError> {
    let state = ask.state;
    let data = Value::Object(data_object(asked.data)?.clone());
    // a submission checks the request's numbers: their reads go out with the request's own, for
    // the numbers the copy read last holds (used only where the current revision agrees)
    let numbers_of = |doc: &PortRequest| -> Option<Vec<PhoneNumber>> {
        let numbers: Vec<PhoneNumber> = doc.numbers.get()?.keys().cloned().collect();
        (to == PortState::Submitted && !numbers.is_empty()).then_some(numbers)
    };
    let mut early = state.port_requests.guess(id.as_str()).as_deref().and_then(numbers_of).map(|numbers| {
        let couch = state.couch.clone();
        tokio::spawn(async move { claims::read_ahead(&couch, numbers).await })
    });
    change_doc(ask, id, Again::OnConflict, async |doc, held| {
        let ahead = async {
            let early = match early.take() {
                Some(task) => task.await.ok().flatten(),
                None => None,
            };
            match (early, numbers_of(doc)) {
                (Some(ahead), _) => Some(ahead),
                (None, Some(numbers)) => claims::read_ahead(&state.couch, numbers).await,
                (None, None) => None,
            }
        };
        let (policy, ahead) = futures_util::future::join(transition_policy(state), ahead).await;
        let from = state_of(doc)?;
        let is_auth = ask.who.is_authority(doc);
        // the state machine decides first: a refused move is refused whatever the body says
        let role = if is_auth { Role::Authority } else { Role::Member };
        policy?.check(from, to, role).map_err(|error| AppError::Transition { to, error })?;
        let rejection = desk::rejection_named(state, doc, to, asked.reason_code.as_deref()).await?;
        let edit = prepare_edit(ask, doc, pr::patched_public(doc, &data), is_auth).await?;
        if edit.numbers_changed && !from.is_editable() && !ask.who.is_superduper_admin() {
            return Err(AppError::NotEditable(from));
        }
        if to == PortState::Scheduled {
            schema::validate(Schema::ToScheduled, &Value::Object(edit.public.clone())).map_err(AppError::Invalid)?;
        }
        let mut charges = None;
        if to == PortState::Submitted || edit.numbers_changed {
            let (candidates, ahead) =
                if edit.numbers_changed { (edit.candidates.clone(), None) } else { (held_candidates(doc)?, ahead) };
            claim_for(ask, doc, &candidates, ahead, held).await?;
            if to == PortState::Submitted {
                let count = edit.public.get("numbers").and_then(Value::as_object).map_or(0, |n| n.len());
                charges = check_charges(ask, doc, count, asked.accept_charges)?;
            }
        }
        let mut new_doc = doc.with_public(edit.public);
        if let Some(accepted) = charges {
            new_doc.accepted_charges = accepted;
        }
        let actor = actor(&state.directory, ask.who).await?;
        let at = now_gregorian();
        // a code alone still gives Kazoo's clients and templates a reason to show: its title
        let reason = asked.reason.as_deref().filter(|r| !r.is_empty()).or(rejection.as_ref().map(|r| r.title.as_str()));
        // a move of the request moves every number still on it
        number_progress::clear_for_request_move(&mut new_doc);
        let mut entry = transition_entry(Some(from), to, &actor, reason, at);
        desk_fingerprint::mark(&mut entry, &new_doc, from, to, rejection.clone());
        record_transition(&mut new_doc, to, entry);
        // new comments first, as Kazoo sends them
        let mut events = comment_events(ask, &new_doc, &edit.new_comments);
        let mut what = transition_what(state, &new_doc, from, to, reason, actor.reason_author()).await?;
        if let What::Transition { rejection: r, .. } = &mut what {
            *r = rejection;
        }
        events.push(ask.event(&new_doc, at, what));
        if to == PortState::Completed {
            let numbers: Vec<PhoneNumber> = new_doc.numbers()?.keys().cloned().collect();
            held.activation = Some(completion::activate(state, &new_doc, &numbers).await?);
            completion::clear_numbers(&mut new_doc);
        }
        Ok((new_doc, events))
    })
    .await
    .inspect(|saved| crate::metrics::get().observe_port(&saved.doc, to))
}

/// `PATCH /{id}/numbers/{number}/{state}`: one number moves on its own, by the request's state
/// rules (`domain::number_progress`); a completed one is activated alone (its number documents
/// as a completion writes them), a canceled one let go; once no number is left on the request,
/// the request follows.
pub async fn move_number(
    ask: &Ask<'_>,
    id: &PortRequestId,
    raw: &str,
    to: PortState,
    reason: Option<&str>,
) -> Result<Saved, AppError> {
    let state = ask.state;
    let number = PhoneNumber::parse(raw).or_else(|_| PhoneNumber::exact(raw));
    let shown = number.as_ref().map(|n| n.to_string()).unwrap_or_else(|_| raw.to_owned());
    let refused = |error| AppError::NumberMove { number: shown.clone(), to, error };
    change_doc(ask, id, Again::OnConflict, async |doc, held| {
        let role = if ask.who.is_authority(doc) { Role::Authority } else { Role::Member };
        let policy = transition_policy(state).await?;
        let number = number.clone().map_err(|_| refused(number_progress::NumberMoveError::NotOnRequest))?;
        let from = number_progress::check_move(doc, &number, to, role, &policy).map_err(refused)?;
        let actor = actor(&state.directory, ask.who).await?;
        let at = now_gregorian();
        let mut new_doc = PortRequest::clone(doc);
        if to == PortState::Completed {
            held.activation = Some(completion::activate(state, doc, std::slice::from_ref(&number)).await?);
        }
        let entry = transition_entry(Some(from), to, &actor, reason, at);
        let moved = number_progress::apply_move(&mut new_doc, &number, to, entry);
        let reason = reason.filter(|r| !r.is_empty()).map(str::to_owned);
        let what = What::NumberProgress {
            number,
            state: to,
            previous: Some(from),
            reason,
            reason_author: actor.reason_author(),
        };
        let mut events = vec![ask.event(&new_doc, at, what)];
        if let Some(follow) = moved.request_follows {
            let request_from = state_of(&new_doc)?;
            record_transition(&mut new_doc, follow, transition_entry(Some(request_from), follow, &actor, None, at));
            let what = transition_what(state, &new_doc, request_from, follow, None, actor.reason_author()).await?;
            events.push(ask.event(&new_doc, at, what));
        }
        Ok((new_doc, events))
    })
    .await
    .inspect(|saved| {
        // numbers move only on an open request: completed now, it followed its last number
        if saved.doc.state() == Ok(PortState::Completed) {
            crate::metrics::get().observe_port(&saved.doc, PortState::Completed)
        }
    })
}

/// The comments of a `PUT /{id}/comments` body: a list that is not empty.
fn requested_comments(data: &Value) -> Result<Vec<Value>, AppError> {
    match data_object(data)?.get("comments") {
        Some(Value::Array(list)) if !list.is_empty() => Ok(list.clone()),
        Some(other) if !other.is_array() => Err(AppError::field(
            "comments",
            "type",
            json!({ "message": "Value did not match type(s): array", "target": "array", "value": other }),
        )),
        _ => Err(AppError::field(
            "comments",
            "required",
            json!({ "message": "Field is required but missing", "value": "comments" }),
        )),
    }
}

/// `PUT /{id}/comments`: appends the comments of the body.
pub async fn add_comments(ask: &Ask<'_>, id: &PortRequestId, data: &Value) -> Result<Saved, AppError> {
    let requested = requested_comments(data)?;
    change_doc(ask, id, Again::OnConflict, async |doc, _| {
        let (all, new) = merge_comments(ask, doc, &requested, true, ask.who.is_authority(doc)).await?;
        let mut new_doc = PortRequest::clone(doc);
        new_doc.comments.set(all);
        let events = comment_events(ask, &new_doc, &new);
        Ok((new_doc, events))
    })
    .await
}

/// `DELETE /{id}`: soft delete, only while unconfirmed, rejected or canceled. Returns the
/// request as it was.
pub async fn delete(ask: &Ask<'_>, id: &PortRequestId) -> Result<Saved, AppError> {
    let changed = change(ask, id, Again::OnConflict, async |doc, _| {
        if !state_of(doc)?.is_deletable() {
            return Err(AppError::NotDeletable);
        }
        let mut deleted = PortRequest::clone(doc);
        deleted.deleted.set(true);
        Ok((Some(Write::Document { doc: deleted, events: vec![] }), (doc.clone(), ask.who.is_authority(doc))))
    })
    .await?;
    let (before, is_authority) = changed.outcome;
    Ok(Saved { doc: before, is_authority })
}

/// A request reachable from `account`, for reading; and whether `who` sees its private
/// comments.
pub async fn read(state: &AppState, who: &Who, account: &AccountId, id: &PortRequestId) -> Result<Saved, AppError> {
    let doc = load_in_scope(state, account, id).await?;
    let is_authority = who.is_authority(&doc);
    Ok(Saved { doc, is_authority })
}
