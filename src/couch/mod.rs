//! The CouchDB edge: a thin layer over couch_rs that speaks Kazoo's database layout and
//! turns every failure into one of four outcomes the HTTP layer knows how to answer.

pub mod design;

use crate::configuration::CouchSettings;
use couch_rs::error::CouchError;
use couch_rs::types::query::QueryParams;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::error::Error as _;

/// Database names as Kazoo uses them.
pub mod dbs {
    pub const PORT_REQUESTS: &str = "port_requests";
    pub const ACCOUNTS: &str = "accounts";
    pub const SYSTEM_CONFIG: &str = "system_config";
    pub const SYSTEM_AUTH: &str = "system_auth";
    /// Our own database (outbox, LOA cache, ...): Kazoo never touches it.
    pub const SERVICE: &str = "kazoo_port_requests";
}

#[derive(Debug, thiserror::Error)]
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

fn classify(e: CouchError) -> StoreError {
    if let Some(re) = e.source().and_then(|s| s.downcast_ref::<reqwest::Error>())
        && re.status().is_none()
    {
        return classify_reqwest(re);
    }
    match e.status() {
        Some(status) => classify_status(status, e.to_string()),
        None => StoreError::Fault(e.to_string()),
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

/// Runs an idempotent read once more when the connection failed under it (a kept-alive
/// connection the server closed just as it was reused). Only reads: a write may have landed
/// before its connection broke, and sent again it would be a false conflict.
async fn read<T, F: Future<Output = StoreResult<T>>>(call: impl Fn() -> F) -> StoreResult<T> {
    match call().await {
        Err(StoreError::Disconnected(_)) => call().await,
        other => other,
    }
}

/// What an attachment is called and holds.
#[derive(Debug, Clone, Copy)]
pub struct NewAttachment<'a> {
    pub name: &'a str,
    pub content_type: &'a str,
    pub length: usize,
}

/// One row of a view answer.
#[derive(Debug, Clone)]
pub struct ViewRow {
    pub id: Option<String>,
    pub key: Value,
    pub value: Value,
    pub doc: Option<Value>,
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

    fn params(&self) -> QueryParams<Value> {
        QueryParams {
            key: self.key.clone(),
            keys: self.keys.clone(),
            start_key: self.start_key.clone(),
            start_key_doc_id: self.start_key_doc_id.clone(),
            end_key: self.end_key.clone(),
            limit: self.limit,
            skip: self.skip.filter(|s| *s > 0),
            descending: self.descending.then_some(true),
            include_docs: self.include_docs.then_some(true),
            reduce: Some(false),
            ..QueryParams::default()
        }
    }
}

/// A handle on the CouchDB server. Cheap to clone (one shared connection pool).
#[derive(Clone)]
pub struct Couch {
    client: couch_rs::Client,
}

impl Couch {
    pub fn new(settings: &CouchSettings) -> anyhow::Result<Self> {
        let client = couch_rs::Client::new_with_timeout(
            settings.url.as_str(),
            settings.username.as_deref(),
            settings.password.as_ref().map(|p| p.expose()),
            Some(settings.timeout.as_secs()),
        )
        .map_err(|e| anyhow::anyhow!("cannot build the CouchDB client: {e}"))?;
        Ok(Self { client })
    }

    fn database(&self, db: &str) -> couch_rs::database::Database {
        couch_rs::database::Database::new(encode(db), self.client.clone())
    }

    /// A raw request for what couch_rs has no call for (attachments, `_all_docs` by keys).
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.req(method, path, None)
    }

    pub fn doc_path(db: &str, id: &str) -> String {
        format!("/{}/{}", encode(db), encode(id))
    }

    /// `GET /`: the server's welcome document. Proves CouchDB answers.
    pub async fn server_info(&self) -> StoreResult<Value> {
        let _timer = crate::metrics::CouchTimer::start("server_info");
        read(move || async move {
            let resp = self.request(Method::GET, "/").send().await?;
            if !resp.status().is_success() {
                return Err(classify_status(resp.status(), "server info".into()));
            }
            Ok(resp.json().await?)
        })
        .await
    }

    /// Creates the database if it is missing. Never touches an existing one.
    pub async fn ensure_db(&self, db: &str) -> StoreResult<()> {
        let _timer = crate::metrics::CouchTimer::start("ensure_db");
        let path = format!("/{}", encode(db));
        let head = self.request(Method::HEAD, &path).send().await?;
        if head.status().is_success() {
            return Ok(());
        }
        let resp = self.request(Method::PUT, &path).send().await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::PRECONDITION_FAILED => Ok(()),
            s => Err(classify_status(s, format!("creating database {db}"))),
        }
    }

    /// Reads one document; `None` when it (or its database) does not exist.
    pub async fn get(&self, db: &str, id: &str) -> StoreResult<Option<Value>> {
        let _timer = crate::metrics::CouchTimer::start("get");
        read(move || async move {
            match self.database(db).get_raw(id).await {
                Ok(doc) => Ok(Some(doc)),
                Err(e) => match classify(e) {
                    StoreError::NotFound => Ok(None),
                    other => Err(other),
                },
            }
        })
        .await
    }

    /// Writes a document that carries its `_id` (and `_rev` unless new). A stale or missing
    /// `_rev` gives `Conflict`: nothing is ever overwritten blindly. Sets the new `_rev`.
    pub async fn save(&self, db: &str, doc: &mut Value) -> StoreResult<String> {
        let _timer = crate::metrics::CouchTimer::start("save");
        if doc.get("_id").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(StoreError::Fault("refusing to save a document without _id".into()));
        }
        self.database(db).save(doc).await.map(|d| d.rev).map_err(classify)
    }

    /// Saves several documents in one request; returns per-document results in order.
    pub async fn bulk_save(&self, db: &str, docs: &[Value]) -> StoreResult<Vec<Result<String, StoreError>>> {
        let _timer = crate::metrics::CouchTimer::start("bulk_save");
        let path = format!("/{}/_bulk_docs", encode(db));
        let resp = self.request(Method::POST, &path).json(&json!({ "docs": docs })).send().await?;
        if !resp.status().is_success() {
            return Err(classify_status(resp.status(), format!("bulk save to {db}")));
        }
        let rows: Vec<Value> = resp.json().await?;
        Ok(rows
            .into_iter()
            .map(|r| match (r.get("rev").and_then(Value::as_str), r.get("error").and_then(Value::as_str)) {
                (Some(rev), None) => Ok(rev.to_owned()),
                (_, Some("conflict")) => Err(StoreError::Conflict),
                (_, err) => Err(StoreError::Fault(err.unwrap_or("unknown").to_owned())),
            })
            .collect())
    }

    /// Reads the rows of a design-doc view.
    pub async fn view(&self, db: &str, ddoc: &str, view: &str, query: &ViewQuery) -> StoreResult<Vec<ViewRow>> {
        let _timer = crate::metrics::CouchTimer::start("view");
        let result = read(move || async move {
            self.database(db).query_raw(ddoc, view, Some(query.params())).await.map_err(classify)
        })
        .await?;
        Ok(result.rows.into_iter().map(|r| ViewRow { id: r.id, key: r.key, value: r.value, doc: r.doc }).collect())
    }

    /// How many rows of a view (with a `_count` reduce) lie between two keys.
    pub async fn view_count(&self, db: &str, ddoc: &str, view: &str, start: Value, end: Value) -> StoreResult<u64> {
        let _timer = crate::metrics::CouchTimer::start("view_count");
        let path = format!("/{}/_design/{}/_view/{}", encode(db), encode(ddoc), encode(view));
        let body = &json!({ "start_key": start, "end_key": end, "reduce": true });
        let path = &path;
        read(move || async move {
            let resp = self.request(Method::POST, path).json(body).send().await?;
            if !resp.status().is_success() {
                return Err(classify_status(resp.status(), format!("counting {view}")));
            }
            let body: Value = resp.json().await?;
            Ok(body["rows"].get(0).and_then(|r| r["value"].as_u64()).unwrap_or(0))
        })
        .await
    }

    /// Reads several documents by id at once; missing or deleted ones are skipped.
    pub async fn get_many(&self, db: &str, ids: &[String]) -> StoreResult<Vec<Value>> {
        let _timer = crate::metrics::CouchTimer::start("get_many");
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let path = format!("/{}/_all_docs", encode(db));
        let (keys, path) = (&json!({ "keys": ids }), &path);
        read(move || async move {
            let req = self.request(Method::POST, path).query(&[("include_docs", "true")]).json(keys);
            Self::docs_of(req, db).await
        })
        .await
    }

    /// Every document of a database (at most `limit`); a missing database has none.
    pub async fn all_docs(&self, db: &str, limit: u64) -> StoreResult<Vec<Value>> {
        let _timer = crate::metrics::CouchTimer::start("all_docs");
        let path = format!("/{}/_all_docs", encode(db));
        let (limit, path) = (&limit.to_string(), &path);
        read(move || async move {
            let req = self.request(Method::GET, path).query(&[("include_docs", "true"), ("limit", limit.as_str())]);
            Self::docs_of(req, db).await
        })
        .await
    }

    /// The documents of an `_all_docs` answer (missing or deleted ones left out).
    async fn docs_of(req: reqwest::RequestBuilder, db: &str) -> StoreResult<Vec<Value>> {
        let resp = req.send().await?;
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
        let path = format!("{}/{}", Self::doc_path(db, id), encode(name));
        let path = &path;
        read(move || async move { self.attachment_once(path, name).await }).await
    }

    async fn attachment_once(&self, path: &str, name: &str) -> StoreResult<Option<(String, bytes::Bytes)>> {
        let resp = self.request(Method::GET, path).send().await?;
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

    /// Adds or replaces an attachment on a document at revision `rev`; returns the new rev.
    pub async fn put_attachment(
        &self,
        (db, id, rev): (&str, &str, &str),
        file: &NewAttachment<'_>,
        body: impl Into<reqwest::Body>,
    ) -> StoreResult<String> {
        let NewAttachment { name, content_type, length } = *file;
        let _timer = crate::metrics::CouchTimer::start("put_attachment");
        let path = format!("{}/{}", Self::doc_path(db, id), encode(name));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            content_type.parse().map_err(|_| StoreError::Fault("bad content type".into()))?,
        );
        // a streamed body needs its length announced: CouchDB refuses chunked attachments
        headers.insert(reqwest::header::CONTENT_LENGTH, length.into());
        let resp = self.request(Method::PUT, &path).query(&[("rev", rev)]).headers(headers).body(body).send().await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(classify_status(status, format!("writing attachment {name}")));
        }
        let body: Value = resp.json().await?;
        body.get("rev")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Fault("attachment saved without a rev".into()))
    }
}
