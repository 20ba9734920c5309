//! Sending: the records this instance holds (made by its follower, or taken over once their
//! lease ran out) are delivered a few at a time, and every attempt is recorded on the record.

use super::records::{self, Outcome};
use crate::couch::{StoreError, ViewQuery, dbs, design};
use crate::directory::Account;
use crate::domain::events::{self, Event, What};
use crate::domain::fone;
use crate::domain::ids::{AccountId, derived_id};
use crate::domain::notifications::{Audience, Happening, carrier_push_body, email_data, signature, webhook_body};
use crate::domain::port_state::PortState;
use crate::domain::time::{now_gregorian, now_unix};
use crate::email::File;
use crate::port_requests::find_authority;
use crate::state::AppState;
use crate::webhook::{self, Refusal};
use actix_web::web;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How many deliveries one instance makes at a time.
const CONCURRENCY: usize = 32;
/// How many due records one look takes.
const BATCH: u64 = 50;

pub fn spawn(state: web::Data<AppState>) {
    let sender =
        Sender { state: state.clone(), permits: Arc::new(Semaphore::new(CONCURRENCY)), due: Arc::new(Notify::new()) };
    tokio::spawn(super::follower::run(state.clone(), sender.clone()));
    tokio::spawn(due(state.clone(), sender.clone()));
    tokio::spawn(reminders(state.clone(), sender));
    tokio::spawn(repairs(state));
}

/// Settles the journals of completions that were never seen through, now and then.
async fn repairs(state: web::Data<AppState>) {
    let grace = state.settings.outbox.completion_grace;
    loop {
        match crate::port_requests::completion::repair(&state.couch, grace.as_secs() as i64).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(removed = n, "removed number documents of unfinished completions"),
            Err(e) => tracing::warn!(error = %e, "cannot look for unfinished completions"),
        }
        tokio::time::sleep(grace).await;
    }
}

/// Delivers the records this instance holds, a few at a time. Whoever hands a record over
/// waits for a free slot first, so no held record waits in a queue while its lease runs out.
#[derive(Clone)]
pub struct Sender {
    state: web::Data<AppState>,
    permits: Arc<Semaphore>,
    /// Rung when records were made that nobody holds (no slot was free): the look for due
    /// records goes at once instead of at its next round.
    due: Arc<Notify>,
}

impl Sender {
    /// Waits for a free slot (before taking a lease).
    pub async fn slot(&self) -> OwnedSemaphorePermit {
        self.permits.clone().acquire_owned().await.expect("the semaphore is never closed")
    }

    /// Records are due that nobody holds: look for them now.
    pub fn due_now(&self) {
        self.due.notify_one();
    }

    /// As many free slots as there are, up to `n`, without waiting.
    pub fn free_slots(&self, n: usize) -> Vec<OwnedSemaphorePermit> {
        (0..n).map_while(|_| self.permits.clone().try_acquire_owned().ok()).collect()
    }

    /// Delivers a record held now, in the slot taken for it.
    pub fn send(&self, record: Value, slot: OwnedSemaphorePermit) {
        let state = self.state.clone();
        tokio::spawn(async move {
            send(&state, record).await;
            drop(slot);
        });
    }
}

/// One attempt at a record this instance holds, and its outcome on the record.
async fn send(state: &AppState, mut record: Value) {
    // a lease that ran out may be someone else's by now
    if record["next_attempt_at"].as_i64().is_some_and(|until| until <= now_unix()) {
        return;
    }
    let outcome = deliver(state, &record).await;
    let channel = record["channel"].as_str().unwrap_or("unknown").to_owned();
    crate::metrics::get().deliveries.with_label_values(&[channel.as_str(), outcome.result()]).inc();
    if let Outcome::Failed(error) = &outcome {
        tracing::info!(record = %record["_id"], %error, "notification not delivered yet");
    }
    records::record_outcome(&mut record, outcome, &state.settings.outbox);
    match state.couch.save(dbs::SERVICE, &mut record).await {
        Ok(_) => {}
        // our lease ran out and someone took the record over: theirs is the next attempt
        Err(StoreError::Conflict) => {
            tracing::warn!(record = %record["_id"], "a delivery record changed hands mid-delivery")
        }
        // the lease will run out and the record will be tried again (at least once)
        Err(e) => tracing::warn!(error = %e, "cannot record a delivery attempt"),
    }
}

