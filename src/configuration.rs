//! Settings, read from environment variables (or the equivalent command-line flags).
//! Every value is checked here, so the rest of the program never sees a bad one.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// A string that never shows up in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { name, reason: reason.into() }
}

/// Where CouchDB is and how to log in. Credentials are split off the URL at parse time.
#[derive(Clone, Debug)]
pub struct CouchSettings {
    pub url: Url,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
}

impl CouchSettings {
    pub fn parse(raw: &str, timeout: Duration) -> Result<Self, ConfigError> {
        const NAME: &str = "COUCHDB_URL";
        let mut url = Url::parse(raw).map_err(|e| invalid(NAME, e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(NAME, "the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(NAME, "a host is required"));
        }
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let username = (!url.username().is_empty()).then(|| decode(url.username()));
        let password = url.password().map(|p| Secret::new(decode(p)));
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(Self { url, username, password, timeout })
    }

    /// The URL without credentials, safe to print.
    pub fn display_url(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }
}

/// An SMTP relay URL (`smtp://user:pass@host:port`, `smtps://...`, `?tls=required` for STARTTLS).
#[derive(Clone)]
pub struct SmtpUrl(Url);

impl SmtpUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        const NAME: &str = "SMTP_URL";
        let url = Url::parse(raw).map_err(|e| invalid(NAME, e.to_string()))?;
        if !matches!(url.scheme(), "smtp" | "smtps") {
            return Err(invalid(NAME, "the scheme must be smtp or smtps"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(NAME, "a host is required"));
        }
        Ok(Self(url))
    }
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
    /// The URL without credentials, safe to print.
    pub fn display(&self) -> String {
        let mut u = self.0.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.to_string()
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.display())
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub couchdb: CouchSettings,
    pub listen_addr: SocketAddr,
    pub smtp_url: SmtpUrl,
    pub email_from: String,
    pub wkhtmltopdf: String,
    /// How long one LOA rendering may take.
    pub loa_timeout: Duration,
    pub templates_dir: PathBuf,
    pub log: String,
    /// The name hashed into the envelope's `node` field.
    pub node_name: String,
    /// How long account docs, keys and secrets are cached.
    pub cache_ttl: Duration,
    /// Overrides `system_config/number_manager`'s
    /// `allow_port_transition_from_submitted_to_scheduled` when set.
    pub allow_submitted_to_scheduled: Option<bool>,
    /// Per-number charge to accept when submitting (402 "accept charges" until accepted).
    pub port_activation_charge: Option<f64>,
}

/// Raw values as they come from the environment or the command line.
#[derive(Clone, Debug, clap::Args)]
pub struct SettingsArgs {
    /// CouchDB (or compatible) server; credentials may be in the URL.
    #[arg(long, env = "COUCHDB_URL", default_value = "http://127.0.0.1:5984", hide_env_values = true, global = true)]
    pub couchdb_url: String,
    /// Seconds before a CouchDB request counts as failed (503 datastore_unreachable).
    #[arg(long, env = "COUCHDB_TIMEOUT", default_value_t = 10, global = true)]
    pub couchdb_timeout: u64,
    /// Address the HTTP API listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8000", global = true)]
    pub listen_addr: String,
    /// SMTP relay for notifications: smtp:// or smtps://, user and password in the URL.
    #[arg(long, env = "SMTP_URL", default_value = "smtp://127.0.0.1:1025", hide_env_values = true, global = true)]
    pub smtp_url: String,
    /// Sender address of notification emails (default no_reply@<hostname>, as Kazoo).
    #[arg(long, env = "EMAIL_FROM", global = true)]
    pub email_from: Option<String>,
    /// The wkhtmltopdf program used to render LOA PDFs.
    #[arg(long, env = "WKHTMLTOPDF", default_value = "wkhtmltopdf", global = true)]
    pub wkhtmltopdf: String,
    /// Seconds one LOA rendering may take before it is stopped (503).
    #[arg(long, env = "LOA_TIMEOUT", default_value_t = 30, global = true)]
    pub loa_timeout: u64,
    /// Directory of the handlebars templates (emails, LOA).
    #[arg(long, env = "TEMPLATES_DIR", default_value = "templates", global = true)]
    pub templates_dir: PathBuf,
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, env = "LOG", default_value = "info", global = true)]
    pub log: String,
    /// Node name hashed into the envelope's `node` field (default kazoo_port_requests@<hostname>).
    #[arg(long, env = "NODE_NAME", global = true)]
    pub node_name: Option<String>,
    /// Seconds account documents, signing keys and secrets stay cached.
    #[arg(long, env = "CACHE_TTL", default_value_t = 10, global = true)]
    pub cache_ttl: u64,
    /// Allow submitted -> scheduled (default: system_config number_manager, else false).
    #[arg(long, env = "ALLOW_SUBMITTED_TO_SCHEDULED", global = true)]
    pub allow_submitted_to_scheduled: Option<bool>,
    /// Per-number activation charge of a port; submitting then needs accept_charges=true.
    #[arg(long, env = "PORT_ACTIVATION_CHARGE", global = true)]
    pub port_activation_charge: Option<f64>,
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

