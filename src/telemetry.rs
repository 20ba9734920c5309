//! Logs: one line per event on stderr, with the request id of the request it belongs to.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `filter` is the `LOG` setting (already validated).
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}
