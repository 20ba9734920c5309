//! The HTTP server: the routes, the envelope and idempotency middleware, the pages' shared
//! state, and the timeouts slow or silent clients meet.

use super::envelope::EnvelopeInfo;
use super::guesses::Guesses;
use super::middleware::crossbar;
use crate::pages::customer::Pages;
use crate::state::AppState;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use std::net::TcpListener;
use std::sync::Arc;

/// The server, bound and ready: it serves once awaited (`run`).
pub struct Running(Server);

impl Running {
    pub async fn run(self) -> std::io::Result<()> {
        self.0.await
    }
}

/// Serves the API and the pages on `listener`.
pub fn start(state: Arc<AppState>, listener: TcpListener) -> anyhow::Result<Running> {
    let settings = &state.settings;
    let info = web::Data::new(EnvelopeInfo::new(&settings.node_name));
    let pages = web::Data::new(Pages::load(&settings.templates_dir)?);
    // 20 unknown links from one address in 10 minutes, then 429 for the rest of them
    let guesses = web::Data::new(Guesses::new(20, std::time::Duration::from_secs(600)));
    let workers = settings.http_workers;
    let state = web::Data::from(state);
    Ok(Running(
        HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(info.clone())
                .app_data(pages.clone())
                .app_data(guesses.clone())
                .wrap(from_fn(super::idempotency::idempotency))
                .wrap(from_fn(crossbar))
                .configure(crate::routes::configure)
        })
        .workers(workers)
        // slow or silent clients: headers within 5 s, a closing client gone within 2 s
        .client_request_timeout(std::time::Duration::from_secs(5))
        .client_disconnect_timeout(std::time::Duration::from_secs(2))
        // idle keep-alive connections stay open as long as common proxies keep theirs (nginx's
        // 75 s): a client reusing one just as the server closed it sees a reset, not an answer
        .keep_alive(std::time::Duration::from_secs(75))
        .listen(listener)?
        .run(),
    ))
}
