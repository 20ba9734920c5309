//! Builds the running service: CouchDB checked and prepared, the jobs started, the port bound.

use crate::configuration::Settings;
use crate::state::AppState;
use crate::store::Couch;
use anyhow::Context;
use std::net::TcpListener;
use std::sync::Arc;

pub struct Application {
    port: u16,
    server: crate::http::server::Running,
}

impl Application {
    /// Fails with one clear message when CouchDB is unreachable or the address is taken.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let couch = Couch::new(&settings.couchdb)?;
        let where_ = settings.couchdb.display_url();
        couch.server_info().await.with_context(|| format!("CouchDB at {where_} is unreachable"))?;
        crate::bootstrap::ensure_databases(&couch)
            .await
            .with_context(|| format!("cannot prepare the databases at {where_}"))?;
        let listener = TcpListener::bind(settings.listen_addr)
            .with_context(|| format!("cannot listen on {}", settings.listen_addr))?;
        let port = listener.local_addr()?.port();
        let mut settings = settings;
        if settings.public_url.is_empty() {
            settings.public_url = format!("http://{}", listener.local_addr()?);
        }
        let state = Arc::new(AppState::new(settings, couch)?);
        crate::jobs::spawn(&state);
        state.couch.spawn_indexer_watch();
        let server = crate::http::server::start(state, listener)?;
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.run().await
    }
}
