//! The documents of the service's own database (`kazoo_port_requests`): number claims, delivery
//! records and their checkpoints, completion journals, turns, `Idempotency-Key` records and
//! markers. Kazoo never reads them. Each has a `pvt_type` the views of
//! `couchdb_views/deliveries.json` select on.
//!
//! A document whose creation decides who goes ahead (a claim, a turn, a key's record, a
//! delivery's lease) carries a random `holder` (or `lease`): identical documents get one
//! revision on a cluster, and both writers would be told they made it (`store::couch::write`).

use super::fields::Slot;
use crate::domain::ids::new_doc_id;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A number claim: which open request holds a number (`domain::claims`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_rev", default, skip_serializing_if = "Slot::is_absent")]
    pub rev: Slot<String>,
    #[serde(rename = "pvt_type")]
    pub doc_type: String,
    pub number: String,
    pub port_request_id: String,
    #[serde(default)]
    pub account_id: String,
    /// Unix seconds.
    #[serde(default)]
    pub at: i64,
    #[serde(default)]
    pub holder: String,
}

impl ClaimDoc {
    pub const TYPE: &str = "number_claim";

    pub fn new(id: String, number: &str, port_request_id: &str, account_id: &str, at: i64) -> Self {
        ClaimDoc {
            id,
            rev: Slot::Absent,
            doc_type: Self::TYPE.into(),
            number: number.to_owned(),
            port_request_id: port_request_id.to_owned(),
            account_id: account_id.to_owned(),
            at,
            holder: new_doc_id(),
        }
    }
}

/// A delivery record: one event's delivery on one channel, its attempts and its lease
/// (`jobs::delivery`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_rev", default, skip_serializing_if = "Slot::is_absent")]
    pub rev: Slot<String>,
    #[serde(rename = "pvt_type")]
    pub doc_type: String,
    pub queue: String,
    /// `pending`, `delivered`, `skipped` or `failed`.
    pub status: String,
    pub channel: String,
    /// The template, or the webhook's event name.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_period: Option<i64>,
    pub port_request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds: when it is due (or when its lease runs out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    /// The random mark of whoever holds it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl DeliveryDoc {
    pub const TYPE: &str = "delivery";
}

/// One attempt at a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: i64,
    /// `delivered`, `skipped` or `error`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a follower of `port_requests/_changes` takes the feed up again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_rev", default, skip_serializing_if = "Slot::is_absent")]
    pub rev: Slot<String>,
    #[serde(rename = "pvt_type")]
    pub doc_type: String,
    /// Opaque: only ever handed back to CouchDB.
    pub seq: Value,
}

impl CheckpointDoc {
    pub fn new(id: String, seq: Value) -> Self {
        CheckpointDoc { id, rev: Slot::Absent, doc_type: "delivery_checkpoint".into(), seq }
    }
}

/// The journal of a completion attempt: the number documents it writes (`app::completion`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionJournal {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_rev", default, skip_serializing_if = "Slot::is_absent")]
    pub rev: Slot<String>,
    #[serde(rename = "pvt_type")]
    pub doc_type: String,
    pub port_request_id: String,
    #[serde(default)]
    pub account_id: Option<String>,
    pub numbers: Vec<String>,
    /// Gregorian seconds.
    pub at: i64,
}

impl CompletionJournal {
    pub fn new(port_request_id: &str, account_id: Option<&str>, numbers: Vec<String>, at: i64) -> Self {
        CompletionJournal {
            id: format!("completion:{port_request_id}:{}", new_doc_id()),
            rev: Slot::Absent,
            doc_type: "completion".into(),
            port_request_id: port_request_id.to_owned(),
            account_id: account_id.map(str::to_owned),
            numbers,
            at,
        }
    }
}

/// A turn: the one writer of a port request's revision on a cluster (`store::turn`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_rev", default, skip_serializing_if = "Slot::is_absent")]
    pub rev: Slot<String>,
    #[serde(rename = "pvt_type")]
    pub doc_type: String,
    /// The revision the holder updates.
    #[serde(rename = "rev")]
    pub rev_of: Option<String>,
    /// Unix milliseconds after which the turn expired.
    pub until: u64,
    pub holder: String,
}

impl TurnDoc {
    pub fn new(id: String, rev_of: Option<&str>, until: u64) -> Self {
        TurnDoc {
            id,
            rev: Slot::Absent,
            doc_type: "turn".into(),
            rev_of: rev_of.map(str::to_owned),
            until,
            holder: new_doc_id(),
        }
    }
}

/// An `Idempotency-Key`'s record (`domain::idempotency`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_rev", default, skip_serializing_if = "Slot::is_absent")]
    pub rev: Slot<String>,
    #[serde(rename = "pvt_type")]
    pub doc_type: String,
    pub fingerprint: String,
    /// Unix milliseconds.
    pub started: u64,
    pub expires: u64,
    pub holder: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<StoredAnswer>,
}

/// A kept answer, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// `utf8` or `base64`.
    pub encoding: String,
}

impl IdempotencyDoc {
    pub fn new(id: &str, fingerprint: &str, started: u64, expires: u64) -> Self {
        IdempotencyDoc {
            id: id.to_owned(),
            rev: Slot::Absent,
            doc_type: "idempotency_key".into(),
            fingerprint: fingerprint.to_owned(),
            started,
            expires,
            holder: new_doc_id(),
            answer: None,
        }
    }
}

/// A note that a one-time piece of work was done (e.g. the claims of open requests adopted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkerDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_rev", default, skip_serializing_if = "Slot::is_absent")]
    pub rev: Slot<String>,
    #[serde(rename = "pvt_type")]
    pub doc_type: String,
    pub at: i64,
}

impl MarkerDoc {
    pub fn new(id: &str, at: i64) -> Self {
        MarkerDoc { id: id.to_owned(), rev: Slot::Absent, doc_type: "marker".into(), at }
    }
}
