//! A generic CouchDB client: the nodes of one CouchDB (or one cluster) behind a single handle
//! that spreads requests over the nodes and fails over between them, and turns every failure
//! into one of a few outcomes (`StoreError`). It knows no database of Kazoo's or the service's:
//! whoever reads or writes names the database, and asks for the write rules its documents need.
//!
//! Reads are CouchDB's own, at its default read quorum. Writes (`write.rs`) ask every copy and,
//! on a cluster, find out whether their revision won before they report success.

pub mod design;
pub mod feed;
mod freshness;
mod nodes;
mod write;

pub use write::{NewAttachment, choose};

use crate::configuration::CouchSettings;
use nodes::Nodes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("document update conflict")]
    Conflict,
    #[error("datastore unreachable: {0}")]
    Unreachable(String),
    /// The connection failed under the call (refused, reset, closed), not a timeout.
    #[error("datastore connection failed: {0}")]
    Disconnected(String),
    #[error("datastore error: {0}")]
    Fault(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A typed document: it knows its id, and takes the revision a write gave it.
pub trait Document: Serialize + DeserializeOwned {
    fn id(&self) -> &str;
    fn set_rev(&mut self, rev: String);
}

/// A typed document read back; one that does not read as its type is a fault of the data.
fn typed<T: DeserializeOwned>(db: &str, doc: Value) -> StoreResult<T> {
    let id = doc.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    serde_json::from_value(doc).map_err(|e| StoreError::Fault(format!("{db}/{id} cannot be read: {e}")))
}

/// Everything but unreserved characters is escaped, so `account/aa/bb/...` becomes
/// `account%2Faa%2Fbb%2F...` and `+1202...` becomes `%2B1202...`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');

pub fn encode(component: &str) -> String {
    utf8_percent_encode(component, COMPONENT).to_string()
}

fn classify_reqwest(e: &reqwest::Error) -> StoreError {
    crate::metrics::get().couch_errors.with_label_values(&["unreachable"]).inc();
    if e.is_timeout() || e.is_decode() {
        StoreError::Unreachable(e.to_string())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        StoreError::Disconnected(e.to_string())
    } else {
        StoreError::Fault(e.to_string())
    }
}

fn classify_status(status: StatusCode, what: String) -> StoreError {
    match status {
        StatusCode::NOT_FOUND => StoreError::NotFound,
        StatusCode::CONFLICT => StoreError::Conflict,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT | StatusCode::BAD_GATEWAY => {
            StoreError::Unreachable(what)
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            StoreError::Fault(format!("CouchDB refused the request ({status}): check the credentials"))
        }
        _ => StoreError::Fault(format!("{status}: {what}")),
    }
}

impl From<reqwest::Error> for StoreError {
    fn from(e: reqwest::Error) -> Self {
        match e.status() {
            Some(status) => classify_status(status, e.to_string()),
            None => classify_reqwest(&e),
        }
    }
}

/// Fails on anything but a 2xx, naming what was being done.
async fn success(resp: Response, what: impl FnOnce() -> String) -> StoreResult<Response> {
    if resp.status().is_success() { Ok(resp) } else { Err(classify_status(resp.status(), what())) }
}

/// How a request may be sent again on another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// A read: sent again on any failure (on another node when there is one).
    Read,
    /// A write: sent again only when it never left (the connection could not be opened),
    /// since one that may have landed would come back as a false conflict.
    Write,
}

/// One row of a view answer.
#[derive(Debug, Clone)]
pub struct ViewRow {
    pub id: Option<String>,
    pub key: Value,
    pub value: Value,
    pub doc: Option<Value>,
}

/// How current a view answer must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Freshness {
    /// Brought up to date with every write before answering (CouchDB's default).
    #[default]
    Current,
    /// The index as it stands; CouchDB brings it up to date after answering.
    AsIndexed,
}

/// Which part of a view to read. Keys are JSON, as CouchDB takes them.
#[derive(Debug, Clone, Default)]
pub struct ViewQuery {
    pub key: Option<Value>,
    pub keys: Vec<Value>,
    pub start_key: Option<Value>,
    pub start_key_doc_id: Option<String>,
    pub end_key: Option<Value>,
    pub limit: Option<u64>,
    pub skip: Option<u64>,
    pub descending: bool,
    pub include_docs: bool,
    pub freshness: Freshness,
    /// With `Freshness::Current`: how long to wait for the index to catch up before asking
    /// for the index as it stands too, and answering with whichever comes first (a view far
    /// behind, right after a bulk load, can take many seconds to bring up to date; CouchDB goes
    /// on indexing meanwhile). The view is then read as it stands until it is seen current again.
    pub wait: Option<std::time::Duration>,
    /// Reduce, grouped by the first this many elements of the key (0: one row for the range).
    pub group_level: Option<u32>,
}

