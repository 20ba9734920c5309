//! Delivery records: one document per event and channel in the service's database
//! (`delivery:...`), made by whichever worker derives it first, holding the attempts made and
//! their results. A record is held through its lease: the holder's random mark (`lease`) and a
//! time (`next_attempt_at`) after which anyone may take it over. Taking a lease is a
//! revision-checked write that must win (on a cluster, see `store::couch::write`), so two
//! workers never hold one record.

use super::documents::fields::Slot;
use super::documents::port_request::PortRequest;
use super::documents::service::Attempt;
pub use super::documents::service::DeliveryDoc;
use super::events::{Channel, Delivery, Event};
use super::ids::new_doc_id;
use super::notifications::{Audience, retry_delay};
use super::time::now_unix;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// What became of one attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Sent to these recipients; `notes` say what was not used on the way (a stored template
    /// that did not render, say).
    Delivered {
        to: Vec<String>,
        notes: Vec<String>,
    },
    Skipped(String),
    Failed(String),
    /// Not yet: an earlier event of the request has not reached this endpoint (in order).
    Wait(String),
    /// Published on Kazoo's bus: teletype answers within the given time, or it is published
    /// again.
    Awaiting(std::time::Duration),
}

impl Outcome {
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Skipped(_) => "skipped",
            Outcome::Failed(_) => "error",
            Outcome::Wait(_) => "waiting",
            Outcome::Awaiting(_) => "published",
        }
    }
}

/// How long failed deliveries are tried again.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    /// The first retry's delay, doubling with each failure...
    pub base: Duration,
    /// ...up to this.
    pub max: Duration,
    /// A record still failing this long after it was made is marked failed.
    pub give_up_after: Duration,
}

fn record(id: String, doc: &PortRequest, queue: &str, channel: &str, event: &str, now: i64) -> DeliveryDoc {
    DeliveryDoc {
        id,
        doc_type: DeliveryDoc::TYPE.into(),
        queue: queue.to_owned(),
        status: "pending".into(),
        channel: channel.to_owned(),
        event: event.to_owned(),
        port_request_id: doc.id.to_string(),
        attempts: Vec::new(),
        created: now,
        rev: Slot::Absent,
        audience: Slot::Absent,
        event_id: Slot::Absent,
        reminder_period: Slot::Absent,
        account_id: Slot::from_option(doc.owner().map(|a| a.to_string())),
        url: Slot::Absent,
        recipients: Slot::Absent,
        next_attempt_at: Slot::Set(now),
        lease: Slot::Absent,
        rest: Map::new(),
    }
}

/// A new record of `delivery` of `event` on request `doc`, held by the one who makes it (or,
/// with no lease, due at once for whoever takes it).
pub fn new(doc: &PortRequest, queue: &str, event: &Event, delivery: &Delivery, lease_secs: Option<u64>) -> DeliveryDoc {
    let now = now_unix();
    let mut r = record(delivery.record_id(&event.id), doc, queue, delivery.channel.as_str(), delivery.name, now);
    r.audience = Slot::from_option(delivery.audience.map(|a| json!(a)));
    r.event_id.set(event.id.clone());
    if delivery.channel == Channel::Webhook {
        r.url = Slot::from_option(event.webhook_url.clone());
    }
    if let Some(secs) = lease_secs {
        take_lease(&mut r, secs);
    }
    r
}

/// A reminder record (`port_unconfirmed` to the submitter), held by the one who makes it.
pub fn reminder(id: String, doc: &PortRequest, queue: &str, period: i64, lease_secs: u64) -> DeliveryDoc {
    let mut r = record(id, doc, queue, Channel::Email.as_str(), "port_unconfirmed", now_unix());
    r.audience.set(json!(Audience::Submitter));
    r.reminder_period.set(period);
    take_lease(&mut r, lease_secs);
    r
}

/// A reminder's message on Kazoo's bus, held by the one who makes it.
pub fn reminder_on_bus(id: String, doc: &PortRequest, queue: &str, period: i64, lease_secs: u64) -> DeliveryDoc {
    let mut r = record(id, doc, queue, Channel::Bus.as_str(), "port_unconfirmed", now_unix());
    r.reminder_period.set(period);
    take_lease(&mut r, lease_secs);
    r
}

/// A port authority's digest of one day on one channel (`domain::desk::digest`), held by the
/// one who makes it. It belongs to no request: the authority is its account.
pub fn digest(id: String, authority: &str, day: &str, channel: Channel, queue: &str, lease_secs: u64) -> DeliveryDoc {
    let now = now_unix();
    let mut r = DeliveryDoc {
        id,
        doc_type: DeliveryDoc::TYPE.into(),
        queue: queue.to_owned(),
        status: "pending".into(),
        channel: channel.as_str().to_owned(),
        event: super::desk::digest::EVENT.to_owned(),
        port_request_id: String::new(),
        attempts: Vec::new(),
        created: now,
        rev: Slot::Absent,
        audience: Slot::Set(json!(Audience::Authority)),
        event_id: Slot::Absent,
        reminder_period: Slot::Absent,
        account_id: Slot::Set(authority.to_owned()),
        url: Slot::Absent,
        recipients: Slot::Absent,
        next_attempt_at: Slot::Set(now),
        lease: Slot::Absent,
        rest: Map::new(),
    };
    r.rest.insert("digest_day".into(), json!(day));
    take_lease(&mut r, lease_secs);
    r
}

