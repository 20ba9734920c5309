//! Starts the real application on a random port against the real servers of scripts/test.sh.

use super::kazoo::{self, Account, System};
use kazoo_port_requests::configuration::{Settings, SettingsArgs};
use kazoo_port_requests::startup::Application;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use std::sync::Once;

static TRACING: Once = Once::new();

/// Held by the tests that stop a backing service under steady load and count what the load
/// achieved: two of them at once on a small machine starve each other's load.
pub static OUTAGE_UNDER_LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn default_settings(couch_url: &str) -> Settings {
    let args = SettingsArgs {
        couchdb_url: couch_url.to_owned(),
        couchdb_timeout: 5,
        listen_addr: "127.0.0.1:0".into(),
        smtp_url: std::env::var("SMTP_URL").unwrap_or_else(|_| "smtp://127.0.0.1:1025".into()),
        email_from: Some("ports@kpr.test".into()),
        wkhtmltopdf: "wkhtmltopdf".into(),
        loa_timeout: 30,
        templates_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/templates").into(),
        log: std::env::var("LOG").unwrap_or_else(|_| "warn".into()),
        log_format: "text".into(),
        node_name: Some("kpr-test@localhost".into()),
        cache_ttl: 10,
        doc_cache: 5_000,
        listing_wait_ms: 2000,
        http_workers: 2,
        public_url: None,
        allow_submitted_to_scheduled: None,
        port_activation_charge: None,
        webhook_secret: Some("test-webhook-secret".into()),
        webhook_allow_private: true,
        amqp_url: None,
        emails_by: "service".into(),
        teletype_reply_timeout: 30,
        delivery_worker: true,
        // each test app works its own queue, unless a test shares one on purpose
        delivery_queue: kazoo::hex32(),
        delivery_poll_ms: 300,
        delivery_retry_base_ms: 200,
        delivery_retry_max: 1,
        delivery_give_up: 600,
        delivery_lease: 30,
        conflict_resolution: true,
        claim_adoption: true,
        completion_repair: true,
        completion_grace: 3,
        reminders: true,
        reminder_age: 604_800,
        reminder_interval: 3600,
        // a digest goes to every authority with open requests: only the tests of it turn it on
        digest: false,
        digest_interval: 1,
        digest_authorities: vec![],
        // the gauges count every authority of the shared database: only their test turns them on
        desk_metrics_interval: 0,
        cleanup: true,
    };
    args.into_settings().expect("test settings are valid")
}

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub sys: &'static System,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let sys = kazoo::system().await;
    let mut settings = default_settings(&sys.couch.url);
    adjust(&mut settings);
    let address = start(settings).await;
    TestApp { address, http: reqwest::Client::new(), sys }
}

/// Builds and starts the application; returns its base URL.
pub async fn start(settings: Settings) -> String {
    TRACING.call_once(|| kazoo_port_requests::telemetry::init(&settings.log, settings.log_json));
    let app = Application::build(settings).await.expect("the application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    address
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut r = self.http.request(method, self.url(path));
        if let Some(t) = token {
            r = r.header("X-Auth-Token", t);
        }
        r
    }

    /// Sends a JSON envelope `{"data": data}` (or no body) and returns status and body.
    pub async fn call(&self, method: Method, path: &str, token: &str, data: Option<Value>) -> (u16, Value) {
        let mut r = self.request(method, path, Some(token));
        if let Some(d) = data {
            r = r.json(&json!({ "data": d }));
        }
        send(r).await
    }

    /// Sends `{"data": data}` with an `Idempotency-Key`; returns status, whether the answer was
    /// a replay, and body.
    pub async fn keyed(&self, method: Method, path: &str, token: &str, key: &str, data: &Value) -> (u16, bool, Value) {
        let resp = self
            .request(method, path, Some(token))
            .header("Idempotency-Key", key)
            .json(&json!({ "data": data }))
            .send()
            .await
            .unwrap();
        let replayed = resp.headers().get("idempotent-replayed").is_some();
        (resp.status().as_u16(), replayed, resp.json().await.unwrap_or(Value::Null))
    }

    pub fn token(&self, account: &Account) -> String {
        self.sys.token(account, true)
    }

    pub fn master_token(&self) -> String {
        self.sys.token(&self.sys.master, true)
    }
}

