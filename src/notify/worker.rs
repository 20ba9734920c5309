//! The delivery worker: claims due outbox items with a revision-guarded lease (so several
//! instances on one CouchDB deliver each item once, and a crashed instance's items are taken
//! over when its lease runs out), delivers them, and records every attempt.

use super::email::File;
use crate::couch::{StoreError, ViewQuery, dbs, design};
use crate::directory::Account;
use crate::domain::ids::{AccountId, new_doc_id};
use crate::domain::notifications::{
    Audience, Happening, carrier_push_body, email_data, is_private_ip, retry_delay, signature,
};
use crate::domain::port_state::PortState;
use crate::domain::time::{now_gregorian, now_unix};
use crate::port_requests::find_authority;
use crate::state::AppState;
use actix_web::web;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

const BATCH: u64 = 50;

pub fn spawn(state: web::Data<AppState>) {
    if !state.settings.outbox.worker {
        return;
    }
    tokio::spawn(run(state.clone()));
    tokio::spawn(reminders(state));
}

async fn run(state: web::Data<AppState>) {
    let instance = new_doc_id();
    loop {
        let mut full = false;
        match due(&state).await {
            Ok(items) => {
                full = items.len() as u64 == BATCH;
                futures_util::stream::iter(items).for_each_concurrent(8, |item| process(&state, &instance, item)).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the outbox"),
        }
        if !full {
            tokio::select! {
                _ = tokio::time::sleep(state.settings.outbox.poll) => {}
                _ = state.outbox.wake.notified() => {}
            }
        }
    }
}

async fn due(state: &AppState) -> Result<Vec<Value>, StoreError> {
    let queue = state.outbox.queue();
    let query =
        ViewQuery { limit: Some(BATCH), ..ViewQuery::range(json!([queue, 0]), json!([queue, now_unix()])).with_docs() };
    Ok(state.couch.view(dbs::SERVICE, "outbox", "due", &query).await?.into_iter().filter_map(|r| r.doc).collect())
}

enum Outcome {
    Delivered(Vec<String>),
    Skipped(String),
    Failed(String),
    /// The port request does not show the event yet: look again shortly.
    NotYet,
}

async fn process(state: &AppState, instance: &str, mut item: Value) {
    let now = now_unix();
    // The view row may be older than the document include_docs returned: another instance may
    // have delivered the item in between, so the document itself must still say it is due.
    let due = item["status"] == "pending" && item["next_attempt_at"].as_i64().is_none_or(|at| at <= now);
    if !due || item.get("lease_until").and_then(Value::as_i64).is_some_and(|until| until > now) {
        return;
    }
    item["lease_until"] = json!(now + state.settings.outbox.lease.as_secs() as i64);
    item["lease_owner"] = json!(instance);
    match state.couch.save(dbs::SERVICE, &mut item).await {
        Ok(_) => {}
        Err(StoreError::Conflict) => return, // another instance has it
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim an outbox item");
            return;
        }
    }
    let outcome = deliver(state, &item).await;
    record(state, item, outcome).await;
}

async fn record(state: &AppState, mut item: Value, outcome: Outcome) {
    let now = now_unix();
    let cfg = &state.settings.outbox;
    let failures =
        item["attempts"].as_array().map_or(0, |a| a.iter().filter(|x| x["result"] == "error").count()) as u32;
    let result = match &outcome {
        Outcome::Delivered(_) => "delivered",
        Outcome::Skipped(_) => "skipped",
        Outcome::Failed(_) => "error",
        Outcome::NotYet => "waiting",
    };
    crate::metrics::get().deliveries.with_label_values(&[item["channel"].as_str().unwrap_or("unknown"), result]).inc();
    let (status, attempt, next) = match outcome {
        Outcome::Delivered(to) => {
            item["recipients"] = json!(to);
            ("delivered", Some(json!({"at": now, "result": "delivered"})), None)
        }
        Outcome::Skipped(why) => ("skipped", Some(json!({"at": now, "result": "skipped", "error": why})), None),
        Outcome::NotYet => ("pending", None, Some(now + 1)),
        Outcome::Failed(error) => {
            tracing::info!(item = %item["_id"], %error, "notification not delivered yet");
            let created = item["created"].as_i64().unwrap_or(now);
            let gave_up = now - created > cfg.give_up_after.as_secs() as i64;
            let delay = retry_delay(failures + 1, cfg.retry_base, cfg.retry_max);
            let next = now + (delay.as_millis() as i64 + 999) / 1000;
            (
                if gave_up { "failed" } else { "pending" },
                Some(json!({"at": now, "result": "error", "error": error})),
                Some(next),
            )
        }
    };
    if let (Some(a), Some(list)) = (attempt, item["attempts"].as_array_mut()) {
        list.push(a);
    }
    item["status"] = json!(status);
    if let Some(n) = next {
        item["next_attempt_at"] = json!(n);
    }
    if let Some(obj) = item.as_object_mut() {
        obj.remove("lease_until");
        obj.remove("lease_owner");
    }
    if let Err(e) = state.couch.save(dbs::SERVICE, &mut item).await {
        // the lease will run out and the item will be tried again
        tracing::warn!(error = %e, "cannot record an outbox attempt");
    }
}

