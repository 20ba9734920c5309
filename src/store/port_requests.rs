//! The port request repository: requests read as CouchDB holds them now, and written under the
//! cluster rules they need (`turns`: one writer per revision). The cache only spares CouchDB
//! from sending a document that has not changed (`cache.rs`); the write queue lines up this
//! instance's changes of one request (`queue.rs`). The change itself, with everything around a
//! write, is `app::write`: the one write path.

use super::cache::DocCache;
use super::couch::{Couch, Fetched, NewAttachment, StoreError, StoreResult, ViewQuery, ViewRow, choose};
use super::dbs;
use super::queue::{Place, WriteQueue};
use super::turns::Turns;
use crate::domain::documents::fields::Slot;
use crate::domain::documents::port_request::PortRequest;
use serde_json::Value;
use std::sync::Arc;

pub struct PortRequests {
    couch: Couch,
    turns: Turns,
    cache: DocCache,
    queue: WriteQueue,
}

/// A stored document as a port request: `None` for one that is not (another `pvt_type`).
fn as_request(db_doc: Value) -> StoreResult<Option<PortRequest>> {
    let id = db_doc.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let doc = PortRequest::from_stored(db_doc)
        .map_err(|e| StoreError::Fault(format!("{}/{id} cannot be read: {e}", dbs::PORT_REQUESTS)))?;
    Ok(doc.is_port_request().then_some(doc))
}

impl PortRequests {
    /// `cache`: how many documents to keep for revalidation (0: none).
    pub fn new(couch: Couch, cache: u64) -> Self {
        let turns = Turns::new(couch.clone(), dbs::SERVICE);
        Self { couch, turns, cache: DocCache::new(cache), queue: WriteQueue::default() }
    }

    pub fn couch(&self) -> &Couch {
        &self.couch
    }

    /// A live request: CouchDB's current revision (the cached copy only when CouchDB confirms it
    /// is still current). `None` for a missing, deleted or other document.
    pub async fn load(&self, id: &str) -> StoreResult<Option<Arc<PortRequest>>> {
        let cached = self.cache.get(id);
        let known = cached.as_ref().and_then(|d| d.rev().map(str::to_owned));
        let doc = match (self.couch.get_if_changed(dbs::PORT_REQUESTS, id, known.as_deref()).await?, cached) {
            (Fetched::Unchanged, Some(cached)) => cached,
            (Fetched::Doc(doc), _) => match as_request(doc)? {
                Some(doc) => {
                    let doc = Arc::new(doc);
                    self.cache.keep(doc.clone());
                    doc
                }
                None => return Ok(None),
            },
            (Fetched::Unchanged | Fetched::Missing, _) => {
                self.cache.forget(id);
                return Ok(None);
            }
        };
        Ok((!doc.is_deleted()).then_some(doc))
    }

    /// The copy this instance read last, as it was: a guess, for reads that may go out ahead
    /// of the request's own; it never decides anything.
    pub fn guess(&self, id: &str) -> Option<Arc<PortRequest>> {
        self.cache.get(id)
    }

    /// The revision CouchDB keeps, read with every copy's say, with its `_conflicts` (deleted
    /// ones too): what a background job decides on.
    pub async fn load_settled(&self, id: &str) -> StoreResult<Option<PortRequest>> {
        match self.couch.get_settled(dbs::PORT_REQUESTS, id).await? {
            Some(doc) => as_request(doc),
            None => Ok(None),
        }
    }

    /// Every leaf of a request (a conflicted one has several).
    pub async fn leaves(&self, id: &str) -> StoreResult<Vec<Value>> {
        self.couch.leaves(dbs::PORT_REQUESTS, id).await
    }

    /// Several live requests by id (missing, deleted and other documents left out).
    pub async fn load_many(&self, ids: &[String]) -> StoreResult<Vec<PortRequest>> {
        let docs = self.couch.get_many(dbs::PORT_REQUESTS, ids).await?;
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs {
            if let Some(doc) = as_request(doc)?.filter(|d| !d.is_deleted()) {
                out.push(doc);
            }
        }
        Ok(out)
    }

    /// The rows of a view of `port_requests`, with their requests when asked for.
    pub async fn view(
        &self,
        ddoc: &str,
        view: &str,
        query: &ViewQuery,
    ) -> StoreResult<Vec<(ViewRow, Option<PortRequest>)>> {
        let rows = self.couch.view(dbs::PORT_REQUESTS, ddoc, view, query).await?;
        let mut out = Vec::with_capacity(rows.len());
        for mut row in rows {
            let doc = match row.doc.take() {
                Some(doc) => as_request(doc)?.filter(|d| !d.is_deleted()),
                None => None,
            };
            out.push((row, doc));
        }
        Ok(out)
    }

    /// How many rows of a view (with a `_count` reduce) lie between two keys.
    /// A reduced view's rows (`query.group_level` set).
    pub async fn reduce(&self, ddoc: &str, view: &str, query: &ViewQuery) -> StoreResult<Vec<ViewRow>> {
        self.couch.view(dbs::PORT_REQUESTS, ddoc, view, query).await
    }

