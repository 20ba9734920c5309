//! Notifications that are never lost. Every event (a state change, a new comment, a reminder,
//! a carrier push, a webhook) becomes an outbox document in our own database *before* the
//! port request is saved and before the HTTP answer; a worker delivers them later, retrying with
//! backoff and recording every attempt. An item whose event never got saved (the save failed
//! after the item was written) is found out at delivery and dropped.

pub mod email;
mod worker;

pub use worker::spawn;

use crate::couch::{Couch, StoreError, StoreResult, ViewQuery, dbs, design};
use crate::domain::fone;
use crate::domain::ids::{derived_id, new_doc_id};
use crate::domain::notifications::{Audience, emails_for_comment, emails_for_state, webhook_body};
use crate::domain::port_state::PortState;
use crate::domain::time::now_unix;
use crate::error::ApiError;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Notify;

const OUTBOX_VIEWS: &str = include_str!("../../couchdb_views/outbox.json");

/// The outbox items one change wrote (id, revision).
#[derive(Debug, Default)]
#[must_use]
pub struct Queued(Vec<(String, String)>);

/// Creates our database and its `_design/outbox` (kept up to date).
pub async fn ensure_db(couch: &Couch) -> StoreResult<()> {
    couch.ensure_db(dbs::SERVICE).await?;
    let ddoc: Value = serde_json::from_str(OUTBOX_VIEWS).expect("couchdb_views/outbox.json is valid JSON");
    design::install_or_update(couch, dbs::SERVICE, &ddoc).await?;
    Ok(())
}

#[derive(Clone)]
pub struct Outbox {
    couch: Couch,
    queue: String,
    wake: Arc<Notify>,
}

/// How the worker can tell that the event of an item really happened.
pub enum Proof<'a> {
    /// A transition into `state` at `at` (Gregorian) by `account`.
    Transition { state: PortState, at: i64, account: &'a str },
    /// A comment with this timestamp and content.
    Comment(&'a Value),
    /// Nothing to check (reminders).
    None,
}

impl Proof<'_> {
    fn to_value(&self) -> Value {
        match self {
            Proof::Transition { state, at, account } => {
                json!({"kind": "transition", "state": state, "timestamp": at, "account_id": account})
            }
            Proof::Comment(c) => {
                json!({"kind": "comment", "timestamp": c.get("timestamp"), "content": c.get("content")})
            }
            Proof::None => json!({"kind": "none"}),
        }
    }
}

/// What the item says about the event, for the templates.
#[derive(Default)]
pub struct Facts {
    pub reason: Option<String>,
    pub reason_author: Option<String>,
    pub previous: Option<PortState>,
    pub at: Option<i64>,
}