/// Sends a request and returns its status and JSON body.
pub async fn send(req: RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request sent");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// A fresh account tree for one test: `reseller` (a port authority with a support email)
/// under master, and `customer` under it.
pub struct Tree {
    pub reseller: Account,
    pub customer: Account,
}

pub async fn tree(app: &TestApp) -> Tree {
    let reseller = app.sys.account(None, "Reseller", json!({})).await;
    let support = format!("ports-{}@reseller.example.com", &reseller.id[..12]);
    app.sys.whitelabel(&reseller, &reseller.id, Some(&support)).await;
    let customer = app.sys.account(Some(&reseller), "Customer", json!({})).await;
    Tree { reseller, customer }
}

/// Asserts the crossbar error envelope and returns its `data`.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, message: &str) -> Value {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["error"], expected_status.to_string(), "{body}");
    assert_eq!(body["message"], message, "{body}");
    for key in ["request_id", "node", "version", "timestamp", "auth_token"] {
        assert!(body.get(key).is_some(), "missing {key} in {body}");
    }
    body["data"].clone()
}

/// A separate CouchDB-compatible server the test controls (to stop and restart it): a fresh
/// Apache CouchDB node when the test command runs on CouchDB (`KPR_COUCHDB_DIST` names the
/// prebuilt release's scripts), PouchDB Server otherwise.
pub struct OwnCouch {
    url: String,
    pub dir: std::path::PathBuf,
    child: Option<std::process::Child>,
    port: u16,
}

