//! Background jobs, each in its own module with its own switch (`configuration::JobSettings`):
//!
//! | job | what it does | setting |
//! |---|---|---|
//! | `delivery` | makes the delivery records of saved events and sends them (mail, webhook, carrier push, Kazoo's bus), in order per endpoint | `DELIVERY_WORKER` |
//! | `conflict_resolution` | merges a request held in conflicting revisions | `CONFLICT_RESOLUTION` |
//! | `claim_adoption` | claims the numbers of open requests written elsewhere | `CLAIM_ADOPTION` |
//! | `completion_repair` | undoes the number documents of completions never saved | `COMPLETION_REPAIR` |
//! | `reminders` | mails `port_unconfirmed` for requests left unconfirmed | `REMINDERS` |
//! | `digest` | the port authorities' daily digest, once per authority and day | `DIGEST` |
//! | `desk_metrics` | the desk's gauges (requests per state and attention rule), the named carriers | `DESK_METRICS_INTERVAL` |
//! | `cleanup` | removes expired `Idempotency-Key` records | `CLEANUP` |
//!
//! The first three see every change of `port_requests` through one follower (`follower`).
//! Every job is safe with any number of instances running it.

pub mod claim_adoption;
pub mod cleanup;
pub mod completion_repair;
pub mod conflict_resolution;
pub mod delivery;
pub mod desk_metrics;
pub mod digest;
pub mod follower;
pub mod reminders;

use crate::state::AppState;
use std::sync::Arc;

/// Starts the jobs this instance runs.
pub fn spawn(state: &Arc<AppState>) {
    let on = &state.settings.jobs;
    let sender = on.delivery.worker.then(|| delivery::spawn(state));
    follower::spawn(
        state.clone(),
        follower::Fed {
            delivery: sender.clone(),
            claim_adoption: on.claim_adoption,
            conflict_resolution: on.conflict_resolution,
        },
    );
    if on.claim_adoption {
        claim_adoption::spawn(state.clone());
    }
    if on.completion_repair {
        completion_repair::spawn(state.clone());
    }
    // a reminder is a delivery: it needs this instance's sender
    if let (true, Some(sender)) = (on.reminders.on, sender.clone()) {
        reminders::spawn(state.clone(), sender);
    }
    if let (true, Some(sender)) = (on.digest.on, sender) {
        digest::spawn(state.clone(), sender);
    }
    if on.cleanup {
        cleanup::spawn(state.clone());
    }
    if let Some(every) = on.desk_metrics {
        desk_metrics::spawn(state.clone(), every);
    }
}
