//! Prometheus metrics (`GET /metrics`): requests by route and status, latencies, CouchDB calls,
//! deliveries (named `outbox_*` as in earlier versions, so dashboards keep working), LOA
//! renders, and the port authority's desk: requests per state and per attention rule (gauges
//! refreshed by `jobs::desk_metrics`), and the time from submission to scheduled and to
//! completed per losing carrier (the most frequent carriers by name, the rest as `other`).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::collections::HashSet;
use std::sync::{LazyLock, RwLock};
use std::time::Instant;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub couch_seconds: HistogramVec,
    pub couch_errors: IntCounterVec,
    pub couch_settled: IntCounterVec,
    pub couch_nodes_up: IntGauge,
    pub deliveries: IntCounterVec,
    pub deliveries_pending: IntGauge,
    pub deliveries_failed: IntGauge,
    pub bus_published: IntCounterVec,
    pub loa_renders: IntCounterVec,
    pub loa_render_seconds: Histogram,
    pub loa_cache_hits: IntCounter,
    pub port_requests: IntGaugeVec,
    pub attention: IntGaugeVec,
    pub to_scheduled: HistogramVec,
    pub to_completed: HistogramVec,
    /// The carriers named in the carrier label; the others are `other`.
    named_carriers: RwLock<HashSet<String>>,
}

/// How many losing carriers are named in the carrier label.
pub const NAMED_CARRIERS: usize = 10;

/// From an hour to three months.
const PORT_BUCKETS: [f64; 14] = [
    3_600.0,
    14_400.0,
    43_200.0,
    86_400.0,
    172_800.0,
    259_200.0,
    432_000.0,
    604_800.0,
    864_000.0,
    1_209_600.0,
    1_814_400.0,
    2_592_000.0,
    5_184_000.0,
    7_776_000.0,
];

const LATENCY_BUCKETS: [f64; 14] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0];

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new_custom(Some("kpr".into()), None)?;
    let requests = IntCounterVec::new(
        Opts::new("http_requests_total", "HTTP requests by route, method and status"),
        &["route", "method", "status"],
    )?;
    let request_seconds = HistogramVec::new(
        HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(LATENCY_BUCKETS.to_vec()),
        &["route", "method"],
    )?;
    let couch_seconds = HistogramVec::new(
        HistogramOpts::new("couchdb_request_duration_seconds", "CouchDB call latency by operation")
            .buckets(LATENCY_BUCKETS.to_vec()),
        &["operation"],
    )?;
    let couch_errors =
        IntCounterVec::new(Opts::new("couchdb_errors_total", "Failed CouchDB calls by kind"), &["kind"])?;
    let couch_settled = IntCounterVec::new(
        Opts::new("couchdb_settled_writes_total", "Writes only some copies confirmed, by whether they won"),
        &["result"],
    )?;
    let couch_nodes_up = IntGauge::new("couchdb_nodes_up", "CouchDB nodes answering, as last seen")?;
    let deliveries = IntCounterVec::new(
        Opts::new("outbox_deliveries_total", "Delivery attempts by channel and result"),
        &["channel", "result"],
    )?;
    let deliveries_pending = IntGauge::new("outbox_pending", "Delivery records waiting to be delivered (this queue)")?;
    let deliveries_failed = IntGauge::new("outbox_failed", "Delivery records given up on (this queue, all time)")?;
    let bus_published = IntCounterVec::new(
        Opts::new("bus_published_total", "Messages confirmed by Kazoo's bus, by event"),
        &["event"],
    )?;
    let loa_renders = IntCounterVec::new(Opts::new("loa_renders_total", "LOA PDF renderings by result"), &["result"])?;
    let loa_render_seconds = Histogram::with_opts(
        HistogramOpts::new("loa_render_duration_seconds", "wkhtmltopdf time per LOA").buckets(LATENCY_BUCKETS.to_vec()),
    )?;
    let loa_cache_hits = IntCounter::new("loa_cache_hits_total", "LOA requests served from the PDF cache")?;
    let port_requests = IntGaugeVec::new(Opts::new("port_requests", "Port requests by state"), &["state"])?;
    let attention = IntGaugeVec::new(
        Opts::new("port_requests_attention", "Open port requests each attention rule holds, across authorities"),
        &["rule"],
    )?;
    let to_scheduled = HistogramVec::new(
        HistogramOpts::new("port_submitted_to_scheduled_seconds", "From the first submission to scheduled")
            .buckets(PORT_BUCKETS.to_vec()),
        &["carrier"],
    )?;
    let to_completed = HistogramVec::new(
        HistogramOpts::new("port_submitted_to_completed_seconds", "From the first submission to completed")
            .buckets(PORT_BUCKETS.to_vec()),
        &["carrier"],
    )?;
    // series that exist from the start, so dashboards and alerts see zeros, not gaps
    for result in ["ok", "error"] {
        loa_renders.with_label_values(&[result]);
    }
    for result in ["won", "lost"] {
        couch_settled.with_label_values(&[result]);
    }
    for channel in ["email", "webhook", "carrier_push", "bus"] {
        for result in ["delivered", "skipped", "error"] {
            deliveries.with_label_values(&[channel, result]);
        }
    }
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(request_seconds.clone()))?;
    registry.register(Box::new(couch_seconds.clone()))?;
    registry.register(Box::new(couch_errors.clone()))?;
    registry.register(Box::new(couch_settled.clone()))?;
    registry.register(Box::new(couch_nodes_up.clone()))?;
    registry.register(Box::new(deliveries.clone()))?;
    registry.register(Box::new(deliveries_pending.clone()))?;
    registry.register(Box::new(deliveries_failed.clone()))?;
    registry.register(Box::new(bus_published.clone()))?;
    registry.register(Box::new(loa_renders.clone()))?;
    registry.register(Box::new(loa_render_seconds.clone()))?;
    registry.register(Box::new(loa_cache_hits.clone()))?;
    registry.register(Box::new(port_requests.clone()))?;
    registry.register(Box::new(attention.clone()))?;
    registry.register(Box::new(to_scheduled.clone()))?;
    registry.register(Box::new(to_completed.clone()))?;
    Ok(Metrics {
        registry,
        requests,
        request_seconds,
        couch_seconds,
        couch_errors,
        couch_settled,
        couch_nodes_up,
        deliveries,
        deliveries_pending,
        deliveries_failed,
        bus_published,
        loa_renders,
        loa_render_seconds,
        loa_cache_hits,
        port_requests,
        attention,
        to_scheduled,
        to_completed,
        named_carriers: RwLock::new(HashSet::new()),
    })
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| build().expect("metric definitions are valid"));

pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// The carrier label of a losing carrier: its name when it is one of the most frequent,
    /// else `other` (the label set stays bounded whatever clients type).
    pub fn carrier_label(&self, carrier: Option<&str>) -> String {
        let name = carrier.map(str::trim).filter(|c| !c.is_empty()).unwrap_or("unknown");
        match self.named_carriers.read() {
            Ok(named) if named.contains(name) => name.to_owned(),
            _ => "other".to_owned(),
        }
    }

    /// The carriers to name from now on (at most `NAMED_CARRIERS`).
    pub fn name_carriers(&self, carriers: impl IntoIterator<Item = String>) {
        if let Ok(mut named) = self.named_carriers.write() {
            *named = carriers.into_iter().take(NAMED_CARRIERS).collect();
        }
    }

    /// A request moved to scheduled or completed: the time since its first submission.
    pub fn observe_port(
        &self,
        doc: &crate::domain::documents::port_request::PortRequest,
        to: crate::domain::port_state::PortState,
    ) {
        use crate::domain::port_state::PortState;
        let histogram = match to {
            PortState::Scheduled => &self.to_scheduled,
            PortState::Completed => &self.to_completed,
            _ => return,
        };
        // stored newest first: the last one into submitted is the first submission
        let first = doc.transitions().filter(|t| t.to() == Some(PortState::Submitted)).last();
        let moved = doc.transitions().next().filter(|t| t.to() == Some(to)).and_then(|t| t.timestamp.copied());
        let (Some(submitted), Some(now)) = (first.and_then(|t| t.timestamp.copied()), moved) else {
            return;
        };
        histogram
            .with_label_values(&[self.carrier_label(doc.carrier()).as_str()])
            .observe((now - submitted).max(0) as f64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Times a CouchDB call under `operation`.
pub struct CouchTimer {
    operation: &'static str,
    started: Instant,
}

impl CouchTimer {
    pub fn start(operation: &'static str) -> Self {
        Self { operation, started: Instant::now() }
    }
}

impl Drop for CouchTimer {
    fn drop(&mut self) {
        get().couch_seconds.with_label_values(&[self.operation]).observe(self.started.elapsed().as_secs_f64());
    }
}
