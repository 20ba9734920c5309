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

/// One CouchDB node and how to log in to it. Credentials are split off the URL at parse time.
#[derive(Clone, Debug)]
pub struct CouchNode {
    pub url: Url,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl CouchNode {
    /// The URL without credentials, safe to print.
    pub fn display_url(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }
}

/// Where CouchDB is: one node, or several nodes of one cluster (comma-separated), which the
/// service spreads its requests over and fails over between.
#[derive(Clone, Debug)]
pub struct CouchSettings {
    pub nodes: Vec<CouchNode>,
    pub timeout: Duration,
}

impl CouchSettings {
    /// `http://admin:pw@a:5984` or `http://admin:pw@a:5984,http://b:5984,...`; a node without
    /// credentials uses the first node's.
    pub fn parse(raw: &str, timeout: Duration) -> Result<Self, ConfigError> {
        const NAME: &str = "COUCHDB_URL";
        let mut nodes: Vec<CouchNode> = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut url = Url::parse(part).map_err(|e| invalid(NAME, e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(NAME, "the scheme must be http or https"));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(invalid(NAME, "a host is required"));
            }
            let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            let mut username = (!url.username().is_empty()).then(|| decode(url.username()));
            let mut password = url.password().map(|p| Secret::new(decode(p)));
            if username.is_none()
                && let Some(first) = nodes.first()
            {
                username = first.username.clone();
                password = first.password.clone();
            }
            let _ = url.set_username("");
            let _ = url.set_password(None);
            nodes.push(CouchNode { url, username, password });
        }
        if nodes.is_empty() {
            return Err(invalid(NAME, "at least one URL is required"));
        }
        Ok(Self { nodes, timeout })
    }

    /// The URLs without credentials, safe to print.
    pub fn display_url(&self) -> String {
        self.nodes.iter().map(CouchNode::display_url).collect::<Vec<_>>().join(",")
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

/// The delivery job: where this instance's events are delivered, and how.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// Run the delivery job in this process.
    pub worker: bool,
    /// Instances sharing a queue share the work; each record is delivered once.
    pub queue: String,
    /// How often due records are looked for when nothing wakes the sender.
    pub poll: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Records still failing this long after they were made are marked failed (also how far
    /// back events are still delivered).
    pub give_up_after: Duration,
    /// How long a record taken stays with the instance that took it.
    pub lease: Duration,
}

/// The unconfirmed reminders job.
#[derive(Clone, Debug)]
pub struct ReminderSettings {
    pub on: bool,
    /// How long a request may stay unconfirmed before a reminder (each such period).
    pub age: Duration,
    /// How often unconfirmed requests are looked for.
    pub interval: Duration,
}

/// The port authorities' daily digest job.
#[derive(Clone, Debug)]
pub struct DigestJobSettings {
    pub on: bool,
    /// How often the authorities whose digest is due are looked for.
    pub interval: Duration,
    /// Only these authorities get a digest (empty: every one), for a trial of a few.
    pub only: Vec<String>,
}

/// The background jobs this instance runs (`jobs`), each with its own switch.
#[derive(Clone, Debug)]
pub struct JobSettings {
    pub delivery: DeliverySettings,
    pub conflict_resolution: bool,
    pub claim_adoption: bool,
    pub completion_repair: bool,
    /// How old the number documents of an unfinished completion must be before the repair
    /// removes them (it also runs this often).
    pub completion_grace: Duration,
    pub reminders: ReminderSettings,
    pub digest: DigestJobSettings,
    /// How often the desk's gauges (requests per state and per attention rule) and the named
    /// carriers are refreshed; none: never.
    pub desk_metrics: Option<Duration>,
    /// Removing expired `Idempotency-Key` records.
    pub cleanup: bool,
}

/// Webhooks, of requests and of the Fone Dynamics API.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Key of the `X-Signature-SHA256` HMAC on webhook bodies.
    pub secret: Option<Secret>,
    /// Deliver webhooks to loopback and private addresses (off: a request could make the
    /// service call into the operator's network).
    pub allow_private: bool,
}

/// Who mails the port events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailsBy {
    /// This service (the default).
    Service,
    /// Kazoo's teletype, from the events on the bus: the service mails none of them.
    Teletype,
}

/// Kazoo's AMQP bus (`AMQP_URL`): its brokers, tried in order.
#[derive(Clone, Debug)]
pub struct BusSettings {
    pub brokers: Vec<Broker>,
    /// How long a publication waits for teletype's answer before it is published again
    /// (with `EMAILS_BY=teletype`).
    pub reply_timeout: Duration,
}

