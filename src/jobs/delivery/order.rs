//! In order: the events of one request reach each endpoint (Kazoo's bus, each webhook URL, the
//! carrier push) in the order they happened. A delivery goes only once the deliveries of the
//! request's earlier events to the same endpoint have reached it (or were given up on); a
//! later one waits while an earlier one is retried.

use crate::domain::deliveries::{self, DeliveryDoc};
use crate::domain::documents::port_request::PortRequest;
use crate::domain::events::Event;
use crate::domain::time::now_gregorian;
use crate::state::AppState;
use crate::store::dbs;
use std::time::Duration;

/// How long a delivery waits here for an earlier one this instance is sending right now,
/// before it is put back to be taken again.
const WAIT_HERE: Duration = Duration::from_secs(2);
const LOOK_EVERY: Duration = Duration::from_millis(25);

/// The ids of the records of `event`'s earlier events to the endpoint of `record`.
fn earlier(state: &AppState, doc: &PortRequest, event: &Event, record: &DeliveryDoc) -> Vec<String> {
    let Some(delivery) = event.deliveries().into_iter().find(|d| d.record_id(&event.id) == record.id) else {
        return vec![];
    };
    let Some(endpoint) = event.endpoint(&delivery) else { return vec![] };
    // records are made for the events of this queue within the give-up horizon only
    let horizon = now_gregorian() - state.settings.jobs.delivery.give_up_after.as_secs() as i64;
    doc.events()
        .take_while(|e| e.id != event.id)
        .filter(|e| e.queue == event.queue && e.at >= horizon)
        .flat_map(|e| {
            e.deliveries()
                .into_iter()
                .filter(|d| e.endpoint(d) == Some(endpoint))
                .map(|d| d.record_id(&e.id))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `None` when `record` may go now; else what it waits for.
pub async fn blocked(state: &AppState, doc: &PortRequest, event: &Event, record: &DeliveryDoc) -> Option<String> {
    let ids = earlier(state, doc, event, record);
    if ids.is_empty() {
        return None;
    }
    let started = tokio::time::Instant::now();
    loop {
        let waiting = match state.couch.get_docs::<DeliveryDoc>(dbs::SERVICE, &ids).await {
            Ok(found) => {
                let reached: Vec<&str> =
                    found.iter().filter(|r| deliveries::has_reached(r)).map(|r| r.id.as_str()).collect();
                ids.iter().find(|id| !reached.contains(&id.as_str())).cloned()
            }
            Err(e) => Some(format!("the earlier deliveries cannot be read: {e}")),
        };
        match waiting {
            None => return None,
            Some(id) if started.elapsed() >= WAIT_HERE => return Some(format!("waits for {id}")),
            Some(_) => tokio::time::sleep(LOOK_EVERY).await,
        }
    }
}
