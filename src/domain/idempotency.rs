//! `Idempotency-Key`: the rules, over plain data. A key names one change of one caller for 24
//! hours; the first answer is kept and given again to the same request, a different request
//! with the key is refused, and a change still being made is waited for.

pub use super::documents::service::IdempotencyDoc;
use super::documents::service::StoredAnswer;
use sha2::{Digest, Sha256};

/// How long a key names its first answer.
pub const KEPT_MS: u64 = 24 * 3600 * 1000;
/// A change still marked as being made after this long was abandoned (its instance died).
pub const ABANDONED_AFTER_MS: u64 = 60 * 1000;

/// A key as a client sends it: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = !raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
        }
    }

    /// The id of the record of this key for `scope` (the caller): the key itself is hashed,
    /// so whatever a client puts in it never becomes part of a document id.
    pub fn record_id(&self, scope: &str) -> String {
        format!("idempotency:{scope}:{}", hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

/// What makes two requests "the same": method, path with query, content type and body.
pub fn fingerprint(method: &str, path_and_query: &str, content_type: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [method.as_bytes(), path_and_query.as_bytes(), content_type.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(body);
    hex::encode(h.finalize())
}

/// A kept answer: status, the headers worth giving again, the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Headers of an answer that belong to it (the rest is made afresh for each reply).
pub const KEPT_HEADERS: [&str; 3] = ["content-type", "location", "etag"];

/// Is an answer kept for the key? Server-side failures are not: the change may not have been
/// made, and the client's retry should try it again.
pub fn keeps(status: u16) -> bool {
    status < 500
}

/// What to do with a request whose key already has a record.
#[derive(Debug, PartialEq)]
pub enum Seen {
    /// The same request, answered: give its answer again.
    Replay(Answer),
    /// Another request under the same key: 422.
    Mismatch,
    /// The same request, still being made: wait for it.
    InProgress,
    /// The record is past its time (kept 24 h, or abandoned while being made): start afresh.
    Stale,
}

/// A record of a key, as stored: being made (no answer yet) or answered. Its `holder` makes
/// each writer's record its own: two identical creations would get one revision, and both
/// writers would be told they made it.
pub fn new_record(id: &str, fingerprint: &str, now_ms: u64) -> IdempotencyDoc {
    IdempotencyDoc::new(id, fingerprint, now_ms, now_ms + KEPT_MS)
}

pub fn answered(record: &mut IdempotencyDoc, answer: &Answer) {
    let (body, encoding) = match std::str::from_utf8(&answer.body) {
        Ok(text) => (text.to_owned(), "utf8"),
        Err(_) => {
            use base64::Engine;
            (base64::engine::general_purpose::STANDARD.encode(&answer.body), "base64")
        }
    };
    record.answer.set(StoredAnswer {
        status: answer.status,
        headers: answer.headers.clone(),
        body,
        encoding: encoding.into(),
    });
}

fn answer_of(record: &IdempotencyDoc) -> Option<Answer> {
    let a = record.answer.get()?;
    let body = match a.encoding.as_str() {
        "base64" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(&a.body).ok()?
        }
        _ => a.body.as_bytes().to_vec(),
    };
    Some(Answer { status: a.status, headers: a.headers.clone(), body })
}

/// Decides what a stored record means for a request with `fingerprint`, at `now_ms`.
pub fn seen(record: &IdempotencyDoc, fingerprint: &str, now_ms: u64) -> Seen {
    if record.expires <= now_ms {
        return Seen::Stale;
    }
    if record.fingerprint != fingerprint {
        return Seen::Mismatch;
    }
    match answer_of(record) {
        Some(answer) => Seen::Replay(answer),
        None if record.started + ABANDONED_AFTER_MS <= now_ms => Seen::Stale,
        None => Seen::InProgress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_a_sane_length() {
        assert!(Key::parse("order-42/ü").is_err());
        assert!(Key::parse("").is_err());
        assert!(Key::parse(&"k".repeat(256)).is_err());
        assert!(Key::parse("with space").is_err());
        let key = Key::parse("order-42").unwrap();
        let id = key.record_id("acct:user");
        assert!(id.starts_with("idempotency:acct:user:") && !id.contains("order-42"), "{id}");
        assert_ne!(id, Key::parse("order-43").unwrap().record_id("acct:user"));
    }

    #[test]
    fn two_writers_records_differ_even_in_one_millisecond() {
        // identical documents would get one revision on a cluster, and both writers would win
        assert_ne!(new_record("k", "print", 1), new_record("k", "print", 1));
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let a = fingerprint("PUT", "/v2/x", "application/json", b"{}");
        assert_eq!(a, fingerprint("PUT", "/v2/x", "application/json", b"{}"));
        assert_ne!(a, fingerprint("PATCH", "/v2/x", "application/json", b"{}"));
        assert_ne!(a, fingerprint("PUT", "/v2/x?y", "application/json", b"{}"));
        assert_ne!(a, fingerprint("PUT", "/v2/x", "application/json", b"{ }"));
        // parts are length-prefixed: moving a byte between them changes the print
        assert_ne!(fingerprint("PUT", "/a", "b", b""), fingerprint("PUT", "/ab", "", b""));
    }

    #[test]
    fn a_record_decides_replay_mismatch_wait_or_afresh() {
        let now = 1_000_000_000;
        let mut record = new_record("idempotency:s:k", "print", now);
        assert_eq!(seen(&record, "print", now + 10), Seen::InProgress);
        assert_eq!(seen(&record, "other", now + 10), Seen::Mismatch);
        assert_eq!(seen(&record, "print", now + ABANDONED_AFTER_MS), Seen::Stale, "abandoned");
        let answer =
            Answer { status: 201, headers: vec![("location".into(), "/x".into())], body: b"{\"a\":1}".to_vec() };
        answered(&mut record, &answer);
        assert_eq!(seen(&record, "print", now + ABANDONED_AFTER_MS), Seen::Replay(answer.clone()));
        assert_eq!(seen(&record, "other", now + 10), Seen::Mismatch);
        assert_eq!(seen(&record, "print", now + KEPT_MS), Seen::Stale, "kept 24 hours");
        let binary = Answer { status: 200, headers: vec![], body: vec![0xff, 0x00] };
        answered(&mut record, &binary);
        assert_eq!(seen(&record, "print", now), Seen::Replay(binary));
        assert!(keeps(409) && keeps(201) && !keeps(503));
    }
}