impl SettingsArgs {
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        if self.couchdb_timeout == 0 {
            return Err(invalid("COUCHDB_TIMEOUT", "must be at least 1 second"));
        }
        let couchdb = CouchSettings::parse(&self.couchdb_url, Duration::from_secs(self.couchdb_timeout))?;
        let listen_addr = self
            .listen_addr
            .to_socket_addrs()
            .map_err(|e| invalid("LISTEN_ADDR", format!("'{}': {e}", self.listen_addr)))?
            .next()
            .ok_or_else(|| invalid("LISTEN_ADDR", format!("'{}' resolves to nothing", self.listen_addr)))?;
        let smtp_url = SmtpUrl::parse(&self.smtp_url)?;
        let email_from = self.email_from.unwrap_or_else(|| format!("no_reply@{}", hostname()));
        if !email_from.contains('@') {
            return Err(invalid("EMAIL_FROM", format!("'{email_from}' is not an email address")));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log).is_err() {
            return Err(invalid("LOG", format!("'{}' is not a log level or filter", self.log)));
        }
        if self.wkhtmltopdf.trim().is_empty() {
            return Err(invalid("WKHTMLTOPDF", "must name a program"));
        }
        Ok(Settings {
            couchdb,
            listen_addr,
            smtp_url,
            email_from,
            wkhtmltopdf: self.wkhtmltopdf,
            loa_timeout: Duration::from_secs(self.loa_timeout.max(1)),
            templates_dir: self.templates_dir,
            log: self.log,
            node_name: self.node_name.unwrap_or_else(|| format!("kazoo_port_requests@{}", hostname())),
            cache_ttl: Duration::from_secs(self.cache_ttl),
            allow_submitted_to_scheduled: self.allow_submitted_to_scheduled,
            port_activation_charge: match self.port_activation_charge {
                Some(c) if !c.is_finite() || c < 0.0 => {
                    return Err(invalid("PORT_ACTIVATION_CHARGE", "must be a non-negative amount"));
                }
                other => other.filter(|c| *c > 0.0),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_off_the_couch_url() {
        let c = CouchSettings::parse("http://admin:s%40cret@db.example:5984/", Duration::from_secs(1)).unwrap();
        assert_eq!(c.username.as_deref(), Some("admin"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("s@cret"));
        assert_eq!(c.display_url(), "http://db.example:5984");
        assert!(!format!("{c:?}").contains("cret"));
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(CouchSettings::parse("ftp://x", Duration::from_secs(1)).is_err());
        assert!(CouchSettings::parse("not a url", Duration::from_secs(1)).is_err());
        assert!(SmtpUrl::parse("http://mail").is_err());
        let smtp = SmtpUrl::parse("smtps://user:pw@mail.example:465").unwrap();
        assert!(!smtp.display().contains("pw"));
    }
}
