//! The desk's gauges, refreshed every `DESK_METRICS_INTERVAL`: requests per state (one grouped
//! count), and per attention rule the open requests it holds now, summed over the authorities
//! (one count per authority, rule and state, each a key range of the `attention` view, so the
//! cost follows the number of authorities and rules, not of requests); and the losing carriers
//! named in the carrier label: the most frequent under the master account.

use crate::app::desk;
use crate::app::error::AppError;
use crate::domain::port_state::PortState;
use crate::domain::time::now_gregorian;
use crate::metrics::{self, NAMED_CARRIERS};
use crate::state::AppState;
use crate::store::ViewQuery;
use crate::store::views::DESK_DDOC;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub fn spawn(state: Arc<AppState>, every: Duration) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = refresh(&state).await {
                tracing::warn!(error = %e, "cannot refresh the desk's metrics");
            }
            tokio::time::sleep(every).await;
        }
    });
}

async fn refresh(state: &AppState) -> Result<(), AppError> {
    let m = metrics::get();
    let grouped = ViewQuery { group_level: Some(1), ..ViewQuery::default() };
    let rows = state.port_requests.reduce(DESK_DDOC, "by_state", &grouped).await?;
    let mut by_state: BTreeMap<String, i64> = PortState::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
    for row in rows {
        if let (Some(state), Some(n)) = (row.key.as_str(), row.value.as_i64()) {
            by_state.insert(state.to_owned(), n);
        }
    }
    for (s, n) in by_state {
        m.port_requests.with_label_values(&[s.as_str()]).set(n);
    }

    let now = now_gregorian();
    let mut by_rule: BTreeMap<String, i64> = BTreeMap::new();
    for authority in desk::authorities(state).await? {
        let desk = desk::desk_of(state, &authority).await?;
        for rule in &desk.rules {
            let bound = rule.bound(&desk.calendar, now);
            let anchor = rule.anchor.as_str();
            for st in &rule.states {
                let lo = json!(["authority", authority, st, anchor, 0]);
                let hi = json!(["authority", authority, st, anchor, bound, {}]);
                let held = state.port_requests.view_count(DESK_DDOC, "attention", lo, hi).await?;
                *by_rule.entry(rule.id.clone()).or_default() += held as i64;
            }
        }
    }
    // a rule no authority has any more reads 0, not its last value
    for rule in crate::domain::desk::attention::in_effect(None) {
        by_rule.entry(rule.id).or_default();
    }
    for (rule, n) in by_rule {
        m.attention.with_label_values(&[rule.as_str()]).set(n);
    }

    if let Some(master) = state.directory.master_account_id().await? {
        let query = ViewQuery { group_level: Some(2), ..ViewQuery::range(json!([master]), json!([master, {}])) };
        let mut carriers: Vec<(String, u64)> = state
            .port_requests
            .reduce(DESK_DDOC, "report_by_carrier", &query)
            .await?
            .into_iter()
            .filter_map(|r| {
                let name = r.key.get(1).and_then(Value::as_str)?.to_owned();
                Some((name, r.value.get(0).and_then(Value::as_u64).unwrap_or(0)))
            })
            .collect();
        carriers.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        m.name_carriers(carriers.into_iter().take(NAMED_CARRIERS).map(|(c, _)| c));
    }
    Ok(())
}
