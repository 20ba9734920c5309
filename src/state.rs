//! What the use cases, the jobs and the handlers reach: the settings and the connections to
//! the outside (CouchDB through its repositories, SMTP, the LOA renderer, HTTP for webhooks).

use crate::auth::Authenticator;
use crate::channels::bus::Bus;
use crate::channels::email::Mailer;
use crate::configuration::{EmailsBy, Settings};
use crate::domain::bus::Update;
use crate::pdf::LoaRenderer;
use crate::store::Couch;
use crate::store::directory::Directory;
use crate::store::port_requests::PortRequests;

/// How the service names itself to webhooks and carriers.
pub const USER_AGENT: &str = concat!("kazoo-port-requests/", env!("CARGO_PKG_VERSION"));

pub struct AppState {
    pub settings: Settings,
    /// CouchDB, for the documents that have no repository of their own.
    pub couch: Couch,
    /// Port requests: read as CouchDB holds them, written in their turn.
    pub port_requests: PortRequests,
    pub directory: Directory,
    pub auth: Authenticator,
    pub loa: LoaRenderer,
    pub mailer: Mailer,
    /// For webhooks and the carrier push.
    pub http: reqwest::Client,
    /// Kazoo's bus, when `AMQP_URL` is set.
    pub bus: Option<Bus>,
    /// Teletype's answers, for the delivery job to take.
    pub bus_replies: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Update>>>,
}

impl AppState {
    /// Fails when the email templates or the SMTP settings are unusable.
    pub fn new(settings: Settings, couch: Couch) -> anyhow::Result<Self> {
        let directory = Directory::new(couch.clone(), settings.cache_ttl);
        let auth = Authenticator::new(directory.clone(), settings.cache_ttl);
        let loa = LoaRenderer::new(
            &settings.wkhtmltopdf,
            settings.templates_dir.clone(),
            settings.loa_timeout,
            settings.cache_ttl,
        );
        let mailer = Mailer::new(&settings)?;
        let http = reqwest::Client::builder().user_agent(USER_AGENT).build()?;
        let port_requests = PortRequests::new(couch.clone(), settings.doc_cache);
        let (bus, bus_replies) = match settings.bus.clone() {
            Some(b) => {
                let (bus, replies) = Bus::new(b, settings.emails_by == EmailsBy::Teletype, &settings.node_name);
                (Some(bus), Some(replies))
            }
            None => (None, None),
        };
        let bus_replies = std::sync::Mutex::new(bus_replies);
        Ok(Self { settings, couch, port_requests, directory, auth, loa, mailer, http, bus, bus_replies })
    }
}