/// Takes over due records: retries after a backoff, and records whose holder's lease ran out.
/// The view only finds candidates (it may lag); the lease is a revision-checked write.
async fn due(state: web::Data<AppState>, sender: Sender) {
    let cfg = &state.settings.outbox;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.poll) => {}
            _ = sender.due.notified() => {}
        }
        let queue = state.settings.outbox.queue.as_str();
        let now = now_unix();
        let query =
            ViewQuery { limit: Some(BATCH), ..ViewQuery::range(json!([queue, 0]), json!([queue, now])).with_docs() };
        let rows = match state.couch.view(dbs::SERVICE, "deliveries", "due", &query).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for due deliveries");
                continue;
            }
        };
        for mut record in rows.into_iter().filter_map(|r| r.doc) {
            if !records::is_due(&record, now) {
                continue;
            }
            let slot = sender.slot().await;
            records::take_lease(&mut record, cfg.lease.as_secs());
            match state.couch.save(dbs::SERVICE, &mut record).await {
                Ok(_) => sender.send(record, slot),
                Err(StoreError::Conflict) => {} // someone else has it
                Err(e) => tracing::warn!(error = %e, "cannot take a delivery record"),
            }
        }
    }
}

/// Queues a `port_unconfirmed` reminder for requests left unconfirmed longer than the reminder
/// age, at most once per age: the record id follows from the request and the period, so
/// whoever makes it first holds it.
async fn reminders(state: web::Data<AppState>, sender: Sender) {
    let cfg = &state.settings.outbox;
    loop {
        let age = cfg.reminder_age.as_secs() as i64;
        let now = now_gregorian();
        let query = ViewQuery { limit: Some(1000), ..ViewQuery::range(json!(0), json!(now - age)).with_docs() };
        match state.couch.view(dbs::PORT_REQUESTS, design::OWN_DDOC, "unconfirmed_by_created", &query).await {
            Ok(rows) => {
                let made: Vec<Value> = rows
                    .into_iter()
                    .filter_map(|r| r.doc)
                    .map(|doc| {
                        let id = doc["_id"].as_str().unwrap_or_default();
                        let period = (now - doc["pvt_created"].as_i64().unwrap_or(now)) / age.max(1);
                        let record_id = events::reminder_record_id(id, period);
                        records::reminder(
                            record_id,
                            &doc,
                            state.settings.outbox.queue.as_str(),
                            period,
                            cfg.lease.as_secs(),
                        )
                    })
                    .collect();
                // those made already come back as conflicts: that is the point
                for mut record in made {
                    let slot = sender.slot().await;
                    if let Ok(rev) = state.couch.save(dbs::SERVICE, &mut record).await {
                        record["_rev"] = json!(rev);
                        sender.send(record, slot);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot look for unconfirmed requests"),
        }
        tokio::time::sleep(cfg.reminder_interval).await;
    }
}

/// The request as it is now, and the event the record announces (none for reminders).
async fn deliver(state: &AppState, record: &Value) -> Outcome {
    let id = record["port_request_id"].as_str().unwrap_or_default();
    let doc = match state.couch.get(dbs::PORT_REQUESTS, id).await {
        Ok(Some(doc)) if doc.get("pvt_deleted") != Some(&json!(true)) => doc,
        Ok(_) => return Outcome::Skipped("the port request is gone".into()),
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let event = match record["event_id"].as_str() {
        Some(event_id) => match events::of(&doc).into_iter().find(|e| e.id == event_id) {
            Some(e) => Some(e),
            None => return Outcome::Skipped("the change is not in the port request any more".into()),
        },
        None if PortState::of_doc(&doc) != PortState::Unconfirmed => {
            return Outcome::Skipped("the request is no longer unconfirmed".into());
        }
        None => None,
    };
    let result = match record["channel"].as_str() {
        Some("email") => deliver_email(state, record, &doc, event.as_ref()).await,
        Some("webhook") => match &event {
            Some(e) => deliver_webhook(state, record, &doc, e).await,
            None => Ok(Outcome::Skipped("a webhook without its event".into())),
        },
        Some("carrier_push") => deliver_push(state, &doc).await,
        other => Err(format!("unknown channel {other:?}")),
    };
    result.unwrap_or_else(Outcome::Failed)
}

fn send_to(doc: &Value) -> Vec<String> {
    match doc.pointer("/notifications/email/send_to") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => vec![],
    }
}

/// The port authority's `port.support_email`, else the emails of its admin users.
async fn authority_emails(state: &AppState, authority: &AccountId) -> Result<Vec<String>, String> {
    let wl = state.directory.whitelabel(authority).await.map_err(|e| e.to_string())?;
    if let Some(email) = wl.as_ref().and_then(|w| w.pointer("/port/support_email")).and_then(Value::as_str) {
        return Ok(vec![email.to_owned()]);
    }
    let users = state.couch.all_docs(&authority.db_name(), 10_000).await.map_err(|e| e.to_string())?;
    Ok(users
        .iter()
        .filter(|u| u["pvt_type"] == "user" && u["priv_level"] == "admin" && u.get("pvt_deleted") != Some(&json!(true)))
        .filter_map(|u| u["email"].as_str().map(str::to_owned))
        .collect())
}

async fn owner_and_authority(
    state: &AppState,
    doc: &Value,
) -> Result<(Option<std::sync::Arc<Account>>, AccountId), String> {
    let owner_id = doc["pvt_account_id"].as_str().and_then(AccountId::from_any);
    let owner = match &owner_id {
        Some(id) => state.directory.account(id).await.map_err(|e| e.to_string())?,
        None => None,
    };
    let authority = match doc["pvt_port_authority"].as_str().and_then(AccountId::from_any) {
        Some(a) => a,
        None => match &owner {
            Some(o) => find_authority(&state.directory, o).await.map_err(|e| e.to_string())?,
            None => return Err("the request has no owner".into()),
        },
    };
    Ok((owner, authority))
}

async fn attachments(state: &AppState, doc: &Value) -> Result<Vec<File>, String> {
    let id = doc["_id"].as_str().unwrap_or_default();
    let mut files = Vec::new();
    for name in doc
        .get("_attachments")
        .and_then(Value::as_object)
        .map(|a| a.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if let Some((content_type, bytes)) =
            state.couch.get_attachment(dbs::PORT_REQUESTS, id, &name).await.map_err(|e| e.to_string())?
        {
            files.push(File { name, content_type, bytes: bytes.to_vec() });
        }
    }
    Ok(files)
}

/// What the templates say happened.
fn happening(event: Option<&Event>) -> Happening {
    match event.map(|e| (e, &e.what)) {
        Some((e, What::Transition { reason, reason_author, .. })) => Happening {
            reason: reason.clone(),
            reason_author: reason_author.clone(),
            at: Some(e.at),
            ..Happening::default()
        },
        Some((e, What::Comment { comment })) => {
            Happening { comment: Some(comment.clone()), at: Some(e.at), ..Happening::default() }
        }
        Some((e, What::Signature { .. })) => Happening { at: Some(e.at), ..Happening::default() },
        Some((e, What::NumberProgress { number, state, previous, reason, reason_author })) => Happening {
            reason: reason.clone(),
            reason_author: reason_author.clone(),
            at: Some(e.at),
            number: Some((number.clone(), *state, *previous)),
            ..Happening::default()
        },
        None => Happening { at: Some(now_gregorian()), ..Happening::default() },
    }
}

async fn deliver_email(
    state: &AppState,
    record: &Value,
    doc: &Value,
    event: Option<&Event>,
) -> Result<Outcome, String> {
    let template = record["event"].as_str().unwrap_or_default();
    let (owner, authority) = owner_and_authority(state, doc).await?;
    let to = match serde_json::from_value::<Audience>(record["audience"].clone()).map_err(|e| e.to_string())? {
        Audience::Submitter => send_to(doc),
        Audience::Authority => authority_emails(state, &authority).await?,
    };
    if to.is_empty() {
        return Ok(Outcome::Skipped("no recipient".into()));
    }
    let authority_doc = state.directory.account(&authority).await.map_err(|e| e.to_string())?;
    let timezone = owner
        .as_ref()
        .and_then(|o| o.own_timezone())
        .and_then(crate::domain::schedule::parse_timezone)
        .unwrap_or(chrono_tz::UTC);
    let empty = json!({});
    let mut data = email_data(
        doc,
        owner.as_ref().map_or(&empty, |o| &o.doc),
        authority_doc.as_ref().map_or(&empty, |a| &a.doc),
        &happening(event),
        timezone,
    );
    if let Some(What::Signature { signer_name, .. }) = event.map(|e| &e.what) {
        data["signature"] = json!({ "signer_name": signer_name });
    }
    let rendered = state.mailer.render(template, &data)?;
    let files =
        if matches!(template, "port_request" | "port_request_admin") { attachments(state, doc).await? } else { vec![] };
    let reply_to = if template == "port_request_admin" { send_to(doc).into_iter().next() } else { None };
    let id = record["_id"].as_str().unwrap_or_default();
    let event_id = record["event_id"].as_str().unwrap_or(id);
    let message = crate::email::Envelope { message_id: &derived_id(id), delivery: id, event: event_id };
    state.mailer.send(&message, &to, reply_to.as_deref(), &rendered, files).await?;
    Ok(Outcome::Delivered(to))
}

async fn deliver_webhook(state: &AppState, record: &Value, doc: &Value, event: &Event) -> Result<Outcome, String> {
    let Some(raw) = event.webhook_url.as_deref() else { return Ok(Outcome::Skipped("no webhook".into())) };
    let url = url::Url::parse(raw).map_err(|e| format!("bad webhook URL: {e}"))?;
    let client = match webhook::client(&url, state.settings.outbox.allow_private_webhooks).await {
        Ok(client) => client,
        Err(Refusal::Refused(why)) => return Ok(Outcome::Skipped(why)),
        Err(Refusal::NotNow(why)) => return Err(why),
    };
    let mut body = match &event.what {
        What::Transition { state: to, previous, reason, .. } => {
            let mut b = webhook_body("transition", doc, *previous, reason.as_deref(), now_unix());
            b["port_state"] = json!(to);
            b
        }
        What::Comment { .. } => webhook_body("comment", doc, None, None, now_unix()),
        What::Signature { signer_name, .. } => {
            let mut b = webhook_body("signature", doc, None, None, now_unix());
            b["signer_name"] = json!(signer_name);
            b
        }
        What::NumberProgress { number, state: to, previous, reason, .. } => {
            let mut b = webhook_body("number_progress", doc, None, reason.as_deref(), now_unix());
            b["number"] = json!(number);
            b["number_state"] = json!(to);
            b["previous_number_state"] = json!(previous);
            b
        }
    };
    if doc.get(fone::ORIGINAL).is_some() {
        // a request made through the Fone Dynamics API: its status update, their way, in the
        // state the event moved it to (it may have moved on since)
        let parent = doc["pvt_tree"].as_array().and_then(|t| t.last()).and_then(Value::as_str).unwrap_or_default();
        let mut as_then = doc.clone();
        if let What::Transition { state: to, .. } = &event.what {
            as_then["pvt_port_state"] = json!(to);
        }
        body["PortingRequest"] = fone::porting_request(&as_then, parent);
    }
    let body = body.to_string();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-kazoo-port-event-id", record["_id"].as_str().unwrap_or_default());
    if let Some(secret) = &state.settings.webhook_secret {
        req = req.header("x-signature-sha256", signature(secret.expose(), body.as_bytes()));
    }
    let resp = req.body(body).send().await.map_err(|e| format!("webhook: {e}"))?;
    if resp.status().is_success() {
        Ok(Outcome::Delivered(vec![raw.to_owned()]))
    } else {
        Err(format!("webhook answered {}", resp.status()))
    }
}

/// `knm_port_request:send_submitted_requests`, for one request: the JSON, then each
/// attachment; `pvt_sent` only when every call answered 200.
async fn deliver_push(state: &AppState, doc: &Value) -> Result<Outcome, String> {
    if PortState::of_doc(doc) != PortState::Submitted || crate::domain::port_request::is_sent(doc) {
        return Ok(Outcome::Skipped("no longer a submitted, unsent request".into()));
    }
    let (owner, _) = owner_and_authority(state, doc).await?;
    let Some(base) = owner.as_ref().and_then(|o| o.doc["submitted_port_requests_url"].as_str().map(str::to_owned))
    else {
        return Ok(Outcome::Skipped("the account has no submitted_port_requests_url".into()));
    };
    let id = doc["_id"].as_str().unwrap_or_default();
    let agent = state.settings.node_name.clone();
    let url = format!("{}/{id}", base.trim_end_matches('/'));
    let resp = state
        .http
        .post(&url)
        .header("user-agent", &agent)
        .timeout(Duration::from_secs(30))
        .json(&carrier_push_body(doc))
        .send()
        .await
        .map_err(|e| format!("carrier push: {e}"))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("carrier push answered {}", resp.status()));
    }
    for file in attachments(state, doc).await? {
        let resp = state
            .http
            .post(format!("{url}/{}", crate::couch::encode(&file.name)))
            .header("user-agent", &agent)
            .header("content-type", &file.content_type)
            .timeout(Duration::from_secs(60))
            .body(file.bytes)
            .send()
            .await
            .map_err(|e| format!("carrier push of {}: {e}", file.name))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!("carrier push of {} answered {}", file.name, resp.status()));
        }
    }
    for _ in 0..10 {
        let Ok(Some(mut current)) = state.couch.get(dbs::PORT_REQUESTS, id).await else { break };
        current["pvt_sent"] = json!(true);
        match state.couch.save(dbs::PORT_REQUESTS, &mut current).await {
            Ok(_) => return Ok(Outcome::Delivered(vec![base])),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(format!("recording pvt_sent: {e}")),
        }
    }
    Err("could not record pvt_sent".into())
}
