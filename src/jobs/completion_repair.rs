//! Completion repair: the journals of completions that were never seen through (the process
//! died, or CouchDB went away under the request's write) are settled now and then, every
//! `COMPLETION_GRACE` seconds (`app::completion::repair`).

use crate::app::completion;
use crate::state::AppState;
use std::sync::Arc;

pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        let grace = state.settings.jobs.completion_grace;
        loop {
            match completion::repair(&state, grace.as_secs() as i64).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(removed = n, "removed number documents of unfinished completions"),
                Err(e) => tracing::warn!(error = %e, "cannot look for unfinished completions"),
            }
            tokio::time::sleep(grace).await;
        }
    });
}