impl ViewQuery {
    pub fn key(key: Value) -> Self {
        Self { key: Some(key), ..Self::default() }
    }

    pub fn range(start: Value, end: Value) -> Self {
        Self { start_key: Some(start), end_key: Some(end), ..Self::default() }
    }

    pub fn with_docs(mut self) -> Self {
        self.include_docs = true;
        self
    }

    /// Query-string parameters (JSON values, as CouchDB reads them); `keys` go in the body.
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = match self.group_level {
            None => vec![("reduce", "false".to_owned())],
            Some(0) => vec![("reduce", "true".to_owned())],
            Some(level) => vec![("reduce", "true".to_owned()), ("group_level", level.to_string())],
        };
        let mut json_param = |name: &'static str, v: &Option<Value>| {
            if let Some(v) = v {
                p.push((name, v.to_string()));
            }
        };
        json_param("key", &self.key);
        json_param("start_key", &self.start_key);
        json_param("end_key", &self.end_key);
        if let Some(id) = &self.start_key_doc_id {
            p.push(("start_key_doc_id", id.clone()));
        }
        if let Some(l) = self.limit {
            p.push(("limit", l.to_string()));
        }
        if let Some(s) = self.skip.filter(|s| *s > 0) {
            p.push(("skip", s.to_string()));
        }
        if self.descending {
            p.push(("descending", "true".into()));
        }
        if self.include_docs {
            p.push(("include_docs", "true".into()));
        }
        if self.freshness == Freshness::AsIndexed {
            p.push(("update", "lazy".into()));
        }
        p
    }
}

/// A conditional read's answer.
#[derive(Debug)]
pub enum Fetched {
    /// The revision asked about is still the current one.
    Unchanged,
    Doc(Value),
    Missing,
}

/// A handle on CouchDB: one node or a cluster's nodes. Cheap to clone (shared pools).
#[derive(Clone)]
pub struct Couch {
    nodes: Arc<Nodes>,
    /// Copies (`n`) of each database on a cluster; `None` where the server has no such notion
    /// (PouchDB Server). Learned once per database.
    copies: Arc<RwLock<HashMap<String, Option<u32>>>>,
    /// How long a request may take before it counts as failed.
    timeout: std::time::Duration,
    /// Design documents whose views are catching up (`freshness.rs`).
    behind: Arc<freshness::Behind>,
}

