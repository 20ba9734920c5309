//! Reminders: a `port_unconfirmed` mail (and message on Kazoo's bus, when it is on) for
//! requests left unconfirmed longer than the reminder age, at most once per age and request: the record's id follows from the request and the
//! period, so whoever makes it first holds it, and sends it like any delivery.

use super::delivery::Sender;
use crate::configuration::EmailsBy;
use crate::domain::deliveries;
use crate::domain::events;
use crate::domain::time::now_gregorian;
use crate::state::AppState;
use crate::store::{ViewQuery, views};
use serde_json::json;
use std::sync::Arc;

pub fn spawn(state: Arc<AppState>, sender: Sender) {
    tokio::spawn(async move {
        let cfg = &state.settings.jobs;
        loop {
            let age = cfg.reminders.age.as_secs() as i64;
            let now = now_gregorian();
            let query = ViewQuery { limit: Some(1000), ..ViewQuery::range(json!(0), json!(now - age)).with_docs() };
            match state.port_requests.view(views::OWN_DDOC, "unconfirmed_by_created", &query).await {
                Ok(rows) => {
                    for doc in rows.into_iter().filter_map(|(_, d)| d) {
                        let period = (now - doc.created.copied().unwrap_or(now)) / age.max(1);
                        let queue = cfg.delivery.queue.as_str();
                        let lease = cfg.delivery.lease.as_secs();
                        let mut records = Vec::new();
                        // teletype mails it when it mails Kazoo's port events
                        if state.settings.emails_by == EmailsBy::Service {
                            let id = events::reminder_record_id(doc.id.as_str(), period);
                            records.push(deliveries::reminder(id, &doc, queue, period, lease));
                        }
                        if state.bus.is_some() {
                            let id = events::reminder_bus_record_id(doc.id.as_str(), period);
                            records.push(deliveries::reminder_on_bus(id, &doc, queue, period, lease));
                        }
                        for mut record in records {
                            // those made already come back as conflicts: that is the point
                            let slot = sender.slot().await;
                            if state.couch.save_doc(crate::store::dbs::SERVICE, &mut record).await.is_ok() {
                                sender.send(record, slot);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot look for unconfirmed requests"),
            }
            tokio::time::sleep(cfg.reminders.interval).await;
        }
    });
}
