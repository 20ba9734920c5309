//! Builds the running service: CouchDB checked and prepared, routes mounted, port bound.

use crate::configuration::Settings;
use crate::couch::Couch;
use crate::http::envelope::EnvelopeInfo;
use crate::http::middleware::crossbar;
use crate::state::AppState;
use crate::{bootstrap, routes};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use std::net::TcpListener;

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Fails with one clear message when CouchDB is unreachable or the address is taken.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let couch = Couch::new(&settings.couchdb)?;
        let where_ = settings.couchdb.display_url();
        couch.server_info().await.with_context(|| format!("CouchDB at {where_} is unreachable"))?;
        bootstrap::ensure_service_databases(&couch)
            .await
            .with_context(|| format!("cannot prepare the port_requests database at {where_}"))?;
        crate::notify::ensure_db(&couch)
            .await
            .with_context(|| format!("cannot prepare the outbox database at {where_}"))?;

        let listener = TcpListener::bind(settings.listen_addr)
            .with_context(|| format!("cannot listen on {}", settings.listen_addr))?;
        let port = listener.local_addr()?.port();
        let info = web::Data::new(EnvelopeInfo::new(&settings.node_name));
        let workers = settings.http_workers;
        let mut settings = settings;
        if settings.public_url.is_empty() {
            settings.public_url = format!("http://{}", listener.local_addr()?);
        }
        let pages = web::Data::new(crate::routes::customer::Pages::load(&settings.templates_dir)?);
        // 20 unknown links from one address in 10 minutes, then 429 for the rest of them
        let guesses = web::Data::new(crate::http::guesses::Guesses::new(20, std::time::Duration::from_secs(600)));
        let state = web::Data::new(AppState::new(settings, couch)?);
        crate::notify::spawn(state.clone());
        crate::http::idempotency::spawn_cleanup(state.clone());
        state.couch.spawn_indexer_watch();
        bootstrap::spawn_claim_adoption(state.clone());

        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(info.clone())
                .app_data(pages.clone())
                .app_data(guesses.clone())
                .wrap(from_fn(crate::http::idempotency::idempotency))
                .wrap(from_fn(crossbar))
                .configure(routes::configure)
        })
        .workers(workers)
        // slow or silent clients: headers within 5 s, a closing client gone within 2 s
        .client_request_timeout(std::time::Duration::from_secs(5))
        .client_disconnect_timeout(std::time::Duration::from_secs(2))
        // idle keep-alive connections stay open as long as common proxies keep theirs (nginx's
        // 75 s): a client reusing one just as the server closed it sees a reset, not an answer
        .keep_alive(std::time::Duration::from_secs(75))
        .listen(listener)?
        .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
