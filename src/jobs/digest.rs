//! The daily digest: every `DIGEST_INTERVAL`, for each port authority with open requests whose
//! digest time has come today (in its zone), the day's delivery records are made, one per
//! channel (mail; Kazoo's bus when it is on). A record's id is the authority, the day and the
//! channel, so with any number of instances exactly one makes each and sends it; the others
//! find it made. What this instance already saw made is remembered, only to spare CouchDB
//! the attempt: the record decides.

use super::delivery::Sender;
use crate::app::desk;
use crate::domain::deliveries;
use crate::domain::desk::digest::{self, DigestSettings};
use crate::domain::events::Channel;
use crate::domain::time::now_gregorian;
use crate::state::AppState;
use crate::store::{StoreError, dbs};
use std::collections::HashSet;
use std::sync::Arc;

pub fn spawn(state: Arc<AppState>, sender: Sender) {
    tokio::spawn(async move {
        let mut made: HashSet<String> = HashSet::new();
        loop {
            if let Err(e) = round(&state, &sender, &mut made).await {
                tracing::warn!(error = %e, "cannot make the day's digests");
            }
            tokio::time::sleep(state.settings.jobs.digest.interval).await;
        }
    });
}

async fn round(
    state: &AppState,
    sender: &Sender,
    made: &mut HashSet<String>,
) -> Result<(), crate::app::error::AppError> {
    let now = now_gregorian();
    let cfg = &state.settings.jobs.delivery;
    let only = &state.settings.jobs.digest.only;
    for authority in desk::authorities(state).await? {
        if !only.is_empty() && !only.iter().any(|a| a == authority.as_str()) {
            continue;
        }
        let desk = desk::desk_of(state, &authority).await?;
        let Some(day) = DigestSettings::of(desk.config.digest.as_ref()).due(&desk.calendar, now) else { continue };
        let mut channels = vec![Channel::Email];
        if state.bus.is_some() {
            channels.push(Channel::Bus);
        }
        for channel in channels {
            let id = digest::record_id(authority.as_str(), day, channel.as_str());
            if made.contains(&id) {
                continue;
            }
            let slot = sender.slot().await;
            let day = day.to_string();
            let mut record =
                deliveries::digest(id.clone(), authority.as_str(), &day, channel, &cfg.queue, cfg.lease.as_secs());
            match state.couch.save_doc(dbs::SERVICE, &mut record).await {
                Ok(_) => sender.send(record, slot),
                // made already, by this instance or another: that is the point
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
            made.insert(id);
        }
    }
    // yesterday's are done with
    if made.len() > 100_000 {
        made.clear();
    }
    Ok(())
}
