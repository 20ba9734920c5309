//! Kazoo's bus as a delivery channel: each port event (and reminder) published once, its
//! `Msg-ID` the delivery record's id (a consumer can tell a repeat, and teletype's answer
//! names the record it is about). With `EMAILS_BY=teletype` the record then waits for
//! teletype's `notify_update`, collected here into the delivery log, and is published again
//! when none comes in time, as Kazoo's own publisher does.

use crate::configuration::EmailsBy;
use crate::domain::bus::{self, Publisher, Update};
use crate::domain::deliveries::{self, DeliveryDoc, Outcome};
use crate::domain::documents::port_request::PortRequest;
use crate::domain::events::Event;
use crate::domain::time::now_unix;
use crate::state::AppState;
use crate::store::{StoreError, dbs};
use std::sync::Arc;

pub(super) fn publisher(state: &AppState, server_id: &str) -> Publisher {
    Publisher {
        app_name: "kazoo_port_requests".into(),
        app_version: env!("CARGO_PKG_VERSION").into(),
        node: state.settings.node_name.clone(),
        server_id: server_id.to_owned(),
    }
}

fn teletype_mails(state: &AppState) -> bool {
    state.settings.emails_by == EmailsBy::Teletype
}

/// Publishes the record's message; `event` is `None` for a reminder.
pub async fn deliver(
    state: &AppState,
    record: &DeliveryDoc,
    doc: &PortRequest,
    event: Option<&Event>,
) -> Result<Outcome, String> {
    let Some(on_bus) = &state.bus else { return Ok(Outcome::Skipped("AMQP_URL is not set here".into())) };
    let teletype = teletype_mails(state);
    let give_up = state.settings.jobs.delivery.give_up_after.as_secs() as i64;
    if teletype && deliveries::has_reached(record) && now_unix() - record.created > give_up {
        return Err("teletype never answered".into());
    }
    let name = record.event.as_str();
    let msg_id = record.id.as_str();
    on_bus
        .publish(&bus::routing_key(name), |reply_queue| {
            let server_id = if teletype { reply_queue } else { "" };
            let message = match event {
                Some(e) => bus::message(e, name, doc, msg_id, &publisher(state, server_id)),
                None => bus::reminder(doc, msg_id, &publisher(state, server_id)),
            };
            message.to_string().into_bytes()
        })
        .await?;
    crate::metrics::get().bus_published.with_label_values(&[name]).inc();
    if teletype {
        return Ok(Outcome::Awaiting(state.settings.bus.as_ref().map_or_else(Default::default, |b| b.reply_timeout)));
    }
    Ok(Outcome::Delivered { to: vec![format!("bus:{}", bus::routing_key(name))], notes: vec![] })
}

/// What teletype's answer makes of the record (`pending`: it is still at it).
fn outcome(update: &Update) -> Option<Outcome> {
    let why = |s: &str| match &update.failure {
        Some(f) => format!("teletype: {s}: {f}"),
        None => format!("teletype: {s}"),
    };
    Some(match update.status.as_str() {
        "completed" => Outcome::Delivered { to: vec!["teletype".into()], notes: vec![] },
        "disabled" | "ignored" => Outcome::Skipped(why(&update.status)),
        "failed" => Outcome::Failed(why("failed")),
        _ => return None,
    })
}

/// Collects teletype's answers into the records they are about.
pub fn collect_answers(state: Arc<AppState>) {
    let Some(mut answers) = state.bus_replies.lock().ok().and_then(|mut r| r.take()) else { return };
    tokio::spawn(async move {
        while let Some(update) = answers.recv().await {
            let Some(result) = outcome(&update) else { continue };
            if let Err(e) = record_answer(&state, &update.msg_id, result).await {
                tracing::warn!(record = %update.msg_id, error = %e, "cannot record teletype's answer");
            }
        }
    });
}

async fn record_answer(state: &AppState, record_id: &str, result: Outcome) -> Result<(), StoreError> {
    let retries = super::sender::retries(state);
    for _ in 0..5 {
        let Some(mut record) = state.couch.get_doc::<DeliveryDoc>(dbs::SERVICE, record_id).await? else {
            return Ok(());
        };
        if record.status != "pending" {
            return Ok(());
        }
        deliveries::record_outcome(&mut record, result.clone(), &retries);
        match state.couch.save_doc(dbs::SERVICE, &mut record).await {
            Ok(_) => return Ok(()),
            // the sender was saving its own attempt: read it again
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