/// Waits up to 15 s for `url` to answer 2xx.
async fn wait_up(url: &str, what: &str) {
    for _ in 0..150 {
        if reqwest::get(url).await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not start at {url}");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn couchdb_dist() -> Option<std::path::PathBuf> {
    std::env::var_os("KPR_COUCHDB_DIST").map(std::path::PathBuf::from).filter(|d| d.join("start-node.sh").exists())
}

fn run_script(script: &std::path::Path, args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(script).args(args).output().expect("the CouchDB script runs");
    assert!(out.status.success(), "{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl OwnCouch {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("kpr-own-couch-{}", kazoo::hex32()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = OwnCouch { url: String::new(), dir, child: None, port: free_port() };
        c.restart().await;
        c
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Starts it again on the same port with the same data.
    pub async fn restart(&mut self) {
        if let Some(dist) = couchdb_dist() {
            // a free port below the ephemeral range the first time, the same one after
            let url = run_script(&dist.join("start-node.sh"), &[self.dir.as_os_str()]);
            assert!(self.url.is_empty() || self.url == url, "CouchDB came back elsewhere: {url}");
            self.url = url;
            wait_up(&format!("{}/_up", self.url), "CouchDB").await;
            return;
        }
        let bin =
            std::env::var("POUCHDB_SERVER_BIN").expect("POUCHDB_SERVER_BIN is set: run the tests with scripts/test.sh");
        let child = std::process::Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string(), "--dir"])
            .arg(&self.dir)
            .arg("--config")
            .arg(self.dir.join("config.json"))
            .arg("-n")
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pouchdb-server starts");
        self.child = Some(child);
        self.url = format!("http://127.0.0.1:{}", self.port);
        wait_up(&self.url, "pouchdb-server").await;
    }

    pub fn stop(&mut self) {
        if let Some(dist) = couchdb_dist() {
            run_script(&dist.join("stop.sh"), &[self.dir.as_os_str()]);
            return;
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnCouch {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Port request calls shared by the lifecycle tests.
pub struct Ports<'a> {
    pub app: &'a TestApp,
    pub account: &'a Account,
}

impl<'a> Ports<'a> {
    pub fn new(app: &'a TestApp, account: &'a Account) -> Self {
        Self { app, account }
    }

    pub fn path(&self, rest: &str) -> String {
        format!("/v2/accounts/{}/port_requests{rest}", self.account.id)
    }

    /// Creates a request with these numbers; panics unless it is created.
    pub async fn create(&self, token: &str, numbers: &[&str]) -> Value {
        let nums: serde_json::Map<String, Value> = numbers.iter().map(|n| (n.to_string(), json!({}))).collect();
        let (status, body) = self
            .app
            .call(
                Method::PUT,
                &self.path(""),
                token,
                Some(json!({"name": format!("Port {}", numbers.join(",")), "numbers": nums})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["data"].clone()
    }

    pub async fn get(&self, token: &str, id: &str) -> (u16, Value) {
        self.app.call(Method::GET, &self.path(&format!("/{id}")), token, None).await
    }

    pub async fn to(&self, token: &str, id: &str, state: &str, data: Option<Value>) -> (u16, Value) {
        let data = data.or_else(|| {
            (state == "scheduled")
                .then(|| json!({"schedule_on": {"date_time": "2031-06-24 12:00", "timezone": "America/Los_Angeles"}}))
        });
        self.app.call(Method::PATCH, &self.path(&format!("/{id}/{state}")), token, data).await
    }

    /// Drives a request through `states` with the authority's token.
    pub async fn walk(&self, authority: &str, id: &str, states: &[&str]) {
        for st in states {
            let (status, body) = self.to(authority, id, st, None).await;
            assert_eq!(status, 200, "moving to {st}: {body}");
        }
    }
}

/// The path of transitions that brings a new request to `state`.
pub fn path_to(state: &str) -> &'static [&'static str] {
    match state {
        "unconfirmed" => &[],
        "submitted" => &["submitted"],
        "pending" => &["submitted", "pending"],
        "scheduled" => &["submitted", "pending", "scheduled"],
        "completed" => &["submitted", "pending", "completed"],
        "rejected" => &["submitted", "rejected"],
        "canceled" => &["canceled"],
        other => panic!("no path to {other}"),
    }
}

/// The support email `tree()` gives the reseller.
pub fn support_email(reseller: &Account) -> String {
    format!("ports-{}@reseller.example.com", &reseller.id[..12])
}

/// The emails MailDev (at `maildev`) holds for `address`.
pub async fn mails_to(maildev: &str, address: &str) -> Vec<Value> {
    let all: Value = reqwest::get(format!("{maildev}/email")).await.unwrap().json().await.unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .filter(|m| m["to"].as_array().is_some_and(|to| to.iter().any(|t| t["address"] == address)))
        .cloned()
        .collect()
}

/// Waits until `address` has at least `n` emails, then a little longer to catch extra
/// copies; returns them all.
pub async fn wait_mails(maildev: &str, address: &str, n: usize) -> Vec<Value> {
    for _ in 0..150 {
        if mails_to(maildev, address).await.len() >= n {
            tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
            return mails_to(maildev, address).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    mails_to(maildev, address).await
}

pub fn subjects(mails: &[Value]) -> Vec<String> {
    let mut s: Vec<String> = mails.iter().map(|m| m["subject"].as_str().unwrap_or_default().to_owned()).collect();
    s.sort();
    s
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub headers: std::collections::HashMap<String, String>,
    pub body: Vec<u8>,
}

/// An HTTP endpoint that records what it receives, answering 500 to the first `fail_first`.
pub struct Receiver {
    pub url: String,
    pub hits: std::sync::Arc<std::sync::Mutex<Vec<Hit>>>,
}

pub async fn receiver(fail_first: usize) -> Receiver {
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let failures = std::sync::Arc::new(AtomicUsize::new(fail_first));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let (h, f) = (hits.clone(), failures.clone());
    let server = HttpServer::new(move || {
        let (h, f) = (h.clone(), f.clone());
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let (h, f) = (h.clone(), f.clone());
            async move {
                let failing = f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                if failing {
                    return HttpResponse::InternalServerError().finish();
                }
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect();
                h.lock().unwrap().push(Hit { path: req.path().to_owned(), headers, body: body.to_vec() });
                HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    Receiver { url, hits }
}

impl Receiver {
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait(&self, n: usize) -> Vec<Hit> {
        for _ in 0..150 {
            if self.hits().len() >= n {
                tokio::time::sleep(std::time::Duration::from_millis(800)).await;
                return self.hits();
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        self.hits()
    }
}

/// A MailDev the test controls (to stop and restart it).
pub struct OwnMaildev {
    pub smtp: u16,
    pub web: u16,
    child: Option<std::process::Child>,
}

impl OwnMaildev {
    pub async fn start() -> Self {
        let mut m = OwnMaildev { smtp: free_port(), web: free_port(), child: None };
        m.restart().await;
        m
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.web)
    }

    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.smtp)
    }

    pub async fn restart(&mut self) {
        let bin = std::env::var("MAILDEV_BIN").expect("MAILDEV_BIN is set: run the tests with scripts/test.sh");
        let child = std::process::Command::new(bin)
            .args([
                "--smtp",
                &self.smtp.to_string(),
                "--web",
                &self.web.to_string(),
                "--ip",
                "127.0.0.1",
                "--web-ip",
                "127.0.0.1",
                "--silent",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("maildev starts");
        self.child = Some(child);
        wait_up(&format!("{}/email", self.url()), "maildev").await;
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnMaildev {
    fn drop(&mut self) {
        self.stop();
    }
}
