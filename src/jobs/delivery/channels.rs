//! One delivery: the request as it is now, the event the record announces, and the channel it
//! goes out on (a mail, a webhook call, the carrier push).

use crate::app::accounts::find_authority;
use crate::app::write::{Again, Ask, Who, Write, change};
use crate::channels::email::File;
use crate::channels::webhook::{self, Refusal};
use crate::domain::deliveries::{DeliveryDoc, Outcome};
use crate::domain::documents::account::AccountDoc;
use crate::domain::documents::port_request::PortRequest;
use crate::domain::events::{Event, What};
use crate::domain::fone;
use crate::domain::ids::AccountId;
use crate::domain::notifications::{Audience, Happening, carrier_push_body, email_data, signature, webhook_body};
use crate::domain::port_state::PortState;
use crate::domain::time::{now_gregorian, now_unix};
use crate::state::AppState;
use crate::store::directory::Account;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The request as it is now, and the event the record announces (none for reminders).
pub async fn deliver(state: &Arc<AppState>, record: &DeliveryDoc) -> Outcome {
    if record.event == crate::domain::desk::digest::EVENT {
        return super::digest::deliver(state, record).await;
    }
    let doc = match state.port_requests.load(&record.port_request_id).await {
        Ok(Some(doc)) => doc,
        Ok(None) => return Outcome::Skipped("the port request is gone".into()),
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let event = match record.event_id.get() {
        Some(event_id) => match doc.events().find(|e| &e.id == event_id) {
            Some(e) => Some(e.clone()),
            None => return Outcome::Skipped("the change is not in the port request any more".into()),
        },
        None if doc.state() != Ok(PortState::Unconfirmed) => {
            return Outcome::Skipped("the request is no longer unconfirmed".into());
        }
        None => None,
    };
    if let Some(e) = &event
        && record.channel != "email"
        && let Some(why) = super::order::blocked(state, &doc, e, record).await
    {
        return Outcome::Wait(why);
    }
    let result = match record.channel.as_str() {
        "email" => deliver_email(state, record, &doc, event.as_ref()).await,
        "bus" => super::bus::deliver(state, record, &doc, event.as_ref()).await,
        "webhook" => match &event {
            Some(e) => deliver_webhook(state, record, &doc, e).await,
            None => Ok(Outcome::Skipped("a webhook without its event".into())),
        },
        "carrier_push" => deliver_push(state, &doc).await,
        other => Err(format!("unknown channel {other:?}")),
    };
    result.unwrap_or_else(Outcome::Failed)
}

/// The port authority's `port.support_email`, else the emails of its admin users.
pub async fn authority_emails(state: &AppState, authority: &AccountId) -> Result<Vec<String>, String> {
    let wl = state.directory.whitelabel(authority).await.map_err(|e| e.to_string())?;
    if let Some(email) = wl.as_ref().and_then(|w| w.port.get()).and_then(|p| p.support_email.get()) {
        return Ok(vec![email.clone()]);
    }
    let users = state.directory.users(authority).await.map_err(|e| e.to_string())?;
    Ok(users.iter().filter(|u| u.is_admin()).filter_map(|u| u.email.get().cloned()).collect())
}

async fn owner_and_authority(state: &AppState, doc: &PortRequest) -> Result<(Option<Arc<Account>>, AccountId), String> {
    let owner = match doc.owner() {
        Some(id) => state.directory.account(id).await.map_err(|e| e.to_string())?,
        None => None,
    };
    let authority = match doc.authority.get() {
        Some(a) => a.clone(),
        None => match &owner {
            Some(o) => find_authority(&state.directory, o).await.map_err(|e| e.to_string())?,
            None => return Err("the request has no owner".into()),
        },
    };
    Ok((owner, authority))
}

async fn attachments(state: &AppState, doc: &PortRequest) -> Result<Vec<File>, String> {
    let mut files = Vec::new();
    for name in doc.attachment_names() {
        if let Some((content_type, bytes)) =
            state.port_requests.attachment_bytes(doc.id.as_str(), &name).await.map_err(|e| e.to_string())?
        {
            files.push(File { name, content_type, bytes: bytes.to_vec() });
        }
    }
    Ok(files)
}

/// What the templates say happened.
fn happening(event: Option<&Event>) -> Happening {
    match event.map(|e| (e, &e.what)) {
        Some((e, What::Transition { reason, reason_author, rejection, .. })) => Happening {
            reason: reason.clone(),
            reason_author: reason_author.clone(),
            rejection: rejection.clone(),
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

/// What a port mail is about, for `mail::deliver`.
pub struct Mail<'a> {
    pub doc: &'a PortRequest,
    pub owner: Option<Arc<Account>>,
    pub authority: AccountId,
    pub audience: Audience,
    pub happening: Happening,
    /// This service's template data (`domain::notifications::email_data`).
    pub data: serde_json::Value,
    pub reply_to: Option<String>,
    pub files: Vec<File>,
}

async fn deliver_email(
    state: &AppState,
    record: &DeliveryDoc,
    doc: &PortRequest,
    event: Option<&Event>,
) -> Result<Outcome, String> {
    let template = record.event.as_str();
    let (owner, authority) = owner_and_authority(state, doc).await?;
    let audience: Audience =
        serde_json::from_value(record.audience.get().cloned().unwrap_or_default()).map_err(|e| e.to_string())?;
    let authority_doc = state.directory.account(&authority).await.map_err(|e| e.to_string())?;
    let timezone = owner
        .as_ref()
        .and_then(|o| o.own_timezone())
        .and_then(crate::domain::schedule::parse_timezone)
        .unwrap_or(chrono_tz::UTC);
    let none = AccountDoc::default();
    let happening = happening(event);
    let mut data = email_data(
        doc,
        owner.as_ref().map_or(&none, |o| &o.doc),
        authority_doc.as_ref().map_or(&none, |a| &a.doc),
        &happening,
        timezone,
    );
    if let Some(What::Signature { signer_name, .. }) = event.map(|e| &e.what) {
        data["signature"] = json!({ "signer_name": signer_name });
    }
    let files =
        if matches!(template, "port_request" | "port_request_admin") { attachments(state, doc).await? } else { vec![] };
    let reply_to = if template == "port_request_admin" { doc.send_to().into_iter().next() } else { None };
    let mail = Mail { doc, owner, authority, audience, happening, data, reply_to, files };
    super::mail::deliver(state, record, mail).await
}

async fn deliver_webhook(
    state: &AppState,
    record: &DeliveryDoc,
    doc: &PortRequest,
    event: &Event,
) -> Result<Outcome, String> {
    let Some(raw) = event.webhook_url.as_deref() else { return Ok(Outcome::Skipped("no webhook".into())) };
    let url = url::Url::parse(raw).map_err(|e| format!("bad webhook URL: {e}"))?;
    let client = match webhook::client(&url, state.settings.webhooks.allow_private).await {
        Ok(client) => client,
        Err(Refusal::Refused(why)) => return Ok(Outcome::Skipped(why)),
        Err(Refusal::NotNow(why)) => return Err(why),
    };
    let mut body = match &event.what {
        What::Transition { state: to, previous, reason, rejection, .. } => {
            let mut b = webhook_body("transition", doc, *previous, reason.as_deref(), now_unix());
            b["port_state"] = json!(to);
            if let Some(r) = rejection {
                b["rejection"] = json!(r);
            }
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
    if doc.fone_dynamics.get().is_some() {
        // a request made through the Fone Dynamics API: its status update, their way, in the
        // state the event moved it to (it may have moved on since)
        let parent = doc.tree().last().map(|p| p.to_string()).unwrap_or_default();
        let mut as_then = doc.clone();
        if let What::Transition { state: to, .. } = &event.what {
            as_then.set_state(*to);
        }
        body["PortingRequest"] = fone::porting_request(&as_then, &parent);
    }
    let body = body.to_string();
    let mut req =
        client.post(url).header("content-type", "application/json").header("x-kazoo-port-event-id", record.id.as_str());
    if let Some(secret) = &state.settings.webhooks.secret {
        req = req.header("x-signature-sha256", signature(secret.expose(), body.as_bytes()));
    }
    let resp = req.body(body).send().await.map_err(|e| format!("webhook: {e}"))?;
    if resp.status().is_success() {
        Ok(Outcome::Delivered { to: vec![raw.to_owned()], notes: vec![] })
    } else {
        Err(format!("webhook answered {}", resp.status()))
    }
}

/// `knm_port_request:send_submitted_requests`, for one request: the JSON, then each
/// attachment; sent is recorded (through the one write path) only when every call answered 200.
async fn deliver_push(state: &Arc<AppState>, doc: &PortRequest) -> Result<Outcome, String> {
    if doc.state() != Ok(PortState::Submitted) || doc.is_sent() {
        return Ok(Outcome::Skipped("no longer a submitted, unsent request".into()));
    }
    let (owner, _) = owner_and_authority(state, doc).await?;
    let Some(base) = owner.as_ref().and_then(|o| o.doc.submitted_port_requests_url.get().cloned()) else {
        return Ok(Outcome::Skipped("the account has no submitted_port_requests_url".into()));
    };
    let agent = state.settings.node_name.clone();
    let url = format!("{}/{}", base.trim_end_matches('/'), doc.id);
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
            .post(format!("{url}/{}", crate::store::couch::encode(&file.name)))
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
    mark_sent(state, doc).await.map_err(|e| format!("recording that it was sent: {e}"))?;
    Ok(Outcome::Delivered { to: vec![base], notes: vec![] })
}

/// Records that the request was pushed to the carrier (Kazoo's `pvt_sent`), as the service.
async fn mark_sent(state: &Arc<AppState>, doc: &PortRequest) -> Result<(), crate::app::error::AppError> {
    let Some(owner) = doc.owner() else { return Ok(()) };
    let Some(owner) = state.directory.account(owner).await? else { return Ok(()) };
    let ask = Ask { state, who: &Who::Service, through: &owner, request_id: "carrier_push", if_match: None };
    change(&ask, &doc.id, Again::OnConflict, async |current, _| {
        let mut sent = PortRequest::clone(current);
        sent.sent.set(true.into());
        Ok((Some(Write::Document { doc: sent, events: vec![] }), ()))
    })
    .await?;
    Ok(())
}