impl Outbox {
    pub fn new(couch: Couch, queue: &str) -> Self {
        Self { couch, queue: queue.to_owned(), wake: Arc::new(Notify::new()) }
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    fn item(&self, channel: &str, event: &str, doc: &Value, proof: &Proof<'_>, facts: &Facts) -> Value {
        let now = now_unix();
        json!({
            "_id": new_doc_id(),
            "pvt_type": "outbox",
            "queue": self.queue,
            "status": "pending",
            "channel": channel,
            "event": event,
            "port_request_id": doc.get("_id"),
            "account_id": doc.get("pvt_account_id"),
            "proof": proof.to_value(),
            "reason": facts.reason,
            "reason_author": facts.reason_author,
            "previous_state": facts.previous,
            "event_at": facts.at,
            "attempts": [],
            "created": now,
            "next_attempt_at": now,
        })
    }

    fn emails(&self, list: Vec<(&str, Audience)>, doc: &Value, proof: &Proof<'_>, facts: &Facts) -> Vec<Value> {
        list.into_iter()
            .map(|(template, audience)| {
                let mut item = self.item("email", template, doc, proof, facts);
                item["audience"] = json!(audience);
                item
            })
            .collect()
    }

    fn webhook(&self, event: &str, doc: &Value, proof: &Proof<'_>, facts: &Facts) -> Option<Value> {
        let url = doc.pointer("/notifications/webhook/url").and_then(Value::as_str)?;
        let mut body = webhook_body(event, doc, facts.previous, facts.reason.as_deref(), now_unix());
        if doc.get(fone::ORIGINAL).is_some() {
            // a request made through the Fone Dynamics API: its status update, their way
            let parent = doc["pvt_tree"].as_array().and_then(|t| t.last()).and_then(Value::as_str).unwrap_or_default();
            body["PortingRequest"] = fone::porting_request(doc, parent);
        }
        let mut item = self.item("webhook", event, doc, proof, facts);
        item["webhook"] = json!({ "url": url, "body": body.to_string() });
        Some(item)
    }

    /// The items of a move into `to` (`doc` as it will be saved).
    pub fn transition_items(
        &self,
        doc: &Value,
        to: PortState,
        proof: &Proof<'_>,
        facts: &Facts,
        carrier_push: bool,
    ) -> Vec<Value> {
        let mut items = self.emails(emails_for_state(to), doc, proof, facts);
        items.extend(self.webhook("transition", doc, proof, facts));
        if carrier_push {
            items.push(self.item("carrier_push", "carrier_push", doc, proof, facts));
        }
        items
    }

    /// The items of new comments: one `port_comment` per comment, and a webhook event.
    pub fn comment_items(&self, doc: &Value, new_comments: &[Value]) -> Vec<Value> {
        let mut items = Vec::new();
        for c in new_comments {
            let proof = Proof::Comment(c);
            let facts = Facts { at: c.get("timestamp").and_then(Value::as_i64), ..Facts::default() };
            let mut emails = self.emails(emails_for_comment(c), doc, &proof, &facts);
            for e in &mut emails {
                e["comment"] = c.clone();
            }
            items.extend(emails);
            if !crate::domain::comments::is_private(c) {
                items.extend(self.webhook("comment", doc, &proof, &facts));
            }
        }
        items
    }

    /// Not a notification: the worker's promise to remove the number documents of a completion
    /// whose request never got saved as completed.
    pub fn completion_guard(&self, doc: &Value, proof: &Proof<'_>) -> Value {
        let mut item = self.item("completion_guard", "completion_guard", doc, proof, &Facts::default());
        item["numbers"] = json!(crate::domain::port_request::numbers(doc));
        item
    }

    /// A reminder with a fixed id, so it is queued once per period whoever queues it.
    pub fn reminder_item(&self, doc: &Value, period: i64) -> Value {
        let mut item = self.item("email", "port_unconfirmed", doc, &Proof::None, &Facts::default());
        item["_id"] = json!(derived_id(&format!("reminder:{}:{period}", doc["_id"].as_str().unwrap_or_default())));
        item["audience"] = json!(Audience::Submitter);
        item
    }

    /// Writes items durably. Nothing is sent from here: `wake` starts the delivery.
    pub async fn enqueue(&self, items: &[Value]) -> Result<Queued, ApiError> {
        let mut queued = Queued::default();
        if items.is_empty() {
            return Ok(queued);
        }
        for (item, result) in items.iter().zip(self.couch.bulk_save(dbs::SERVICE, items).await?) {
            let id = item.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned();
            queued.0.push((id, result?));
        }
        Ok(queued)
    }

    /// Removes the items of a change CouchDB refused (409), so they never show as pending and a
    /// change made again in the same second can't lend them its proof. A worker may be looking
    /// at an item meanwhile (a lease, then a "not yet" record: two new revisions), so a contested
    /// item is deleted again on its current revision, after a pause that lets the worker finish.
    pub async fn withdraw(&self, queued: Queued) {
        match self.delete_contested(queued.0).await {
            Ok(left) if left.is_empty() => {}
            // never delivered unless their proof shows up; skipped once the grace runs out
            Ok(left) => tracing::warn!(items = left.len(), "outbox items of a refused change left behind"),
            Err(e) => tracing::warn!(error = %e, "cannot withdraw the outbox items of a refused change"),
        }
    }

    /// Deletes `items` (id, revision), again on the current revision of those a worker changed
    /// meanwhile, for a few rounds; returns the ones still there.
    async fn delete_contested(&self, mut items: Vec<(String, String)>) -> StoreResult<Vec<(String, String)>> {
        const ROUNDS: u64 = 6;
        for round in 1..=ROUNDS {
            if items.is_empty() {
                break;
            }
            let docs: Vec<Value> =
                items.iter().map(|(id, rev)| json!({"_id": id, "_rev": rev, "_deleted": true})).collect();
            let results = self.couch.bulk_save(dbs::SERVICE, &docs).await?;
            let contested: Vec<String> = items
                .iter()
                .zip(results)
                .filter(|(_, r)| matches!(r, Err(StoreError::Conflict)))
                .map(|((id, _), _)| id.clone())
                .collect();
            if contested.is_empty() {
                return Ok(Vec::new());
            }
            tokio::time::sleep(std::time::Duration::from_millis(20 * round)).await;
            items = self
                .couch
                .get_many(dbs::SERVICE, &contested)
                .await?
                .iter()
                .filter_map(|d| Some((d["_id"].as_str()?.to_owned(), d["_rev"].as_str()?.to_owned())))
                .collect();
        }
        Ok(items)
    }

    /// Tells the worker there is something to deliver.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The delivery records of a request, oldest first.
    pub async fn for_request(&self, id: &str) -> Result<Vec<Value>, ApiError> {
        let query = ViewQuery::range(json!([id]), json!([id, {}])).with_docs();
        let rows = self.couch.view(dbs::SERVICE, "outbox", "by_request", &query).await?;
        Ok(rows.into_iter().filter_map(|r| r.doc).collect())
    }
}
