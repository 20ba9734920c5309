//! What every handler can reach.

use crate::auth::Authenticator;
use crate::configuration::Settings;
use crate::couch::Couch;
use crate::directory::Directory;
use crate::email::Mailer;
use crate::loa::LoaRenderer;

/// How the service names itself to webhooks and carriers.
pub const USER_AGENT: &str = concat!("kazoo-port-requests/", env!("CARGO_PKG_VERSION"));

pub struct AppState {
    pub settings: Settings,
    pub couch: Couch,
    pub directory: Directory,
    pub auth: Authenticator,
    pub loa: LoaRenderer,
    pub mailer: Mailer,
    /// For webhooks and the carrier push.
    pub http: reqwest::Client,
    /// Port request documents read lately, used when CouchDB confirms they are current.
    pub docs: crate::couch::cache::DocCache,
    /// This instance's changes of one request, one at a time.
    pub writes: crate::port_requests::queue::WriteQueue,
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
        let docs = crate::couch::cache::DocCache::new(settings.doc_cache);
        Ok(Self { settings, couch, directory, auth, loa, mailer, http, docs, writes: Default::default() })
    }
}
