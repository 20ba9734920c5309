//! Kazoo's AMQP bus (`AMQP_URL`): publishing on exchange `notifications` with publisher
//! confirms, and, when teletype mails, hearing its answers on a queue of this instance's own
//! bound to `targeted`. One connection, made when first needed and again after a failure, on
//! the next broker of the list; nothing here waits on the broker for the API.
//!
//! Exchanges are declared with Kazoo's flags (not durable, not auto-deleted): RabbitMQ refuses
//! a declaration that differs from the one already there.

use crate::configuration::BusSettings;
use crate::domain::bus::{EXCHANGE, TARGETED, Update, read_update};
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};

/// How long connecting, or one publication's confirmation, may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// After the brokers could not be reached, publications fail at once for this long instead of
/// each waiting for a connection of its own (a broker that drops packets would otherwise hold
/// every sending slot, and the mails and webhooks behind them).
const RESPITE: Duration = Duration::from_secs(2);

pub struct Bus {
    settings: BusSettings,
    /// Teletype's answers are wanted (it mails the port events).
    replies_wanted: bool,
    live: Mutex<Option<Live>>,
    /// The broker the next connection tries first.
    next: AtomicUsize,
    replies: mpsc::UnboundedSender<Update>,
    /// The connection's name on the broker.
    name: String,
    /// Until when the brokers are taken as unreachable, and why.
    unreachable: std::sync::Mutex<Option<(tokio::time::Instant, String)>>,
}

#[derive(Clone)]
struct Live {
    connection: std::sync::Arc<Connection>,
    channel: Channel,
    /// Where teletype answers (empty when no answer is wanted).
    reply_queue: String,
}

fn declare_options() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { durable: false, auto_delete: false, ..ExchangeDeclareOptions::default() }
}

impl Bus {
    /// The bus, and where teletype's answers arrive.
    pub fn new(settings: BusSettings, replies_wanted: bool, node: &str) -> (Self, mpsc::UnboundedReceiver<Update>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let bus = Self {
            settings,
            replies_wanted,
            live: Mutex::new(None),
            next: AtomicUsize::new(0),
            replies: tx,
            name: format!("kazoo_port_requests {node}"),
            unreachable: std::sync::Mutex::new(None),
        };
        (bus, rx)
    }

    /// The channel to publish on, connecting first if need be.
    async fn live(&self) -> Result<Live, String> {
        self.resting()?;
        let mut live = self.live.lock().await;
        if let Some(l) = live.as_ref().filter(|l| l.connection.status().connected() && l.channel.status().connected()) {
            return Ok(l.clone());
        }
        // another publication may have just found the brokers away
        self.resting()?;
        *live = None;
        let mut errors = Vec::new();
        let count = self.settings.brokers.len();
        let first = self.next.load(Ordering::Relaxed);
        for i in 0..count {
            let broker = &self.settings.brokers[(first + i) % count];
            match tokio::time::timeout(TIMEOUT, self.connect(broker.url.expose())).await {
                Ok(Ok(l)) => {
                    self.next.store((first + i) % count, Ordering::Relaxed);
                    tracing::info!(broker = %broker.display, "connected to Kazoo's bus");
                    *live = Some(l.clone());
                    return Ok(l);
                }
                Ok(Err(e)) => errors.push(format!("{}: {e}", broker.display)),
                Err(_) => errors.push(format!("{}: no answer within {} s", broker.display, TIMEOUT.as_secs())),
            }
        }
        self.next.store((first + 1) % count.max(1), Ordering::Relaxed);
        let why = format!("Kazoo's bus is unreachable ({})", errors.join("; "));
        if let Ok(mut u) = self.unreachable.lock() {
            *u = Some((tokio::time::Instant::now() + RESPITE, why.clone()));
        }
        Err(why)
    }

    /// Fails at once while the brokers are taken as unreachable.
    fn resting(&self) -> Result<(), String> {
        match self.unreachable.lock().ok().and_then(|u| u.clone()) {
            Some((until, why)) if tokio::time::Instant::now() < until => Err(why),
            _ => Ok(()),
        }
    }

    async fn connect(&self, url: &str) -> Result<Live, lapin::Error> {
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio)
            .with_connection_name(LongString::from(self.name.clone()));
        let connection = Connection::connect(url, properties).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channel.exchange_declare(EXCHANGE, ExchangeKind::Topic, declare_options(), FieldTable::default()).await?;
        let mut reply_queue = String::new();
        if self.replies_wanted {
            channel.exchange_declare(TARGETED, ExchangeKind::Direct, declare_options(), FieldTable::default()).await?;
            let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
            let queue = channel.queue_declare("", options, FieldTable::default()).await?;
            reply_queue = queue.name().to_string();
            channel
                .queue_bind(&reply_queue, TARGETED, &reply_queue, QueueBindOptions::default(), FieldTable::default())
                .await?;
            let listen = connection.create_channel().await?;
            let options = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
            let mut consumer = listen.basic_consume(&reply_queue, "", options, FieldTable::default()).await?;
            let replies = self.replies.clone();
            tokio::spawn(async move {
                while let Some(Ok(delivery)) = consumer.next().await {
                    if let Some(update) = read_update(&delivery.data) {
                        let _ = replies.send(update);
                    }
                }
            });
        }
        Ok(Live { connection: std::sync::Arc::new(connection), channel, reply_queue })
    }

    /// Publishes the message `body` makes (given the queue teletype answers to) under
    /// `routing_key`, and waits for the broker to confirm it.
    pub async fn publish(&self, routing_key: &str, body: impl FnOnce(&str) -> Vec<u8>) -> Result<(), String> {
        let live = self.live().await?;
        let payload = body(&live.reply_queue);
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_timestamp(crate::domain::time::now_unix().max(0) as u64);
        let sent = async {
            live.channel
                .basic_publish(EXCHANGE, routing_key, BasicPublishOptions::default(), &payload, properties)
                .await?
                .await
        };
        let outcome = match tokio::time::timeout(TIMEOUT, sent).await {
            Ok(Ok(Confirmation::Ack(_) | Confirmation::NotRequested)) => return Ok(()),
            Ok(Ok(Confirmation::Nack(_))) => "the broker refused the message".to_owned(),
            Ok(Err(e)) => format!("publishing: {e}"),
            Err(_) => format!("no confirmation within {} s", TIMEOUT.as_secs()),
        };
        // start again on a fresh connection next time
        let mut current = self.live.lock().await;
        if current.as_ref().is_some_and(|l| std::sync::Arc::ptr_eq(&l.connection, &live.connection)) {
            *current = None;
            let _ = live.connection.close(0, "starting again").await;
        }
        Err(outcome)
    }

    /// Is a connection up now (for the health of the service)?
    pub async fn is_connected(&self) -> bool {
        self.live.lock().await.as_ref().is_some_and(|l| l.connection.status().connected())
    }
}
