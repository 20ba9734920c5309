//! What every handler can reach.

use crate::auth::Authenticator;
use crate::configuration::Settings;
use crate::couch::Couch;
use crate::directory::Directory;
use crate::loa::LoaRenderer;

pub struct AppState {
    pub settings: Settings,
    pub couch: Couch,
    pub directory: Directory,
    pub auth: Authenticator,
    pub loa: LoaRenderer,
}

impl AppState {
    pub fn new(settings: Settings, couch: Couch) -> Self {
        let directory = Directory::new(couch.clone(), settings.cache_ttl);
        let auth = Authenticator::new(directory.clone(), settings.cache_ttl);
        let loa = LoaRenderer::new(
            &settings.wkhtmltopdf,
            settings.templates_dir.clone(),
            settings.loa_timeout,
            settings.cache_ttl,
        );
        Self { settings, couch, directory, auth, loa }
    }
}
