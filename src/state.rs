//! What the use cases, the jobs and the handlers reach: the settings and the connections to
//! the outside (CouchDB through its repositories, SMTP, the LOA renderer, HTTP for webhooks).

use crate::auth::Authenticator;
use crate::channels::email::Mailer;
use crate::configuration::Settings;
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
        Ok(Self { settings, couch, port_requests, directory, auth, loa, mailer, http })
    }
}
