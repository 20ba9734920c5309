//! A port authority's daily digest as a delivery: the mail to the authority (its
//! `port.support_email`, else its admins), or its message on Kazoo's bus. What it lists is read
//! when it is sent; with nothing to say, nothing is sent.

use super::channels::authority_emails;
use crate::app::desk;
use crate::channels::email::{Envelope, Outgoing};
use crate::domain::bus;
use crate::domain::deliveries::{DeliveryDoc, Outcome};
use crate::domain::ids::AccountId;
use crate::state::AppState;
use serde_json::{Value, json};

pub async fn deliver(state: &AppState, record: &DeliveryDoc) -> Outcome {
    let Some(authority) = record.account_id.as_deref().and_then(AccountId::from_any) else {
        return Outcome::Skipped("a digest without its authority".into());
    };
    let day = record.rest.get("digest_day").and_then(Value::as_str).unwrap_or_default();
    let digest = match desk::digest(state, &authority, day).await {
        Ok(d) => d,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    if digest.is_empty() {
        return Outcome::Skipped("nothing needs attention".into());
    }
    let sent = match record.channel.as_str() {
        "email" => mail(state, record, &digest).await,
        "bus" => publish(state, record, &digest).await,
        other => Err(format!("unknown channel {other:?}")),
    };
    sent.unwrap_or_else(Outcome::Failed)
}

/// The digest's template data.
pub fn data(digest: &desk::Digest) -> Value {
    let mut d = json!(digest);
    d["attention_count"] = json!(digest.attention.len());
    d["owed_count"] = json!(digest.owed.len());
    json!({ "digest": d, "port_authority": { "id": digest.authority_id, "name": digest.authority_name } })
}

async fn mail(state: &AppState, record: &DeliveryDoc, digest: &desk::Digest) -> Result<Outcome, String> {
    let to = authority_emails(state, &digest.authority_id).await?;
    if to.is_empty() {
        return Ok(Outcome::Skipped("no recipient".into()));
    }
    let rendered = state.mailer.render(record.event.as_str(), &data(digest))?;
    let outgoing =
        Outgoing { to: &to, cc: &[], bcc: &[], from: None, reply_to: None, rendered: &rendered, files: vec![] };
    super::mail::send(state, record, outgoing).await?;
    Ok(Outcome::Delivered { to, notes: vec![] })
}

async fn publish(state: &AppState, record: &DeliveryDoc, digest: &desk::Digest) -> Result<Outcome, String> {
    let Some(on_bus) = &state.bus else { return Ok(Outcome::Skipped("AMQP_URL is not set here".into())) };
    let name = record.event.as_str();
    on_bus
        .publish(&bus::routing_key(name), |_| {
            let publisher = super::bus::publisher(state, "");
            bus::digest(&data(digest), digest.authority_id.as_str(), &record.id, &publisher).to_string().into_bytes()
        })
        .await?;
    crate::metrics::get().bus_published.with_label_values(&[name]).inc();
    Ok(Outcome::Delivered { to: vec![format!("bus:{}", bus::routing_key(name))], notes: vec![] })
}

/// `kazoo-port-requests digest --account ID [--dry-run]`: an authority's digest as it stands,
/// printed (its text) or mailed now (outside the day's record: the day's digest still goes).
pub async fn now(state: &AppState, authority: &AccountId, dry_run: bool) -> anyhow::Result<String> {
    let desk = desk::desk_of(state, authority).await?;
    let day = desk.calendar.local(crate::domain::time::now_gregorian()).date_naive().to_string();
    let digest = desk::digest(state, authority, &day).await?;
    if digest.is_empty() {
        return Ok(format!("nothing needs the attention of {authority}: no digest"));
    }
    let rendered =
        state.mailer.render(crate::domain::desk::digest::EVENT, &data(&digest)).map_err(anyhow::Error::msg)?;
    if dry_run {
        return Ok(format!("Subject: {}\n\n{}", rendered.subject, rendered.text.unwrap_or_default()));
    }
    let to = authority_emails(state, authority).await.map_err(anyhow::Error::msg)?;
    if to.is_empty() {
        anyhow::bail!("{authority} has no port.support_email and no admin with an email");
    }
    let id = format!("digest:{authority}:{day}:{}", crate::domain::ids::new_doc_id());
    let envelope = Envelope { message_id: &crate::domain::ids::derived_id(&id), delivery: &id, event: &id };
    let outgoing =
        Outgoing { to: &to, cc: &[], bcc: &[], from: None, reply_to: None, rendered: &rendered, files: vec![] };
    state.mailer.send(&envelope, outgoing).await.map_err(anyhow::Error::msg)?;
    Ok(format!("digest of {authority} for {day} sent to {}", to.join(", ")))
}
