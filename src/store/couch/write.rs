//! Writes that know whether they won.
//!
//! On a cluster two updates of one revision sent through different nodes can both be accepted
//! by some copies, and CouchDB later keeps one of them (the same everywhere) and lists the other
//! in `_conflicts`; even a 201 at the default quorum can end up on the losing branch. So every
//! write asks all copies (`w` = the database's `n`):
//! - 201: every copy took this revision, so a rival update of the same base was refused
//!   everywhere: it won.
//! - 409: no copy took it: it lost, and left nothing behind.
//! - 202: some copies took it. Every copy is then read (`r` = `n`), which makes the copies
//!   exchange what they hold before the answer, and read once more, which says which revision
//!   CouchDB keeps. The write won when its revision is in the winner's history. A loser removes
//!   its own revision; a winner removes the revisions that lost to it. Either way no conflict
//!   is left behind.
//!
//! A revision is a hash of the content, so two writers sending the very same document get
//! the same revision and both "win". A document whose creation decides who goes ahead (a turn,
//! a claim, an Idempotency-Key's record, a delivery's lease) therefore carries a random
//! `holder` or `lease` of its writer (measured: one key made a comment twice when two
//! instances created its record in the same millisecond).
//!
//! A write whose settling fails (a copy not answering in time) is reported failed and settled
//! again in the background, so its revision does not stay beside the winner.
//!
//! On a single node (`n` = 1) every write is decided at once. PouchDB Server (no copies, and
//! no cluster notion) can accept two creations of one new id sent at the same moment, so there
//! every write is settled as a 202 is, with one read.

use super::{Couch, Document, Resend, StoreError, StoreResult, classify_status, encode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};

/// What an attachment is called and holds.
#[derive(Debug, Clone, Copy)]
pub struct NewAttachment<'a> {
    pub name: &'a str,
    pub content_type: &'a str,
    pub length: usize,
}

/// The revisions in a document's history, newest first (`_revisions`, from `revs=true`).
fn history(doc: &Value) -> Vec<String> {
    let start = doc.pointer("/_revisions/start").and_then(Value::as_u64).unwrap_or(0);
    let ids = doc.pointer("/_revisions/ids").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out: Vec<String> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| Some(format!("{}-{}", start.checked_sub(i as u64)?, id.as_str()?)))
        .collect();
    if out.is_empty()
        && let Some(rev) = doc.get("_rev").and_then(Value::as_str)
    {
        out.push(rev.to_owned());
    }
    out
}

/// Each document's row of a `_bulk_docs` answer, matched by id: PouchDB Server does not always
/// answer in the order the documents were sent (measured: two delivery records of one bulk save
/// got each other's revisions, so their holders' next writes failed and both were sent again
/// when their leases ran out).
fn in_request_order(docs: &[Value], rows: Vec<Value>) -> Vec<Option<Value>> {
    let mut by_id: HashMap<String, VecDeque<Value>> = HashMap::new();
    for row in rows {
        let id = row.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        by_id.entry(id).or_default().push_back(row);
    }
    docs.iter()
        .map(|doc| {
            let id = doc.get("_id").and_then(Value::as_str).unwrap_or_default();
            by_id.get_mut(id).and_then(VecDeque::pop_front)
        })
        .collect()
}