impl Couch {
    pub fn new(settings: &CouchSettings) -> anyhow::Result<Self> {
        Ok(Self {
            nodes: Arc::new(Nodes::new(settings)?),
            copies: Arc::default(),
            timeout: settings.timeout,
            behind: Arc::default(),
        })
    }

    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
    }

    /// `/db/id`, with `_design/` left as it is (CouchDB redirects an escaped one).
    pub fn doc_path(db: &str, id: &str) -> String {
        match id.strip_prefix("_design/") {
            Some(name) => format!("/{}/_design/{}", encode(db), encode(name)),
            None => format!("/{}/{}", encode(db), encode(id)),
        }
    }

    fn db_path(db: &str) -> String {
        format!("/{}", encode(db))
    }

    /// How many nodes answer now.
    pub fn nodes_up(&self) -> (usize, usize) {
        (self.nodes.up_count(), self.nodes.len())
    }

    /// Sends a request built by `build` (for the node it goes to), failing over between nodes
    /// as `resend` allows. Any answer from CouchDB counts as the node being up, but a 502/503/504
    /// to a read is tried on the next node first.
    pub async fn send(
        &self,
        resend: Resend,
        build: impl Fn(&couch_rs::Client) -> RequestBuilder,
    ) -> StoreResult<Response> {
        let order = self.nodes.order();
        // one node: a read is sent once more when its connection broke (a kept-alive connection
        // the server closed as it was reused), never after a timeout, which would double the wait
        let attempts = if order.len() == 1 && resend == Resend::Read { 2 } else { order.len() };
        let mut last = StoreError::Unreachable("no CouchDB node".into());
        let several = order.len() > 1;
        for k in 0..attempts {
            let node = self.nodes.get(order[k % order.len()]);
            match build(&node.client()).send().await {
                Ok(resp) => {
                    let overloaded = matches!(resp.status().as_u16(), 502..=504);
                    if overloaded && resend == Resend::Read && k + 1 < attempts {
                        node.failed(several);
                        last = classify_status(resp.status(), format!("node {}", node.shown));
                        continue;
                    }
                    node.answered(several);
                    return Ok(resp);
                }
                Err(e) => {
                    let never_left = e.is_connect();
                    node.failed(several);
                    last = classify_reqwest(&e);
                    let may_resend = match resend {
                        Resend::Write => never_left,
                        Resend::Read => order.len() > 1 || matches!(last, StoreError::Disconnected(_)),
                    };
                    if !may_resend {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    /// A read of `path` (failing over), for what has no call of its own (attachments streamed
    /// to a client, design documents).
    pub async fn get_path(&self, path: &str, query: &[(&str, &str)]) -> StoreResult<Response> {
        self.send(Resend::Read, |c| c.req(Method::GET, path, None).query(query)).await
    }

    /// `GET /`: the server's welcome document. Proves CouchDB answers.
    pub async fn server_info(&self) -> StoreResult<Value> {
        let _timer = crate::metrics::CouchTimer::start("server_info");
        let resp = success(self.get_path("/", &[]).await?, || "server info".into()).await?;
        Ok(resp.json().await?)
    }

    /// Creates the database if it is missing. Never touches an existing one.
    pub async fn ensure_db(&self, db: &str) -> StoreResult<()> {
        let _timer = crate::metrics::CouchTimer::start("ensure_db");
        let path = Self::db_path(db);
        let head = self.send(Resend::Read, |c| c.req(Method::HEAD, &path, None)).await?;
        if head.status().is_success() {
            return Ok(());
        }
        let resp = self.send(Resend::Write, |c| c.req(Method::PUT, &path, None)).await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::PRECONDITION_FAILED => Ok(()),
            s => Err(classify_status(s, format!("creating database {db}"))),
        }
    }

    /// The number of copies of `db` on a cluster (`None` without that notion, or for a
    /// database that does not exist yet).
    pub async fn copies(&self, db: &str) -> StoreResult<Option<u32>> {
        if let Some(known) = self.copies.read().ok().and_then(|m| m.get(db).copied()) {
            return Ok(known);
        }
        let resp = self.get_path(&Self::db_path(db), &[]).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let info: Value = success(resp, || format!("reading database {db}")).await?.json().await?;
        let n = info.pointer("/cluster/n").and_then(Value::as_u64).map(|n| n as u32);
        if let Ok(mut m) = self.copies.write() {
            m.insert(db.to_owned(), n);
        }
        Ok(n)
    }

    /// Reads one document; `None` when it (or its database) does not exist.
    pub async fn get(&self, db: &str, id: &str) -> StoreResult<Option<Value>> {
        match self.get_if_changed(db, id, None).await? {
            Fetched::Doc(doc) => Ok(Some(doc)),
            Fetched::Unchanged | Fetched::Missing => Ok(None),
        }
    }

    /// Reads one typed document; `None` when it does not exist.
    pub async fn get_doc<T: DeserializeOwned>(&self, db: &str, id: &str) -> StoreResult<Option<T>> {
        self.get(db, id).await?.map(|doc| typed(db, doc)).transpose()
    }

    /// Reads several typed documents by id; missing or deleted ones are skipped.
    pub async fn get_docs<T: DeserializeOwned>(&self, db: &str, ids: &[String]) -> StoreResult<Vec<T>> {
        self.get_many(db, ids).await?.into_iter().map(|doc| typed(db, doc)).collect()
    }

    /// Reads one document unless its current revision is still `known` (CouchDB answers 304
    /// and sends nothing): the caller's copy is then proven current.
    pub async fn get_if_changed(&self, db: &str, id: &str, known: Option<&str>) -> StoreResult<Fetched> {
        let _timer = crate::metrics::CouchTimer::start("get");
        let path = Self::doc_path(db, id);
        let etag = known.map(|rev| format!("\"{rev}\""));
        // CouchDB's default read quorum (r = 2 of 3 copies) is current for every write this
        // service acknowledged: a 201 is on every copy, and a settled 202 on at least two (the
        // settling read, at r = n, writes it to the copies that lack it, at w = 2, before it
        // answers), so any two copies include one that holds it, and CouchDB then waits for
        // the third and answers the newest (`write.rs`)
        let resp = self
            .send(Resend::Read, |c| {
                let req = c.req(Method::GET, &path, None);
                match &etag {
                    Some(tag) => req.header(reqwest::header::IF_NONE_MATCH, tag),
                    None => req,
                }
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_MODIFIED => Ok(Fetched::Unchanged),
            StatusCode::NOT_FOUND => Ok(Fetched::Missing),
            s if s.is_success() => Ok(Fetched::Doc(resp.json().await?)),
            s => Err(classify_status(s, format!("reading {db}/{id}"))),
        }
    }

    pub(super) async fn view_once(
        &self,
        db: &str,
        ddoc: &str,
        view: &str,
        query: &ViewQuery,
    ) -> StoreResult<Vec<ViewRow>> {
        let _timer = crate::metrics::CouchTimer::start("view");
        let path = format!("/{}/_design/{}/_view/{}", encode(db), encode(ddoc), encode(view));
        let params = query.params();
        let resp = self
            .send(Resend::Read, |c| {
                if query.keys.is_empty() {
                    c.req(Method::GET, &path, None).query(&params)
                } else {
                    c.req(Method::POST, &path, None).query(&params).json(&json!({ "keys": query.keys }))
                }
            })
            .await?;
        let body: Value = success(resp, || format!("querying {ddoc}/{view}")).await?.json().await?;
        let rows = match body.get("rows") {
            Some(Value::Array(rows)) => rows,
            _ => return Err(StoreError::Fault(format!("{ddoc}/{view} answered without rows"))),
        };
        Ok(rows
            .iter()
            .map(|r| ViewRow {
                id: r.get("id").and_then(Value::as_str).map(str::to_owned),
                key: r.get("key").cloned().unwrap_or(Value::Null),
                value: r.get("value").cloned().unwrap_or(Value::Null),
                doc: r.get("doc").filter(|d| d.is_object()).cloned(),
            })
            .collect())
    }

    /// How many rows of a view (with a `_count` reduce) lie between two keys.
    pub async fn view_count(&self, db: &str, ddoc: &str, view: &str, start: Value, end: Value) -> StoreResult<u64> {
        let _timer = crate::metrics::CouchTimer::start("view_count");
        let path = format!("/{}/_design/{}/_view/{}", encode(db), encode(ddoc), encode(view));
        let body = json!({ "start_key": start, "end_key": end, "reduce": true });
        let resp = self.send(Resend::Read, |c| c.req(Method::POST, &path, None).json(&body)).await?;
        let body: Value = success(resp, || format!("counting {view}")).await?.json().await?;
        Ok(body["rows"].get(0).and_then(|r| r["value"].as_u64()).unwrap_or(0))
    }

    /// Reads several documents by id at once; missing or deleted ones are skipped.
    pub async fn get_many(&self, db: &str, ids: &[String]) -> StoreResult<Vec<Value>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // one or two documents cost CouchDB less as plain reads than as an `_all_docs` query
        if ids.len() <= 2 {
            let reads = futures_util::future::try_join_all(ids.iter().map(|id| self.get(db, id))).await?;
            return Ok(reads.into_iter().flatten().collect());
        }
        let _timer = crate::metrics::CouchTimer::start("get_many");
        let path = format!("/{}/_all_docs", encode(db));
        let keys = json!({ "keys": ids });
        let resp = self
            .send(Resend::Read, |c| c.req(Method::POST, &path, None).query(&[("include_docs", "true")]).json(&keys))
            .await?;
        Self::docs_of(resp, db).await
    }

    /// Every document of a database (at most `limit`); a missing database has none.
    pub async fn all_docs(&self, db: &str, limit: u64) -> StoreResult<Vec<Value>> {
        let _timer = crate::metrics::CouchTimer::start("all_docs");
        let path = format!("/{}/_all_docs", encode(db));
        let limit = limit.to_string();
        let resp = self.get_path(&path, &[("include_docs", "true"), ("limit", limit.as_str())]).await?;
        Self::docs_of(resp, db).await
    }

    /// The documents of an `_all_docs` answer (missing or deleted ones left out).
    async fn docs_of(resp: Response, db: &str) -> StoreResult<Vec<Value>> {
        match resp.status() {
            StatusCode::NOT_FOUND => return Ok(Vec::new()),
            s if !s.is_success() => return Err(classify_status(s, format!("reading {db}"))),
            _ => {}
        }
        let body: Value = resp.json().await?;
        Ok(body["rows"]
            .as_array()
            .map(|rows| rows.iter().filter_map(|r| r.get("doc").filter(|d| d.is_object()).cloned()).collect())
            .unwrap_or_default())
    }

    /// Reads an attachment's bytes and content type.
    pub async fn get_attachment(&self, db: &str, id: &str, name: &str) -> StoreResult<Option<(String, bytes::Bytes)>> {
        let _timer = crate::metrics::CouchTimer::start("get_attachment");
        let resp = self.attachment(db, id, name).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if !s.is_success() => Err(classify_status(s, format!("reading attachment {name}"))),
            _ => {
                let ct = resp
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                Ok(Some((ct, resp.bytes().await?)))
            }
        }
    }

    /// The response of an attachment GET, to stream on.
    pub async fn attachment(&self, db: &str, id: &str, name: &str) -> StoreResult<Response> {
        let path = format!("{}/{}", Self::doc_path(db, id), encode(name));
        self.get_path(&path, &[]).await
    }
}
