//! Logs: one line per event on stderr, with the request id of the request it belongs to;
//! `LOG_FORMAT=json` makes each line a JSON object (the request id in its span fields).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `filter` is the `LOG` setting (already validated). The AMQP
/// client's own lines are left out unless `LOG` names it (`lapin=debug`): it reports a broker
/// going away as errors, line after line, where the delivery log and the service's own
/// warnings already say it.
pub fn init(filter: &str, json: bool) {
    let filter = if filter.contains("lapin") { filter.to_owned() } else { format!("{filter},lapin=off") };
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info,lapin=off"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ =
        if json { builder.json().with_current_span(true).with_span_list(false).try_init() } else { builder.try_init() };
}