/// A completion that wrote number documents but never saved the request as completed: the
/// number documents of this request are removed again, from the numbers databases and the
/// owner's account database.
async fn undo_completion(state: &AppState, item: &Value, doc: &Value) -> Result<Outcome, String> {
    if PortState::of_doc(doc) == PortState::Completed {
        return Ok(Outcome::Skipped("completed after all".into()));
    }
    let id = item["port_request_id"].as_str().unwrap_or_default();
    let owner = item["account_id"].as_str().and_then(AccountId::from_any).ok_or("the request has no owner")?;
    let numbers: Vec<String> = item["numbers"]
        .as_array()
        .map(|n| n.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut dbs: Vec<(String, Vec<String>)> = vec![(owner.db_name(), numbers.clone())];
    for n in &numbers {
        dbs.push((crate::domain::phone_number::numbers_db_name(n), vec![n.clone()]));
    }
    let mut removed = Vec::new();
    for (db, ids) in dbs {
        let ours: Vec<Value> = state
            .couch
            .get_many(&db, &ids)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|d| d["port_id"] == json!(id) && d["pvt_assigned_to"] == json!(owner))
            .map(|d| json!({ "_id": d["_id"], "_rev": d["_rev"], "_deleted": true }))
            .collect();
        if ours.is_empty() {
            continue;
        }
        for r in state.couch.bulk_save(&db, &ours).await.map_err(|e| e.to_string())? {
            r.map_err(|e| format!("removing a number document: {e}"))?;
        }
        removed.extend(ours.iter().filter_map(|d| d["_id"].as_str().map(str::to_owned)));
    }
    tracing::warn!(port_request = id, ?removed, "removed the number documents of a completion that was never saved");
    Ok(Outcome::Delivered(removed))
}

/// Does the port request show the event the item announces?
fn proven(proof: &Value, doc: &Value) -> bool {
    match proof["kind"].as_str() {
        Some("transition") => crate::domain::port_request::transitions(doc).iter().any(|t| {
            t.pointer("/transition/new") == Some(&proof["state"])
                && t.get("timestamp") == Some(&proof["timestamp"])
                && t.pointer("/authorization/account/id") == Some(&proof["account_id"])
        }),
        Some("comment") => crate::domain::comments::of(doc)
            .iter()
            .any(|c| c.get("timestamp") == Some(&proof["timestamp"]) && c.get("content") == Some(&proof["content"])),
        _ => true,
    }
}