/// One broker: its URL with the credentials (never printed), and a name safe to print.
#[derive(Clone, Debug)]
pub struct Broker {
    pub url: Secret,
    pub display: String,
}

impl BusSettings {
    pub fn parse(raw: &str, reply_timeout: Duration) -> Result<Option<Self>, ConfigError> {
        let mut brokers = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let url = Url::parse(part).map_err(|e| invalid("AMQP_URL", format!("not a URL: {e}")))?;
            if !matches!(url.scheme(), "amqp" | "amqps") || url.host_str().is_none() {
                return Err(invalid("AMQP_URL", "each broker must be amqp://host[:port][/vhost] or amqps://"));
            }
            let port = url.port().unwrap_or(if url.scheme() == "amqps" { 5671 } else { 5672 });
            let display = format!("{}://{}:{port}", url.scheme(), url.host_str().unwrap_or_default());
            brokers.push(Broker { url: Secret::new(part), display });
        }
        Ok((!brokers.is_empty()).then_some(Self { brokers, reply_timeout }))
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
    /// Log lines as JSON objects.
    pub log_json: bool,
    /// The name hashed into the envelope's `node` field.
    pub node_name: String,
    /// How long account docs, keys and secrets are cached.
    pub cache_ttl: Duration,
    /// Port request documents kept to be revalidated with CouchDB instead of re-read (0: off).
    pub doc_cache: u64,
    /// How long a listing waits for its view to catch up before answering from the view as it
    /// stands.
    pub listing_wait: Duration,
    /// HTTP worker threads (each a single-threaded runtime serving connections).
    pub http_workers: usize,
    /// Where the customer's pages are reached (customer links start with it); set at start
    /// from the listening address when not configured.
    pub public_url: String,
    /// Overrides `system_config/number_manager`'s
    /// `allow_port_transition_from_submitted_to_scheduled` when set.
    pub allow_submitted_to_scheduled: Option<bool>,
    /// Per-number charge to accept when submitting (402 "accept charges" until accepted).
    pub port_activation_charge: Option<f64>,
    pub webhooks: WebhookSettings,
    /// Kazoo's bus; `None`: no event is published.
    pub bus: Option<BusSettings>,
    pub emails_by: EmailsBy,
    pub jobs: JobSettings,
}

