//! Delivery records: one document per event and channel in our database (`delivery:...`),
//! made by whichever worker derives it first, holding the attempts made and their results.
//! A record is held through its lease: the holder's random mark (`lease`) and a time
//! (`next_attempt_at`) after which anyone may take it over. Taking a lease is a revision-checked
//! write that must win (on a cluster, see `couch::write`), so two workers never hold one record.

use crate::configuration::OutboxSettings;
use crate::domain::events::{Delivery, Event};
use crate::domain::ids::new_doc_id;
use crate::domain::notifications::{Audience, retry_delay};
use crate::domain::time::now_unix;
use serde_json::{Value, json};

/// What became of one attempt.
#[derive(Debug)]
pub enum Outcome {
    Delivered(Vec<String>),
    Skipped(String),
    Failed(String),
}

impl Outcome {
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Delivered(_) => "delivered",
            Outcome::Skipped(_) => "skipped",
            Outcome::Failed(_) => "error",
        }
    }
}

/// A new record of `delivery` of `event` on request `doc`, held by the one who makes it (or,
/// with no lease, due at once for whoever takes it).
pub fn new(doc: &Value, queue: &str, event: &Event, delivery: &Delivery, lease_secs: Option<u64>) -> Value {
    let now = now_unix();
    let mut record = json!({
        "_id": delivery.record_id(&event.id),
        "pvt_type": "delivery",
        "queue": queue,
        "status": "pending",
        "channel": delivery.channel.as_str(),
        "event": delivery.name,
        "audience": delivery.audience,
        "event_id": event.id,
        "port_request_id": doc.get("_id"),
        "account_id": doc.get("pvt_account_id"),
        "url": if delivery.channel == crate::domain::events::Channel::Webhook { json!(event.webhook_url) } else { Value::Null },
        "attempts": [],
        "created": now,
        "next_attempt_at": now,
    });
    if let Some(secs) = lease_secs {
        take_lease(&mut record, secs);
    }
    record
}

/// A reminder record (`port_unconfirmed` to the submitter), held by the one who makes it.
pub fn reminder(id: String, doc: &Value, queue: &str, period: i64, lease_secs: u64) -> Value {
    let now = now_unix();
    json!({
        "_id": id,
        "pvt_type": "delivery",
        "queue": queue,
        "status": "pending",
        "channel": "email",
        "event": "port_unconfirmed",
        "audience": Audience::Submitter,
        "reminder_period": period,
        "port_request_id": doc.get("_id"),
        "account_id": doc.get("pvt_account_id"),
        "attempts": [],
        "created": now,
        "lease": new_doc_id(),
        "next_attempt_at": now + lease_secs as i64,
    })
}

/// Is the record waiting for a delivery and free to be taken (no lease, or one that ran out)?
pub fn is_due(record: &Value, now: i64) -> bool {
    record["status"] == "pending" && record["next_attempt_at"].as_i64().is_none_or(|at| at <= now)
}

/// Takes the record's lease (to be saved, and held only if the save wins).
pub fn take_lease(record: &mut Value, lease_secs: u64) {
    record["lease"] = json!(new_doc_id());
    record["next_attempt_at"] = json!(now_unix() + lease_secs as i64);
}

/// Records an attempt's outcome and gives the lease back: done, or due again after a backoff,
/// or failed for good once the give-up time is past.
pub fn record_outcome(record: &mut Value, outcome: Outcome, cfg: &OutboxSettings) {
    let now = now_unix();
    let failures =
        record["attempts"].as_array().map_or(0, |a| a.iter().filter(|x| x["result"] == "error").count()) as u32;
    let (status, attempt, next) = match outcome {
        Outcome::Delivered(to) => {
            record["recipients"] = json!(to);
            ("delivered", json!({"at": now, "result": "delivered"}), None)
        }
        Outcome::Skipped(why) => ("skipped", json!({"at": now, "result": "skipped", "error": why}), None),
        Outcome::Failed(error) => {
            let created = record["created"].as_i64().unwrap_or(now);
            let gave_up = now - created > cfg.give_up_after.as_secs() as i64;
            let delay = retry_delay(failures + 1, cfg.retry_base, cfg.retry_max);
            let next = now + (delay.as_millis() as i64 + 999) / 1000;
            (
                if gave_up { "failed" } else { "pending" },
                json!({"at": now, "result": "error", "error": error}),
                Some(next),
            )
        }
    };
    if let Some(list) = record["attempts"].as_array_mut() {
        list.push(attempt);
    }
    record["status"] = json!(status);
    match next {
        Some(n) => record["next_attempt_at"] = json!(n),
        None => {
            if let Some(o) = record.as_object_mut() {
                o.remove("next_attempt_at");
            }
        }
    }
    if let Some(o) = record.as_object_mut() {
        o.remove("lease");
    }
}

/// A record as `GET /{id}/notifications` shows it.
pub fn public(record: &Value) -> Value {
    let attempts = record["attempts"].as_array().cloned().unwrap_or_default();
    let last_error = attempts.iter().rev().find_map(|a| a.get("error").cloned());
    let mut out = json!({
        "id": record["_id"], "event": record["event"], "channel": record["channel"], "audience": record.get("audience"),
        "recipients": record.get("recipients").cloned().unwrap_or(json!([])), "status": record["status"],
        "attempts": attempts.len(), "attempts_log": attempts, "last_error": last_error,
        "created": record["created"], "next_attempt_at": record.get("next_attempt_at"),
        "url": record.get("url"),
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
    use std::time::Duration;

    fn settings() -> OutboxSettings {
        OutboxSettings {
            worker: true,
            queue: "q".into(),
            poll: Duration::from_secs(1),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
            lease: Duration::from_secs(120),
            reminder_age: Duration::from_secs(1),
            reminder_interval: Duration::from_secs(1),
            completion_grace: Duration::from_secs(1),
            allow_private_webhooks: false,
        }
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
                carrier_push: false,
            },
            webhook_url: None,
        };
        let delivery = event.deliveries().remove(0);
        let free = new(&json!({"_id": "p"}), "q", &event, &delivery, None);
        assert!(is_due(&free, now_unix()), "without a lease it is due at once");
        let mut r = new(&json!({"_id": "p", "pvt_account_id": "a"}), "q", &event, &delivery, Some(120));
        assert_eq!(r["_id"], "delivery:e:email:port_pending:submitter");
        assert!(!is_due(&r, now_unix()), "held by its maker");
        assert!(is_due(&r, now_unix() + 121), "taken over once the lease ran out");
        record_outcome(&mut r, Outcome::Failed("smtp down".into()), &settings());
        assert_eq!(r["status"], "pending");
        assert!(r.get("lease").is_none());
        assert!(!is_due(&r, now_unix()), "after a backoff");
        record_outcome(&mut r, Outcome::Delivered(vec!["a@b".into()]), &settings());
        assert_eq!(r["status"], "delivered");
        assert!(!is_due(&r, now_unix() + 10_000));
        let shown = public(&r);
        assert_eq!(shown["attempts"], 2);
        assert_eq!(shown["last_error"], "smtp down");
        assert_eq!(shown["recipients"], json!(["a@b"]));
    }
}
