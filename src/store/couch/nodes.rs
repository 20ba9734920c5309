//! The CouchDB nodes the service knows and how healthy each looks from its answers. A node that
//! fails (refused connection, timeout, 5xx) is set aside for a short, growing while; the next
//! answer it gives brings it back. Requests go round-robin over the healthy ones.

use crate::configuration::CouchSettings;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    START.elapsed().as_millis() as u64
}

/// How long a failing node is set aside: 250 ms, doubling with each failure in a row, at most 10 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << failures.min(6)).min(10_000))
}

/// How a node's HTTP client is made (once per thread that talks to it).
struct Access {
    url: String,
    username: Option<String>,
    password: Option<String>,
    timeout_secs: u64,
}

static NEXT_NODE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Each thread's own client per node. A pooled connection is driven by a task of the
    /// runtime that opened it; shared between the HTTP workers (each its own runtime), every
    /// CouchDB call could wake another thread there and back. Per thread, it never does.
    static CLIENTS: RefCell<HashMap<u64, couch_rs::Client>> = RefCell::new(HashMap::new());
}

pub struct Node {
    key: u64,
    access: Access,
    /// The URL without credentials.
    pub shown: String,
    down_until: AtomicU64,
    failures: AtomicU32,
}

impl Node {
    fn new(access: Access, shown: String) -> anyhow::Result<Self> {
        let node = Node {
            key: NEXT_NODE.fetch_add(1, Ordering::Relaxed),
            shown,
            access,
            down_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
        };
        node.make_client()?; // a bad URL is refused at start, not at the first call
        Ok(node)
    }

    fn make_client(&self) -> anyhow::Result<couch_rs::Client> {
        let a = &self.access;
        couch_rs::Client::new_with_timeout(&a.url, a.username.as_deref(), a.password.as_deref(), Some(a.timeout_secs))
            .map_err(|e| anyhow::anyhow!("cannot build the CouchDB client for {}: {e}", self.shown))
    }

    /// This thread's client for the node.
    pub fn client(&self) -> couch_rs::Client {
        CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            if let Some(c) = clients.get(&self.key) {
                return c.clone();
            }
            // checked at start (`new`), so building it again cannot fail
            let c = self.make_client().expect("the CouchDB client was built once already");
            clients.insert(self.key, c.clone());
            c
        })
    }

    pub fn is_up(&self) -> bool {
        self.down_until.load(Ordering::Relaxed) <= now_ms()
    }

    /// `among_several`: say so in the log (with one node, the caller's error says it all).
    pub fn failed(&self, among_several: bool) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed);
        let was_up = self.is_up();
        self.down_until.store(now_ms() + backoff(failures).as_millis() as u64, Ordering::Relaxed);
        if was_up && among_several {
            tracing::warn!(node = %self.shown, "CouchDB node failing; set aside for now");
        }
    }

    pub fn answered(&self, among_several: bool) {
        if self.failures.swap(0, Ordering::Relaxed) > 0 {
            self.down_until.store(0, Ordering::Relaxed);
            if among_several {
                tracing::info!(node = %self.shown, "CouchDB node answers again");
            }
        }
    }
}

pub struct Nodes {
    list: Vec<Node>,
    next: AtomicUsize,
}

impl Nodes {
    pub fn new(settings: &CouchSettings) -> anyhow::Result<Self> {
        let list = settings
            .nodes
            .iter()
            .map(|n| {
                let access = Access {
                    url: n.url.to_string(),
                    username: n.username.clone(),
                    password: n.password.as_ref().map(|p| p.expose().to_owned()),
                    timeout_secs: settings.timeout.as_secs(),
                };
                Node::new(access, n.display_url())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!list.is_empty(), "no CouchDB node configured");
        Ok(Self { list, next: AtomicUsize::new(0) })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn get(&self, i: usize) -> &Node {
        &self.list[i]
    }

    /// The order to try the nodes in for one request: the healthy ones round-robin, then the
    /// ones set aside, soonest back first (when every node is down, each is still tried).
    pub fn order(&self) -> Vec<usize> {
        let n = self.list.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let (mut up, mut down): (Vec<usize>, Vec<usize>) =
            (0..n).map(|k| (start + k) % n).partition(|i| self.list[*i].is_up());
        down.sort_by_key(|i| self.list[*i].down_until.load(Ordering::Relaxed));
        up.extend(down);
        up
    }

    /// How many nodes answer now, for `/healthz` and the metrics.
    pub fn up_count(&self) -> usize {
        self.list.iter().filter(|n| n.is_up()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Nodes {
        let raw = (0..n).map(|i| format!("http://127.0.0.1:{}", 1000 + i)).collect::<Vec<_>>().join(",");
        Nodes::new(&CouchSettings::parse(&raw, Duration::from_secs(1)).unwrap()).unwrap()
    }

    #[test]
    fn healthy_nodes_take_turns_and_failed_ones_go_last() {
        let ns = nodes(3);
        let firsts: Vec<usize> = (0..3).map(|_| ns.order()[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2]);
        ns.get(1).failed(true);
        for _ in 0..6 {
            let order = ns.order();
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], 1, "the failing node is tried last: {order:?}");
        }
        ns.get(1).answered(true);
        assert!(ns.get(1).is_up());
        assert_eq!(ns.up_count(), 3);
    }

    #[test]
    fn backoff_grows_and_stops() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(1000));
        assert_eq!(backoff(30), Duration::from_secs(10));
    }
}