/// Raw values as they come from the environment or the command line.
#[derive(Clone, Debug, clap::Args)]
pub struct SettingsArgs {
    /// CouchDB (or compatible) server, or several nodes of one cluster (comma-separated);
    /// credentials may be in the URL.
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
    /// Log line format: text or json.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: String,
    /// Node name hashed into the envelope's `node` field (default kazoo_port_requests@<hostname>).
    #[arg(long, env = "NODE_NAME", global = true)]
    pub node_name: Option<String>,
    /// Seconds account documents, signing keys and secrets stay cached.
    #[arg(long, env = "CACHE_TTL", default_value_t = 10, global = true)]
    pub cache_ttl: u64,
    /// Port request documents kept in memory; a read asks CouchDB whether its copy is current
    /// (If-None-Match) and is sent the document only when it is not; 0 turns it off.
    #[arg(long, env = "DOC_CACHE", default_value_t = 5_000, global = true)]
    pub doc_cache: u64,
    /// Milliseconds a listing waits for CouchDB to bring its view up to date before it answers
    /// from the view as it stands (which CouchDB then brings up to date).
    #[arg(long, env = "LISTING_WAIT_MS", default_value_t = 1000, global = true)]
    pub listing_wait_ms: u64,
    /// HTTP worker threads; CouchDB calls are I/O, so two serve a small host's cores.
    #[arg(long, env = "HTTP_WORKERS", default_value_t = 2, global = true)]
    pub http_workers: usize,
    /// The service's public base URL, as customers reach it (e.g. https://ports.example.com):
    /// customer links start with it. Default: http:// and the listening address.
    #[arg(long, env = "PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Allow submitted -> scheduled (default: system_config number_manager, else false).
    #[arg(long, env = "ALLOW_SUBMITTED_TO_SCHEDULED", global = true)]
    pub allow_submitted_to_scheduled: Option<bool>,
    /// Per-number activation charge of a port; submitting then needs accept_charges=true.
    #[arg(long, env = "PORT_ACTIVATION_CHARGE", global = true)]
    pub port_activation_charge: Option<f64>,
    /// Secret for the X-Signature-SHA256 HMAC of webhook bodies (none: unsigned).
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true, global = true)]
    pub webhook_secret: Option<String>,
    /// Deliver webhooks to loopback/private addresses too.
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", default_value_t = false, global = true)]
    pub webhook_allow_private: bool,
    /// Kazoo's AMQP broker(s), as in Kazoo's `[amqp] uri` (several, comma-separated, are
    /// tried in turn): each port event is published on exchange `notifications`. Unset: none.
    #[arg(long, env = "AMQP_URL", hide_env_values = true, global = true)]
    pub amqp_url: Option<String>,
    /// Who mails the port events: `service` (this service) or `teletype` (Kazoo's, from the
    /// bus: needs AMQP_URL).
    #[arg(long, env = "EMAILS_BY", default_value = "service", global = true)]
    pub emails_by: String,
    /// Seconds a publication waits for teletype's answer before it is published again.
    #[arg(long, env = "TELETYPE_REPLY_TIMEOUT", default_value_t = 30, global = true)]
    pub teletype_reply_timeout: u64,
    /// Run the delivery job (mails, webhooks, carrier push) in this process.
    #[arg(long, env = "DELIVERY_WORKER", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub delivery_worker: bool,
    /// Delivery queue name: instances on one CouchDB with the same queue share deliveries.
    #[arg(long, env = "DELIVERY_QUEUE", default_value = "default", global = true)]
    pub delivery_queue: String,
    /// Milliseconds between looks for due deliveries when nothing wakes the sender.
    #[arg(long, env = "DELIVERY_POLL_MS", default_value_t = 1000, global = true)]
    pub delivery_poll_ms: u64,
    /// First retry delay of a failed delivery in milliseconds; doubles each failure.
    #[arg(long, env = "DELIVERY_RETRY_BASE_MS", default_value_t = 5000, global = true)]
    pub delivery_retry_base_ms: u64,
    /// Longest retry delay in seconds.
    #[arg(long, env = "DELIVERY_RETRY_MAX", default_value_t = 7200, global = true)]
    pub delivery_retry_max: u64,
    /// Seconds after which an undeliverable record is marked failed (at least a day).
    #[arg(long, env = "DELIVERY_GIVE_UP", default_value_t = 172_800, global = true)]
    pub delivery_give_up: u64,
    /// Seconds a delivery record taken stays with its instance.
    #[arg(long, env = "DELIVERY_LEASE", default_value_t = 120, global = true)]
    pub delivery_lease: u64,
    /// Resolve port requests held in conflicting revisions.
    #[arg(long, env = "CONFLICT_RESOLUTION", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub conflict_resolution: bool,
    /// Claim the numbers of open requests written elsewhere (Kazoo, older versions).
    #[arg(long, env = "CLAIM_ADOPTION", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub claim_adoption: bool,
    /// Undo the number documents of completions whose request was never saved.
    #[arg(long, env = "COMPLETION_REPAIR", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub completion_repair: bool,
    /// Seconds after which number documents of a completion whose request was never saved
    /// (the process died in between) are removed; also how often that is looked for.
    #[arg(long, env = "COMPLETION_GRACE", default_value_t = 120, global = true)]
    pub completion_grace: u64,
    /// Mail port_unconfirmed reminders (needs the delivery job).
    #[arg(long, env = "REMINDERS", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub reminders: bool,
    /// Seconds a request may stay unconfirmed before a port_unconfirmed reminder (each period).
    #[arg(long, env = "REMINDER_AGE", default_value_t = 604_800, global = true)]
    pub reminder_age: u64,
    /// Seconds between looks for unconfirmed requests.
    #[arg(long, env = "REMINDER_INTERVAL", default_value_t = 3600, global = true)]
    pub reminder_interval: u64,
    /// Mail each port authority its daily digest (needs the delivery job).
    #[arg(long, env = "DIGEST", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub digest: bool,
    /// Seconds between looks for the authorities whose digest is due.
    #[arg(long, env = "DIGEST_INTERVAL", default_value_t = 60, global = true)]
    pub digest_interval: u64,
    /// Only these port authorities (account ids, comma-separated) get the digest; empty: all.
    #[arg(long, env = "DIGEST_AUTHORITIES", value_delimiter = ',', global = true)]
    pub digest_authorities: Vec<String>,
    /// Seconds between refreshes of the desk's gauges (requests per state and per attention
    /// rule) and of the carriers named in the carrier label; 0: never.
    #[arg(long, env = "DESK_METRICS_INTERVAL", default_value_t = 60, global = true)]
    pub desk_metrics_interval: u64,
    /// Remove the records of expired Idempotency-Keys (hourly).
    #[arg(long, env = "CLEANUP", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub cleanup: bool,
}

/// The delivery settings earlier versions read as `OUTBOX_*` (`OUTBOX_QUEUE` for
/// `DELIVERY_QUEUE`, ...): those names are kept as aliases.
const ALIASED: [&str; 7] = ["WORKER", "QUEUE", "POLL_MS", "RETRY_BASE_MS", "RETRY_MAX", "GIVE_UP", "LEASE"];