fn rev_of(doc: &Value) -> String {
    doc.get("_rev").and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn is_deleted(doc: &Value) -> bool {
    doc.get("_deleted") == Some(&Value::Bool(true))
}

/// CouchDB's choice among leaves: not deleted first, then the longer history, then the
/// greater revision id (its hex spelling sorts as the bytes do).
fn winner_order(doc: &Value) -> (bool, u64, String) {
    let rev = rev_of(doc);
    let (pos, hash) = rev.split_once('-').unwrap_or(("0", ""));
    (!is_deleted(doc), pos.parse().unwrap_or(0), hash.to_owned())
}

/// The winner among `leaves` and the live leaves that lost to it.
pub fn choose(leaves: &[Value]) -> Option<(&Value, Vec<String>)> {
    let winner = leaves.iter().max_by_key(|l| winner_order(l))?;
    let losers = leaves.iter().filter(|l| !is_deleted(l) && rev_of(l) != rev_of(winner)).map(rev_of).collect();
    Some((winner, losers))
}

impl Couch {
    /// The `w` (and `r`) that reaches every copy of `db`, where the server has copies.
    async fn all_copies(&self, db: &str) -> StoreResult<Option<String>> {
        Ok(self.copies(db).await?.map(|n| n.to_string()))
    }

    /// Is a write to `db` undecided even when answered 201 (PouchDB Server)?
    async fn unsure(&self, db: &str) -> StoreResult<bool> {
        Ok(self.copies(db).await?.is_none())
    }

    /// Writes a document that carries its `_id` (and `_rev` unless new). A stale or missing
    /// `_rev`, or a revision that lost on a cluster, gives `Conflict`: nothing is ever
    /// overwritten blindly. Sets the new `_rev`.
    pub async fn save(&self, db: &str, doc: &mut Value) -> StoreResult<String> {
        let _timer = crate::metrics::CouchTimer::start("save");
        let Some(id) = doc.get("_id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned) else {
            return Err(StoreError::Fault("refusing to save a document without _id".into()));
        };
        let rev = self.put_decided(db, &id, doc).await?;
        doc["_rev"] = json!(rev);
        Ok(rev)
    }

    /// `save` for a typed document.
    pub async fn save_doc<T: Document>(&self, db: &str, doc: &mut T) -> StoreResult<String> {
        let _timer = crate::metrics::CouchTimer::start("save");
        let body = serde_json::to_value(&*doc).map_err(|e| StoreError::Fault(e.to_string()))?;
        let rev = self.put_decided(db, doc.id(), &body).await?;
        doc.set_rev(rev.clone());
        Ok(rev)
    }

    /// `bulk_save` for typed documents.
    pub async fn bulk_save_docs<T: Document>(
        &self,
        db: &str,
        docs: &[T],
    ) -> StoreResult<Vec<Result<String, StoreError>>> {
        let bodies = docs.iter().map(serde_json::to_value).collect::<Result<Vec<_>, _>>();
        self.bulk_save(db, &bodies.map_err(|e| StoreError::Fault(e.to_string()))?).await
    }

    /// `PUT`s `doc` (with every copy's say) and finds out whether it won.
    pub async fn put_decided(&self, db: &str, id: &str, doc: &Value) -> StoreResult<String> {
        let path = Self::doc_path(db, id);
        let w = self.all_copies(db).await?;
        let resp = self
            .send(Resend::Write, |c| {
                let r = c.req(Method::PUT, &path, None).json(doc);
                match &w {
                    Some(w) => r.query(&[("w", w)]),
                    None => r,
                }
            })
            .await?;
        self.decided(db, id, resp).await
    }

    /// Creates a document whose id nobody else writes (a random one): no race to lose, so the
    /// write waits only for CouchDB's default quorum. Sets the `_rev`.
    pub async fn create_unique(&self, db: &str, doc: &mut Value) -> StoreResult<String> {
        let _timer = crate::metrics::CouchTimer::start("save");
        let Some(id) = doc.get("_id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned) else {
            return Err(StoreError::Fault("refusing to save a document without _id".into()));
        };
        let path = Self::doc_path(db, &id);
        let body = &*doc;
        let resp = self.send(Resend::Write, |c| c.req(Method::PUT, &path, None).json(body)).await?;
        if !resp.status().is_success() {
            return Err(classify_status(resp.status(), format!("writing {db}/{id}")));
        }
        let answer: Value = resp.json().await?;
        let rev = answer["rev"].as_str().unwrap_or_default().to_owned();
        doc["_rev"] = json!(rev);
        Ok(rev)
    }

    /// `create_unique` for a typed document.
    pub async fn create_unique_doc<T: Document>(&self, db: &str, doc: &mut T) -> StoreResult<String> {
        let mut body = serde_json::to_value(&*doc).map_err(|e| StoreError::Fault(e.to_string()))?;
        let rev = self.create_unique(db, &mut body).await?;
        doc.set_rev(rev.clone());
        Ok(rev)
    }

    /// The revision of a single-document write's answer, once it is known to have won.
    async fn decided(&self, db: &str, id: &str, resp: reqwest::Response) -> StoreResult<String> {
        let status = resp.status();
        if !status.is_success() {
            return Err(classify_status(status, format!("writing {db}/{id}")));
        }
        let body: Value = resp.json().await?;
        let rev = body
            .get("rev")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Fault(format!("{db}/{id} written without a rev")))?;
        tracing::debug!(db, id, status = status.as_u16(), rev, "written");
        if (status == StatusCode::ACCEPTED || self.unsure(db).await?) && !self.settle_or_later(db, id, &rev).await? {
            return Err(StoreError::Conflict);
        }
        Ok(rev)
    }

    /// Settles a write; when settling cannot be done now (a copy not answering in time), the
    /// write's outcome is unknown to the caller, who counts it as failed, and its revision may
    /// be a leaf on some copies: it is settled again in the background until it can be, so the
    /// loser of the two is removed and no conflict is left behind.
    async fn settle_or_later(&self, db: &str, id: &str, rev: &str) -> StoreResult<bool> {
        match self.settle(db, id, rev).await {
            Ok(won) => Ok(won),
            Err(e) => {
                let (couch, db, id, rev) = (self.clone(), db.to_owned(), id.to_owned(), rev.to_owned());
                tokio::spawn(async move {
                    let mut wait = std::time::Duration::from_millis(500);
                    for _ in 0..10 {
                        tokio::time::sleep(wait).await;
                        match couch.settle(&db, &id, &rev).await {
                            Ok(_) => return,
                            Err(e) => tracing::debug!(db, id, rev, error = %e, "settling again later"),
                        }
                        wait = (wait * 2).min(std::time::Duration::from_secs(30));
                    }
                    tracing::warn!(db, id, rev, "a write could not be settled: it may be left in conflict");
                });
                Err(e)
            }
        }
    }

    /// Saves several documents in one request; returns per-document results in order, each
    /// decided as `save` decides it.
    pub async fn bulk_save(&self, db: &str, docs: &[Value]) -> StoreResult<Vec<Result<String, StoreError>>> {
        let _timer = crate::metrics::CouchTimer::start("bulk_save");
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let path = format!("/{}/_bulk_docs", encode(db));
        let w = self.all_copies(db).await?;
        let body = json!({ "docs": docs });
        let resp = self
            .send(Resend::Write, |c| {
                let r = c.req(Method::POST, &path, None).json(&body);
                match &w {
                    Some(w) => r.query(&[("w", w)]),
                    None => r,
                }
            })
            .await?;
        if !resp.status().is_success() {
            return Err(classify_status(resp.status(), format!("bulk save to {db}")));
        }
        let rows = in_request_order(docs, resp.json().await?);
        let unsure = self.unsure(db).await?;
        let decide = rows.iter().map(|r| async move {
            let Some(r) = r else { return Err(StoreError::Fault("no answer for a document of a bulk save".into())) };
            let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
            match (r.get("rev").and_then(Value::as_str), r.get("error").and_then(Value::as_str)) {
                (Some(rev), None) if unsure || r.get("accepted") == Some(&Value::Bool(true)) => {
                    if self.settle_or_later(db, id, rev).await? {
                        Ok(rev.to_owned())
                    } else {
                        Err(StoreError::Conflict)
                    }
                }
                (Some(rev), None) => Ok(rev.to_owned()),
                (_, Some("conflict")) => Err(StoreError::Conflict),
                (_, err) => Err(StoreError::Fault(err.unwrap_or("unknown").to_owned())),
            }
        });
        Ok(futures_util::future::join_all(decide).await)
    }

    /// Deletes revision `rev` of a document and finds out whether that won; returns the
    /// tombstone's revision.
    pub async fn delete(&self, db: &str, id: &str, rev: &str) -> StoreResult<String> {
        let _timer = crate::metrics::CouchTimer::start("delete");
        let path = Self::doc_path(db, id);
        let w = self.all_copies(db).await?.unwrap_or_else(|| "1".into());
        let resp = self
            .send(Resend::Write, |c| c.req(Method::DELETE, &path, None).query(&[("rev", rev), ("w", w.as_str())]))
            .await?;
        self.decided(db, id, resp).await
    }

    /// Adds or replaces an attachment on a document at revision `rev`; returns the new rev.
    /// `body` makes the bytes to send (again, should the first node be unreachable).
    pub async fn put_attachment(
        &self,
        (db, id, rev): (&str, &str, &str),
        file: &NewAttachment<'_>,
        body: &(dyn Fn() -> reqwest::Body + Sync),
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
        let w = self.all_copies(db).await?.unwrap_or_else(|| "1".into());
        let resp = self
            .send(Resend::Write, |c| {
                // (`headers` replaces the client's default JSON content type)
                c.req(Method::PUT, &path, None)
                    .query(&[("rev", rev), ("w", w.as_str())])
                    .headers(headers.clone())
                    .body(body())
            })
            .await?;
        self.decided(db, id, resp).await
    }

    /// Removes an attachment from revision `rev`; returns the new rev (`NotFound` when the
    /// document or the attachment is not there).
    pub async fn delete_attachment(&self, db: &str, id: &str, rev: &str, name: &str) -> StoreResult<String> {
        let _timer = crate::metrics::CouchTimer::start("delete_attachment");
        let path = format!("{}/{}", Self::doc_path(db, id), encode(name));
        let w = self.all_copies(db).await?.unwrap_or_else(|| "1".into());
        let resp = self
            .send(Resend::Write, |c| c.req(Method::DELETE, &path, None).query(&[("rev", rev), ("w", w.as_str())]))
            .await?;
        self.decided(db, id, resp).await
    }

    /// The revision CouchDB keeps of a document, read with every copy's say (which makes the
    /// copies agree first), with `_conflicts`; `None` when it is missing or deleted.
    pub async fn get_settled(&self, db: &str, id: &str) -> StoreResult<Option<Value>> {
        let _timer = crate::metrics::CouchTimer::start("get_settled");
        let path = Self::doc_path(db, id);
        let r = self.all_copies(db).await?.unwrap_or_else(|| "1".into());
        let resp = self
            .send(Resend::Read, |c| c.req(Method::GET, &path, None).query(&[("r", r.as_str()), ("conflicts", "true")]))
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(resp.json().await?)),
            s => Err(classify_status(s, format!("reading {db}/{id}"))),
        }
    }

    /// Every leaf of a document (deleted ones too), from every copy, with its history.
    pub async fn leaves(&self, db: &str, id: &str) -> StoreResult<Vec<Value>> {
        let path = Self::doc_path(db, id);
        let r = self.all_copies(db).await?.unwrap_or_else(|| "1".into());
        let resp = self
            .send(Resend::Read, |c| {
                c.req(Method::GET, &path, None)
                    .query(&[("open_revs", "all"), ("revs", "true"), ("r", r.as_str())])
                    .header(reqwest::header::ACCEPT, "application/json")
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(Vec::new()),
            s if s.is_success() => {
                let rows: Vec<Value> = resp.json().await?;
                Ok(rows.into_iter().filter_map(|r| r.get("ok").cloned()).collect())
            }
            s => Err(classify_status(s, format!("reading the revisions of {db}/{id}"))),
        }
    }

    /// After a write that only some copies confirmed: did `rev` win? See the module comment.
    async fn settle(&self, db: &str, id: &str, rev: &str) -> StoreResult<bool> {
        let _timer = crate::metrics::CouchTimer::start("settle");
        let path = Self::doc_path(db, id);
        let r = self.all_copies(db).await?.unwrap_or_else(|| "1".into());
        let mut found = None;
        // the first read makes every copy hold every revision; the second tells the winner
        let reads = if self.unsure(db).await? { 1 } else { 2 };
        for _ in 0..reads {
            let resp = self
                .send(Resend::Read, |c| {
                    c.req(Method::GET, &path, None).query(&[("r", r.as_str()), ("revs", "true"), ("conflicts", "true")])
                })
                .await?;
            found = match resp.status() {
                s if s.is_success() => Some(resp.json::<Value>().await?),
                StatusCode::NOT_FOUND => None,
                s => return Err(classify_status(s, format!("settling {db}/{id}"))),
            };
        }
        let (winner_history, losers) = match found {
            Some(doc) => {
                let losers = doc
                    .get("_conflicts")
                    .and_then(Value::as_array)
                    .map(|c| c.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                (history(&doc), losers)
            }
            // the winner is a deletion: look at every leaf
            None => {
                let leaves = self.leaves(db, id).await?;
                match choose(&leaves) {
                    Some((winner, losers)) => (history(winner), losers),
                    None => (Vec::new(), Vec::new()),
                }
            }
        };
        let won = winner_history.iter().any(|r| r == rev);
        tracing::debug!(db, id, rev, won, winner = ?winner_history.first(), ?losers, "settled");
        crate::metrics::get().couch_settled.with_label_values(&[if won { "won" } else { "lost" }]).inc();
        let remove: Vec<String> = if won { losers } else { vec![rev.to_owned()] };
        self.remove_leaves(db, id, &remove).await;
        Ok(won)
    }

    /// Deletes losing leaves of a document, so it carries no conflict. A leaf that is gone
    /// already (someone else removed it) is fine.
    pub async fn remove_leaves(&self, db: &str, id: &str, revs: &[String]) {
        let path = Self::doc_path(db, id);
        let w = match self.all_copies(db).await {
            Ok(w) => w.unwrap_or_else(|| "1".into()),
            Err(_) => "1".into(),
        };
        for rev in revs {
            tracing::debug!(db, id, rev, "removing a losing leaf");
            let sent = self
                .send(Resend::Write, |c| {
                    c.req(Method::DELETE, &path, None).query(&[("rev", rev.as_str()), ("w", w.as_str())])
                })
                .await;
            match sent.map(|r| r.status().as_u16()) {
                Ok(200..=202 | 404 | 409) => {}
                Ok(other) => tracing::warn!(db, id, rev, status = other, "cannot remove a losing revision"),
                Err(e) => tracing::warn!(db, id, rev, error = %e, "cannot remove a losing revision"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_rows_are_matched_to_their_documents_by_id() {
        let docs = [json!({"_id": "a"}), json!({"_id": "b"}), json!({"_id": "c"})];
        let rows = vec![json!({"id": "b", "rev": "1-b"}), json!({"id": "a", "rev": "1-a"})];
        let matched = in_request_order(&docs, rows);
        let revs: Vec<Option<&str>> = matched.iter().map(|r| r.as_ref().and_then(|r| r["rev"].as_str())).collect();
        assert_eq!(revs, [Some("1-a"), Some("1-b"), None]);
    }

    #[test]
    fn history_lists_newest_first() {
        let doc = json!({"_rev": "3-c", "_revisions": {"start": 3, "ids": ["c", "b", "a"]}});
        assert_eq!(history(&doc), ["3-c", "2-b", "1-a"]);
        assert_eq!(history(&json!({"_rev": "1-x"})), ["1-x"]);
    }

    #[test]
    fn the_winner_is_couchdbs() {
        let leaves = [
            json!({"_rev": "2-aa"}),
            json!({"_rev": "2-ff"}),
            json!({"_rev": "3-00", "_deleted": true}),
            json!({"_rev": "1-zz"}),
        ];
        let (winner, losers) = choose(&leaves).unwrap();
        assert_eq!(winner["_rev"], "2-ff", "live beats deleted, then the longer history, then the greater id");
        assert_eq!(losers, ["2-aa", "1-zz"]);
        let all_deleted = [json!({"_rev": "2-aa", "_deleted": true}), json!({"_rev": "3-bb", "_deleted": true})];
        assert_eq!(choose(&all_deleted).unwrap().0["_rev"], "3-bb");
        assert!(choose(&[]).is_none());
    }
}