/// Has the record's delivery reached its endpoint (done with, or published and awaiting an
/// answer)? A later event's delivery to the same endpoint waits until it has.
pub fn has_reached(record: &DeliveryDoc) -> bool {
    record.status != "pending" || record.attempts.iter().any(|a| a.result == "published")
}

/// Is the record waiting for a delivery and free to be taken (no lease, or one that ran out)?
pub fn is_due(record: &DeliveryDoc, now: i64) -> bool {
    record.status == "pending" && record.next_attempt_at.get().is_none_or(|at| *at <= now)
}

/// Takes the record's lease (to be saved, and held only if the save wins).
pub fn take_lease(record: &mut DeliveryDoc, lease_secs: u64) {
    record.lease.set(new_doc_id());
    record.next_attempt_at.set(now_unix() + lease_secs as i64);
}

/// Records an attempt's outcome and gives the lease back: done, or due again after a backoff,
/// or failed for good once the give-up time is past.
pub fn record_outcome(record: &mut DeliveryDoc, outcome: Outcome, retries: &Retries) {
    let now = now_unix();
    let failures = record.attempts.iter().filter(|a| a.result == "error").count() as u32;
    let attempt =
        |result: &str, error: Option<String>| Attempt { at: now, result: result.into(), error, notes: vec![] };
    let (status, attempt, next) = match outcome {
        Outcome::Delivered { to, notes } => {
            record.recipients.set(to);
            ("delivered", Attempt { notes, ..attempt("delivered", None) }, None)
        }
        Outcome::Skipped(why) => ("skipped", attempt("skipped", Some(why)), None),
        // not an attempt: due again in a moment, the backoff untouched
        Outcome::Wait(_) => {
            record.next_attempt_at.set(now + 1);
            record.lease.clear();
            return;
        }
        Outcome::Awaiting(answer_within) => {
            let next = now + answer_within.as_secs() as i64;
            ("pending", attempt("published", None), Some(next))
        }
        Outcome::Failed(error) => {
            let gave_up = now - record.created > retries.give_up_after.as_secs() as i64;
            let delay = retry_delay(failures + 1, retries.base, retries.max);
            let next = now + (delay.as_millis() as i64 + 999) / 1000;
            (if gave_up { "failed" } else { "pending" }, attempt("error", Some(error)), Some(next))
        }
    };
    record.attempts.push(attempt);
    record.status = status.into();
    record.next_attempt_at = Slot::from_option(next);
    record.lease.clear();
}

/// A record as `GET /{id}/notifications` shows it.
pub fn public(record: &DeliveryDoc) -> Value {
    let last_error = record.attempts.iter().rev().find_map(|a| a.error.clone());
    let mut out = json!({
        "id": record.id, "event": record.event, "channel": record.channel, "audience": record.audience,
        "recipients": record.recipients.get().cloned().unwrap_or_default(), "status": record.status,
        "attempts": record.attempts.len(), "attempts_log": record.attempts, "last_error": last_error,
        "created": record.created, "next_attempt_at": record.next_attempt_at,
        "url": record.url,
    });
    if let Some(o) = out.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::What;
    use crate::domain::port_state::PortState;

    fn retries() -> Retries {
        Retries { base: Duration::from_secs(5), max: Duration::from_secs(60), give_up_after: Duration::from_secs(3600) }
    }

    #[test]
    fn a_record_is_held_by_its_maker_then_done_or_due_again() {
        let event = Event {
            id: "e".into(),
            queue: "q".into(),
            at: 1,
            what: What::Transition {
                state: PortState::Pending,
                previous: None,
                reason: None,
                reason_author: None,
                rejection: None,
                carrier_push: false,
            },
            webhook_url: None,
            bus: None,
            teletype: false,
        };
        let delivery = event.deliveries().remove(0);
        let p =
            PortRequest::stored_with(json!({"_id": "p"}), json!({"account_id": "0123456789abcdef0123456789abcdef"}));
        let free = new(&p, "q", &event, &delivery, None);
        assert!(is_due(&free, now_unix()), "without a lease it is due at once");
        let mut r = new(&p, "q", &event, &delivery, Some(120));
        assert_eq!(r.id, "delivery:e:email:port_pending:submitter");
        assert!(!is_due(&r, now_unix()), "held by its maker");
        assert!(is_due(&r, now_unix() + 121), "taken over once the lease ran out");
        record_outcome(&mut r, Outcome::Failed("smtp down".into()), &retries());
        assert_eq!(r.status, "pending");
        assert!(r.lease.is_absent());
        assert!(!is_due(&r, now_unix()), "after a backoff");
        record_outcome(&mut r, Outcome::Delivered { to: vec!["a@b".into()], notes: vec!["n".into()] }, &retries());
        assert_eq!(r.status, "delivered");
        assert!(!is_due(&r, now_unix() + 10_000));
        let shown = public(&r);
        assert_eq!(shown["attempts"], 2);
        assert_eq!(shown["last_error"], "smtp down");
        assert_eq!(shown["recipients"], json!(["a@b"]));
        assert_eq!(shown["attempts_log"][1]["notes"], json!(["n"]));
        assert_eq!(r.doc_type, DeliveryDoc::TYPE);
    }
}