/// What `OUTBOX_WORKER=false` stopped besides the deliveries, in the versions that had it: an
/// instance set up that way keeps running none of them unless they are switched on by name.
const STOPPED_WITH_THE_OUTBOX: [&str; 3] = ["CONFLICT_RESOLUTION", "CLAIM_ADOPTION", "COMPLETION_REPAIR"];

/// The command line to read the settings from: `args`, with the value of each old variable
/// whose new name is neither set nor on the command line given as the new flag.
pub fn with_aliases(args: Vec<String>, env: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = args;
    // `new` takes `value` unless it is set by its own name
    let mut stands_for = |new: &str, value: Option<String>| {
        let flag = format!("--{}", new.to_lowercase().replace('_', "-"));
        let given = out.iter().any(|a| *a == flag || a.starts_with(&format!("{flag}=")));
        if let (Some(value), None, false) = (value, env(new), given) {
            out.insert(1.min(out.len()), format!("{flag}={value}"));
        }
    };
    for name in ALIASED {
        stands_for(&format!("DELIVERY_{name}"), env(&format!("OUTBOX_{name}")));
    }
    if env("OUTBOX_WORKER").as_deref() == Some("false") {
        for job in STOPPED_WITH_THE_OUTBOX {
            stands_for(job, Some("false".into()));
        }
    }
    out
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
        let log_json = match self.log_format.as_str() {
            "text" => false,
            "json" => true,
            other => return Err(invalid("LOG_FORMAT", format!("'{other}' is neither text nor json"))),
        };
        if self.wkhtmltopdf.trim().is_empty() {
            return Err(invalid("WKHTMLTOPDF", "must name a program"));
        }
        let bus = match self.amqp_url.as_deref() {
            Some(raw) => BusSettings::parse(raw, Duration::from_secs(self.teletype_reply_timeout.max(1)))?,
            None => None,
        };
        let emails_by = match self.emails_by.as_str() {
            "service" => EmailsBy::Service,
            "teletype" if bus.is_some() => EmailsBy::Teletype,
            "teletype" => return Err(invalid("EMAILS_BY", "teletype mails from Kazoo's bus: set AMQP_URL too")),
            other => return Err(invalid("EMAILS_BY", format!("'{other}' is neither service nor teletype"))),
        };
        Ok(Settings {
            couchdb,
            listen_addr,
            smtp_url,
            email_from,
            wkhtmltopdf: self.wkhtmltopdf,
            loa_timeout: Duration::from_secs(self.loa_timeout.max(1)),
            templates_dir: self.templates_dir,
            log: self.log,
            log_json,
            node_name: self.node_name.unwrap_or_else(|| format!("kazoo_port_requests@{}", hostname())),
            cache_ttl: Duration::from_secs(self.cache_ttl),
            doc_cache: self.doc_cache,
            listing_wait: Duration::from_millis(self.listing_wait_ms.max(1)),
            http_workers: self.http_workers.clamp(1, 256),
            public_url: match self.public_url.as_deref().map(|u| u.trim().trim_end_matches('/')) {
                Some(u) if url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https")) => u.to_owned(),
                Some("") | None => String::new(),
                Some(u) => return Err(invalid("PUBLIC_URL", format!("'{u}' is not an http(s) URL"))),
            },
            allow_submitted_to_scheduled: self.allow_submitted_to_scheduled,
            port_activation_charge: match self.port_activation_charge {
                Some(c) if !c.is_finite() || c < 0.0 => {
                    return Err(invalid("PORT_ACTIVATION_CHARGE", "must be a non-negative amount"));
                }
                other => other.filter(|c| *c > 0.0),
            },
            webhooks: WebhookSettings {
                secret: self.webhook_secret.filter(|s| !s.is_empty()).map(Secret::new),
                allow_private: self.webhook_allow_private,
            },
            bus,
            emails_by,
            jobs: JobSettings {
                delivery: DeliverySettings {
                    worker: self.delivery_worker,
                    queue: self.delivery_queue,
                    poll: Duration::from_millis(self.delivery_poll_ms.max(10)),
                    retry_base: Duration::from_millis(self.delivery_retry_base_ms.max(10)),
                    retry_max: Duration::from_secs(self.delivery_retry_max.max(1)),
                    give_up_after: Duration::from_secs(self.delivery_give_up.max(1)),
                    lease: Duration::from_secs(self.delivery_lease.max(1)),
                },
                conflict_resolution: self.conflict_resolution,
                claim_adoption: self.claim_adoption,
                completion_repair: self.completion_repair,
                completion_grace: Duration::from_secs(self.completion_grace.max(1)),
                reminders: ReminderSettings {
                    on: self.reminders,
                    age: Duration::from_secs(self.reminder_age.max(1)),
                    interval: Duration::from_secs(self.reminder_interval.max(1)),
                },
                digest: DigestJobSettings {
                    on: self.digest,
                    interval: Duration::from_secs(self.digest_interval.max(1)),
                    only: self
                        .digest_authorities
                        .iter()
                        .map(|a| a.trim().to_owned())
                        .filter(|a| !a.is_empty())
                        .collect(),
                },
                desk_metrics: (self.desk_metrics_interval > 0).then(|| Duration::from_secs(self.desk_metrics_interval)),
                cleanup: self.cleanup,
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
        assert_eq!(c.nodes[0].username.as_deref(), Some("admin"));
        assert_eq!(c.nodes[0].password.as_ref().map(Secret::expose), Some("s@cret"));
        assert_eq!(c.display_url(), "http://db.example:5984");
        assert!(!format!("{c:?}").contains("cret"));
    }

    #[test]
    fn several_nodes_share_the_first_credentials() {
        let c =
            CouchSettings::parse("http://admin:pw@a:5984, http://b:5984,http://u:other@c:5984", Duration::from_secs(1))
                .unwrap();
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(c.nodes[1].username.as_deref(), Some("admin"));
        assert_eq!(c.nodes[1].password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(c.nodes[2].username.as_deref(), Some("u"));
        assert_eq!(c.display_url(), "http://a:5984,http://b:5984,http://c:5984");
        assert!(CouchSettings::parse(" , ", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn the_outbox_names_of_earlier_versions_still_work() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            settings: SettingsArgs,
        }
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        let parse = |args: &[&str], vars: &'static [(&'static str, &'static str)]| {
            let args = with_aliases(args.iter().map(|a| a.to_string()).collect(), env(vars));
            Cli::parse_from(args).settings.into_settings().unwrap()
        };
        let old = parse(&["kpr"], &[("OUTBOX_WORKER", "false"), ("OUTBOX_QUEUE", "q1"), ("OUTBOX_LEASE", "30")]);
        assert!(!old.jobs.delivery.worker);
        assert_eq!(old.jobs.delivery.queue, "q1");
        assert_eq!(old.jobs.delivery.lease, Duration::from_secs(30));
        assert!(
            !old.jobs.conflict_resolution && !old.jobs.claim_adoption && !old.jobs.completion_repair,
            "OUTBOX_WORKER=false still stops what it stopped"
        );
        let on = parse(&["kpr"], &[("OUTBOX_WORKER", "false"), ("CLAIM_ADOPTION", "true")]);
        assert!(!on.jobs.delivery.worker && on.jobs.claim_adoption && !on.jobs.conflict_resolution);
        let new = parse(&["kpr", "--delivery-worker", "false"], &[]);
        assert!(!new.jobs.delivery.worker && new.jobs.conflict_resolution, "DELIVERY_WORKER is the deliveries only");
        let both = parse(&["kpr", "--delivery-queue", "flag"], &[("OUTBOX_QUEUE", "old")]);
        assert_eq!(both.jobs.delivery.queue, "flag", "the new name wins");
        let renamed = with_aliases(vec!["kpr".into()], env(&[("OUTBOX_QUEUE", "old"), ("DELIVERY_QUEUE", "new")]));
        assert_eq!(renamed, ["kpr"], "the new variable wins (clap reads it)");
        let off = parse(&["kpr", "--conflict-resolution", "false", "--reminders", "false"], &[]);
        assert!(off.jobs.delivery.worker && !off.jobs.conflict_resolution && !off.jobs.reminders.on);
    }

    #[test]
    fn broker_credentials_are_never_printed() {
        let bus =
            BusSettings::parse("amqp://kazoo:s3cret@rabbit1:5672/%2f, amqps://u:pw2@rabbit2", Duration::from_secs(30))
                .unwrap()
                .unwrap();
        let names: Vec<&str> = bus.brokers.iter().map(|b| b.display.as_str()).collect();
        assert_eq!(names, ["amqp://rabbit1:5672", "amqps://rabbit2:5671"]);
        let printed = format!("{bus:?}");
        assert!(!printed.contains("s3cret") && !printed.contains("pw2"), "{printed}");
        assert!(BusSettings::parse("http://rabbit", Duration::from_secs(1)).is_err());
        assert!(BusSettings::parse(" ", Duration::from_secs(1)).unwrap().is_none());
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
