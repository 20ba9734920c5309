//! Logs: one line per event on stderr, with the request id of the request it belongs to;
//! `LOG_FORMAT=json` makes each line a JSON object (the request id in its span fields).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `filter` is the `LOG` setting (already validated).
pub fn init(filter: &str, json: bool) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ =
        if json { builder.json().with_current_span(true).with_span_list(false).try_init() } else { builder.try_init() };
}