    pub async fn view_count(&self, ddoc: &str, view: &str, start: Value, end: Value) -> StoreResult<u64> {
        self.couch.view_count(dbs::PORT_REQUESTS, ddoc, view, start, end).await
    }

    /// Waits (at most a CouchDB timeout) until the changes of request `id` this instance makes
    /// already are made.
    pub async fn enter(&self, id: &str) -> Place<'_> {
        self.queue.enter(id, self.couch.timeout()).await
    }

    /// How many requests have changes queued or under way here (for tests).
    pub fn busy(&self) -> usize {
        self.queue.busy()
    }

    /// Writes `doc` with the revision it carries, in its turn: a concurrent change is a
    /// `Conflict`, never overwritten. Sets the new revision.
    pub async fn save(&self, doc: &mut PortRequest) -> StoreResult<String> {
        let mut body = doc.to_value();
        let (id, base) = (doc.id.to_string(), doc.rev().map(str::to_owned));
        let rev = self
            .turns
            .write((dbs::PORT_REQUESTS, &id, base.as_deref()), async || {
                self.couch.save(dbs::PORT_REQUESTS, &mut body).await
            })
            .await?;
        doc.rev.set(rev.clone());
        // attachments sent inline are stored: keep their stubs, not their bytes
        for att in doc.attachments.get_mut().into_iter().flat_map(|a| a.values_mut()) {
            if let Slot::Set(b64) = att.data.take() {
                let length = b64.len() / 4 * 3 - b64.bytes().rev().take_while(|b| *b == b'=').count();
                att.stub.set(true);
                att.length.set(length as u64);
            }
        }
        self.cache.keep(Arc::new(doc.clone()));
        Ok(rev)
    }

    /// Adds or replaces an attachment on `doc` at the revision it carries, in its turn.
    /// `body` makes the bytes to send (again, should the first node be unreachable).
    pub async fn put_attachment(
        &self,
        doc: &PortRequest,
        file: &NewAttachment<'_>,
        body: &(dyn Fn() -> reqwest::Body + Sync),
    ) -> StoreResult<String> {
        let (id, rev) = (doc.id.as_str(), doc.rev().unwrap_or_default());
        self.turns
            .write((dbs::PORT_REQUESTS, id, Some(rev)), async || {
                self.couch.put_attachment((dbs::PORT_REQUESTS, id, rev), file, body).await
            })
            .await
    }

    /// Removes an attachment from `doc` at the revision it carries, in its turn (`NotFound` when
    /// it is not there).
    pub async fn delete_attachment(&self, doc: &PortRequest, name: &str) -> StoreResult<String> {
        let (id, rev) = (doc.id.as_str(), doc.rev().unwrap_or_default());
        let written = self
            .turns
            .write((dbs::PORT_REQUESTS, id, Some(rev)), async || {
                self.couch.delete_attachment(dbs::PORT_REQUESTS, id, rev, name).await
            })
            .await;
        self.cache.forget(id);
        written
    }

    /// An attachment's bytes, to stream on.
    pub async fn attachment(&self, id: &str, name: &str) -> StoreResult<reqwest::Response> {
        self.couch.attachment(dbs::PORT_REQUESTS, id, name).await
    }

    /// An attachment's content type and bytes.
    pub async fn attachment_bytes(&self, id: &str, name: &str) -> StoreResult<Option<(String, bytes::Bytes)>> {
        self.couch.get_attachment(dbs::PORT_REQUESTS, id, name).await
    }

    /// Resolves a request CouchDB holds in conflicting revisions: `merge` makes the document to
    /// keep from the winner and the losers (`None`: the winner stands as it is), saved on the
    /// winner's revision; then the losing revisions are removed. Returns how many lost.
    pub async fn resolve_conflict(
        &self,
        id: &str,
        merge: impl FnOnce(&PortRequest, &[PortRequest]) -> Option<PortRequest>,
    ) -> StoreResult<usize> {
        let leaves = self.leaves(id).await?;
        let Some((winner, losers)) = choose(&leaves) else { return Ok(0) };
        if losers.is_empty() {
            return Ok(0);
        }
        let read = |v: &Value| as_request(v.clone()).ok().flatten();
        let loser_docs: Vec<PortRequest> = leaves
            .iter()
            .filter(|l| l["_rev"].as_str().is_some_and(|r| losers.iter().any(|x| x == r)))
            .filter_map(read)
            .collect();
        if let Some(winner) = read(winner)
            && let Some(mut merged) = merge(&winner, &loser_docs)
        {
            match self.save(&mut merged).await {
                Ok(_) => {}
                // changed meanwhile: whoever changed it goes on from there
                Err(StoreError::Conflict) => return Ok(0),
                Err(e) => return Err(e),
            }
        }
        self.couch.remove_leaves(dbs::PORT_REQUESTS, id, &losers).await;
        Ok(losers.len())
    }
}