async fn deliver(state: &AppState, item: &Value) -> Outcome {
    let id = item["port_request_id"].as_str().unwrap_or_default();
    let doc = match state.couch.get(dbs::PORT_REQUESTS, id).await {
        Ok(Some(doc)) if doc.get("pvt_deleted") != Some(&json!(true)) => doc,
        Ok(_) => return Outcome::Skipped("the port request is gone".into()),
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let is_guard = item["channel"] == "completion_guard";
    if !proven(&item["proof"], &doc) {
        let age = now_unix() - item["created"].as_i64().unwrap_or(0);
        return match (age < state.settings.outbox.proof_grace.as_secs() as i64, is_guard) {
            (true, _) => Outcome::NotYet,
            (false, true) => undo_completion(state, item, &doc).await.unwrap_or_else(Outcome::Failed),
            (false, false) => Outcome::Skipped("the change was never saved".into()),
        };
    }
    if is_guard {
        return Outcome::Skipped("the completion was saved".into());
    }
    let result = match item["channel"].as_str() {
        Some("email") => deliver_email(state, item, &doc).await,
        Some("webhook") => deliver_webhook(state, item).await,
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

async fn deliver_email(state: &AppState, item: &Value, doc: &Value) -> Result<Outcome, String> {
    let template = item["event"].as_str().unwrap_or_default();
    let (owner, authority) = owner_and_authority(state, doc).await?;
    let to = match serde_json::from_value::<Audience>(item["audience"].clone()).map_err(|e| e.to_string())? {
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
    let happening = Happening {
        reason: item["reason"].as_str().map(str::to_owned),
        reason_author: item["reason_author"].as_str().map(str::to_owned),
        comment: item.get("comment").filter(|c| c.is_object()).cloned(),
        at: item["event_at"].as_i64().or(Some(now_gregorian())),
    };
    let empty = json!({});
    let data = email_data(
        doc,
        owner.as_ref().map_or(&empty, |o| &o.doc),
        authority_doc.as_ref().map_or(&empty, |a| &a.doc),
        &happening,
        timezone,
    );
    let rendered = state.mailer.render(template, &data)?;
    let files =
        if matches!(template, "port_request" | "port_request_admin") { attachments(state, doc).await? } else { vec![] };
    let reply_to = if template == "port_request_admin" { send_to(doc).into_iter().next() } else { None };
    let id = item["_id"].as_str().unwrap_or_default();
    state.mailer.send(id, &to, reply_to.as_deref(), &rendered, files).await?;
    Ok(Outcome::Delivered(to))
}

/// Where a webhook URL leads: every address its host resolves to. Private ones are refused
/// unless allowed (SSRF), and the request is then pinned to the addresses that were checked,
/// without following redirects, so neither a second DNS answer nor a 3xx can lead elsewhere.
/// `Err` is the outcome of a call that cannot be made.
async fn webhook_client(state: &AppState, url: &url::Url) -> Result<reqwest::Client, Outcome> {
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<std::net::SocketAddr> = match url.host() {
        Some(url::Host::Domain(d)) => tokio::net::lookup_host((d, port))
            .await
            .map_err(|e| Outcome::Failed(format!("webhook host {d}: {e}")))?
            .collect(),
        Some(url::Host::Ipv4(ip)) => vec![(ip, port).into()],
        Some(url::Host::Ipv6(ip)) => vec![(ip, port).into()],
        None => return Err(Outcome::Skipped("the webhook URL has no host".into())),
    };
    if addrs.is_empty() {
        return Err(Outcome::Failed("the webhook host has no address".into()));
    }
    if !state.settings.outbox.allow_private_webhooks && addrs.iter().any(|a| is_private_ip(a.ip())) {
        return Err(Outcome::Skipped("the webhook URL points to a private network".into()));
    }
    let mut builder = reqwest::Client::builder()
        .user_agent(crate::state::USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    if let Some(url::Host::Domain(d)) = url.host() {
        builder = builder.resolve_to_addrs(d, &addrs);
    }
    builder.build().map_err(|e| Outcome::Failed(format!("webhook client: {e}")))
}

async fn deliver_webhook(state: &AppState, item: &Value) -> Result<Outcome, String> {
    let raw = item.pointer("/webhook/url").and_then(Value::as_str).unwrap_or_default();
    let body = item.pointer("/webhook/body").and_then(Value::as_str).unwrap_or("{}").to_owned();
    let url = url::Url::parse(raw).map_err(|e| format!("bad webhook URL: {e}"))?;
    let client = match webhook_client(state, &url).await {
        Ok(client) => client,
        Err(outcome) => return Ok(outcome),
    };
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-kazoo-port-event-id", item["_id"].as_str().unwrap_or_default());
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

/// Queues a `port_unconfirmed` reminder for requests left unconfirmed longer than the
/// reminder age, at most once per age (the item id is derived from the period).
async fn reminders(state: web::Data<AppState>) {
    loop {
        let age = state.settings.outbox.reminder_age.as_secs() as i64;
        let now = now_gregorian();
        let query = ViewQuery { limit: Some(1000), ..ViewQuery::range(json!(0), json!(now - age)).with_docs() };
        match state.couch.view(dbs::PORT_REQUESTS, design::OWN_DDOC, "unconfirmed_by_created", &query).await {
            Ok(rows) => {
                let items: Vec<Value> = rows
                    .into_iter()
                    .filter_map(|r| r.doc)
                    .map(|doc| {
                        let period = (now - doc["pvt_created"].as_i64().unwrap_or(now)) / age.max(1);
                        state.outbox.reminder_item(&doc, period)
                    })
                    .collect();
                if !items.is_empty() {
                    // already queued ones come back as conflicts: that is the point
                    let _ = state.couch.bulk_save(dbs::SERVICE, &items).await;
                    state.outbox.wake();
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot look for unconfirmed requests"),
        }
        tokio::time::sleep(state.settings.outbox.reminder_interval).await;
    }
}
