//! A consumer on Kazoo's AMQP bus for the tests, bound as teletype binds, and the rules of
//! `kapi_notifications` a port event must pass.

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn amqp_url() -> String {
    std::env::var("KPR_AMQP_URL").expect("KPR_AMQP_URL is set: run the tests with scripts/test.sh")
}

/// One message as a consumer got it.
#[derive(Debug, Clone)]
pub struct Heard {
    pub routing_key: String,
    pub content_type: Option<String>,
    pub body: Value,
}

/// A consumer bound to exchange `notifications` as teletype binds (`notifications.*.*`).
pub struct Listener {
    _channel: Channel,
    pub heard: Arc<Mutex<Vec<Heard>>>,
    _connection: Connection,
}

pub async fn connect(url: &str) -> Connection {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    Connection::connect(url, properties).await.expect("the broker answers")
}

pub fn kazoo_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { durable: false, auto_delete: false, ..ExchangeDeclareOptions::default() }
}

/// A channel with `queue` bound as teletype binds (`notifications.*.*`), and a consumer on it.
pub async fn bound_as_teletype(url: &str, queue: &str, durable: bool) -> (Connection, Channel, lapin::Consumer) {
    let connection = connect(url).await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare("notifications", ExchangeKind::Topic, kazoo_exchange(), FieldTable::default())
        .await
        .unwrap();
    let options = QueueDeclareOptions { durable, exclusive: !durable, auto_delete: !durable, ..Default::default() };
    channel.queue_declare(queue, options, FieldTable::default()).await.unwrap();
    channel
        .queue_bind(queue, "notifications", "notifications.*.*", QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let consumer =
        channel.basic_consume(queue, "", BasicConsumeOptions::default(), FieldTable::default()).await.unwrap();
    (connection, channel, consumer)
}

pub async fn listen(url: &str, queue: &str, durable: bool) -> Listener {
    let (connection, channel, mut consumer) = bound_as_teletype(url, queue, durable).await;
    let heard = Arc::new(Mutex::new(Vec::new()));
    let h = heard.clone();
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let body = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
            let content_type = d.properties.content_type().as_ref().map(|c| c.to_string());
            h.lock().unwrap().push(Heard { routing_key: d.routing_key.to_string(), content_type, body });
            let _ = d.acker.ack(BasicAckOptions::default()).await;
        }
    });
    Listener { _channel: channel, heard, _connection: connection }
}

impl Listener {
    /// What was heard about request `id`.
    pub fn about(&self, id: &str) -> Vec<Heard> {
        self.heard.lock().unwrap().iter().filter(|h| h.body["Port-Request-ID"] == id).cloned().collect()
    }

    /// Waits for `n` messages about `id`, then a little longer to catch one too many.
    pub async fn wait(&self, id: &str, n: usize) -> Vec<Heard> {
        for _ in 0..200 {
            if self.about(id).len() >= n {
                tokio::time::sleep(Duration::from_millis(1000)).await;
                return self.about(id);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.about(id)
    }
}

/// `kapi_notifications`' definition of a port event: its required and optional keys (with
/// `kz_api`'s defaults), and the value rules.
pub fn check_kapi(h: &Heard) {
    let b = h.body.as_object().unwrap_or_else(|| panic!("a JSON object: {h:?}"));
    let event = b["Event-Name"].as_str().unwrap();
    assert_eq!(h.routing_key, format!("notifications.number.{event}"));
    assert_eq!(h.content_type.as_deref(), Some("application/json"));
    let mut required =
        vec!["App-Name", "App-Version", "Event-Category", "Event-Name", "Msg-ID", "Account-ID", "Port-Request-ID"];
    if event == "port_comment" {
        required.push("Comment");
    }
    let mut optional = vec!["Authorized-By", "Local-Number", "Number", "Number-State", "Port", "Version"];
    if event != "port_comment" {
        optional.push("Reason");
    }
    optional.extend(["To", "Cc", "Bcc", "From", "Reply-To", "Subject", "HTML", "Text", "Account-DB", "Preview"]);
    optional.extend(["Attachment-URL", "Server-ID", "Node", "Defer-Response", "Access-Group", "Destination-Server"]);
    optional.extend(["Geo-Location", "Log-ID", "API-Account-ID", "API-Call-ID", "Queue-ID", "Raw-Headers"]);
    for k in &required {
        let v = b.get(*k).unwrap_or_else(|| panic!("{k} is required: {h:?}"));
        assert!(!v.is_null() && v != "", "{k} is set: {h:?}");
    }
    for k in b.keys() {
        assert!(
            required.contains(&k.as_str()) || optional.contains(&k.as_str()),
            "{k} is not in the definition: {h:?}"
        );
    }
    assert_eq!(b["Event-Category"], "notification");
    assert!(
        [
            "port_request",
            "port_pending",
            "port_scheduled",
            "ported",
            "port_rejected",
            "port_cancel",
            "port_comment",
            "port_unconfirmed"
        ]
        .contains(&event)
    );
    if let Some(r) = b.get("Reason") {
        assert!(r.is_object(), "Reason is an object: {h:?}");
    }
    if let Some(c) = b.get("Comment") {
        assert!(c.is_object() && c["content"].is_string(), "{h:?}");
    }
    for k in ["App-Name", "App-Version", "Msg-ID", "Account-ID", "Port-Request-ID", "Server-ID", "Node", "Version"] {
        if let Some(v) = b.get(k) {
            assert!(v.is_string(), "{k} is a string: {h:?}");
        }
    }
}

/// A RabbitMQ node of the test's own (Debian's server, `RABBITMQ_SERVER_BIN`), to stop and
/// start again on the same port with the same data.
pub struct OwnRabbit {
    pub port: u16,
    dist: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl OwnRabbit {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("kpr-own-rabbit-{}", crate::kazoo::hex32()));
        for sub in ["mnesia", "log", "home"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("enabled_plugins"), "[].").unwrap();
        let mut r =
            OwnRabbit { port: crate::helpers::free_port(), dist: crate::helpers::free_port(), dir, child: None };
        r.restart().await;
        r
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub async fn restart(&mut self) {
        let bin = std::env::var("RABBITMQ_SERVER_BIN")
            .expect("RABBITMQ_SERVER_BIN is set: run the tests with scripts/test.sh");
        let d = |s: &str| self.dir.join(s);
        let child = std::process::Command::new(bin)
            .env("RABBITMQ_NODENAME", format!("kpr{}@localhost", self.port))
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", d("feature_flags"))
            .env("HOME", d("home"))
            .stdout(std::fs::File::create(d("server.log")).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("RabbitMQ starts");
        self.child = Some(child);
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("RabbitMQ did not start on {}", self.port);
    }

    /// Stops it (the server script stops the node on TERM) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRabbit {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP gate in front of a port: open, it passes connections through; closed, it refuses
/// new ones and cuts those it passes.
pub struct Gate {
    pub port: u16,
    open: Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Gate {
    pub async fn new(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (o, c) = (open.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let mut cut = c.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Gate { port, open, cut }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn close(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
