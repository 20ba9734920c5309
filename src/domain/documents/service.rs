//! The documents of the service's own database (`kazoo_port_requests`): number claims, delivery
//! records and their checkpoints, completion journals, turns, `Idempotency-Key` records and
//! markers. Kazoo never reads them. Each has a `pvt_type` the views of
//! `couchdb_views/deliveries.json` select on.
//!
//! A document whose creation decides who goes ahead (a claim, a turn, a key's record, a
//! delivery's lease) carries a random `holder` (or `lease`): identical documents get one
//! revision on a cluster, and both writers would be told they made it (`store::couch::write`).

use super::fields::{Slot, stored};
use crate::domain::ids::new_doc_id;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

stored! {
    /// A number claim: which open request holds a number (`domain::claims`).
    pub struct ClaimDoc [
        "_id" id: String, "pvt_type" doc_type: String, "number" number: String, "port_request_id" port_request_id: String,
        #[serde(default)] "account_id" account_id: String,
        /// Unix seconds.
        #[serde(default)] "at" at: i64,
        #[serde(default)] "holder" holder: String,
    ] { "_rev" rev: String }
}

impl ClaimDoc {
    pub const TYPE: &str = "number_claim";

    pub fn new(id: String, number: &str, port_request_id: &str, account_id: &str, at: i64) -> Self {
        ClaimDoc {
            id,
            doc_type: Self::TYPE.into(),
            number: number.to_owned(),
            port_request_id: port_request_id.to_owned(),
            account_id: account_id.to_owned(),
            at,
            holder: new_doc_id(),
            rev: Slot::Absent,
            rest: Map::new(),
        }
    }
}

stored! {
    /// A delivery record: one event's delivery on one channel, its attempts and its lease
    /// (`domain::deliveries`).
    pub struct DeliveryDoc [
        "_id" id: String, "pvt_type" doc_type: String, "queue" queue: String,
        /// `pending`, `delivered`, `skipped` or `failed`.
        "status" status: String,
        "channel" channel: String,
        /// The template, or the webhook's event name.
        "event" event: String,
        "port_request_id" port_request_id: String,
        #[serde(default)] "attempts" attempts: Vec<Attempt>,
        /// Unix seconds.
        "created" created: i64,
    ] {
        "_rev" rev: String, "audience" audience: Value, "event_id" event_id: String,
        "reminder_period" reminder_period: i64, "account_id" account_id: String, "url" url: String,
        "recipients" recipients: Vec<String>,
        /// Unix seconds: when it is due (or when its lease runs out).
        "next_attempt_at" next_attempt_at: i64,
        /// The random mark of whoever holds it now.
        "lease" lease: String,
    }
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
    /// What was noted on the way (a stored template not used, and why).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

stored! {
    /// Where a follower of `port_requests/_changes` takes the feed up again (`seq` is opaque:
    /// only ever handed back to CouchDB).
    pub struct CheckpointDoc ["_id" id: String, "pvt_type" doc_type: String, "seq" seq: Value] { "_rev" rev: String }
}

impl CheckpointDoc {
    pub fn new(id: String, seq: Value) -> Self {
        CheckpointDoc { id, doc_type: "delivery_checkpoint".into(), seq, rev: Slot::Absent, rest: Map::new() }
    }
}

stored! {
    /// The journal of a completion attempt: the number documents it writes (`app::completion`).
    pub struct CompletionJournal [
        "_id" id: String, "pvt_type" doc_type: String, "port_request_id" port_request_id: String,
        "numbers" numbers: Vec<String>,
        /// Gregorian seconds.
        "at" at: i64,
    ] { "_rev" rev: String, "account_id" account_id: String }
}

impl CompletionJournal {
    pub fn new(port_request_id: &str, account_id: Option<&str>, numbers: Vec<String>, at: i64) -> Self {
        CompletionJournal {
            id: format!("completion:{port_request_id}:{}", new_doc_id()),
            doc_type: "completion".into(),
            port_request_id: port_request_id.to_owned(),
            numbers,
            at,
            rev: Slot::Absent,
            account_id: Slot::from_option(account_id.map(str::to_owned)),
            rest: Map::new(),
        }
    }
}

stored! {
    /// A turn: the one writer of a port request's revision on a cluster (`store::turns`).
    pub struct TurnDoc [
        "_id" id: String, "pvt_type" doc_type: String,
        /// The revision the holder updates.
        "rev" rev_of: Option<String>,
        /// Unix milliseconds after which the turn expired.
        "until" until: u64,
        "holder" holder: String,
    ] { "_rev" rev: String }
}

impl TurnDoc {
    pub fn new(id: String, rev_of: Option<&str>, until: u64) -> Self {
        TurnDoc {
            id,
            doc_type: "turn".into(),
            rev_of: rev_of.map(str::to_owned),
            until,
            holder: new_doc_id(),
            rev: Slot::Absent,
            rest: Map::new(),
        }
    }
}

stored! {
    /// An `Idempotency-Key`'s record (`domain::idempotency`); times in Unix milliseconds.
    pub struct IdempotencyDoc [
        "_id" id: String, "pvt_type" doc_type: String, "fingerprint" fingerprint: String,
        "started" started: u64, "expires" expires: u64, "holder" holder: String,
    ] { "_rev" rev: String, "answer" answer: StoredAnswer }
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
            doc_type: "idempotency_key".into(),
            fingerprint: fingerprint.to_owned(),
            started,
            expires,
            holder: new_doc_id(),
            rev: Slot::Absent,
            answer: Slot::Absent,
            rest: Map::new(),
        }
    }
}

stored! {
    /// A note that a one-time piece of work was done (e.g. the claims of open requests adopted).
    pub struct MarkerDoc ["_id" id: String, "pvt_type" doc_type: String, "at" at: i64] { "_rev" rev: String }
}

impl MarkerDoc {
    pub fn new(id: &str, at: i64) -> Self {
        MarkerDoc { id: id.to_owned(), doc_type: "marker".into(), at, rev: Slot::Absent, rest: Map::new() }
    }
}
