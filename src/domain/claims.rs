//! Number claims: one document per number in the service's own database, so that two requests
//! racing for the same number cannot both win (CouchDB accepts one new document per id, and
//! one update per revision). A claim is only a lock: the port request stays the truth, and a
//! claim whose request no longer holds the number open is stale and may be taken over.

use super::port_state::PortState;
use serde_json::{Value, json};

/// How long a claim whose request does not exist (yet) still holds: the request that took it
/// may be on its way to CouchDB. A creation that failed after claiming blocks its numbers no
/// longer than this.
pub const IN_FLIGHT_SECS: i64 = 60;

pub const CLAIM_PREFIX: &str = "number_claim:";

pub fn claim_id(e164: &str) -> String {
    format!("{CLAIM_PREFIX}{e164}")
}

/// Does the request `doc` hold `e164`: open, not deleted, the number among its `numbers`?
pub fn holds(doc: &Value, e164: &str) -> bool {
    let deleted = doc.get("pvt_deleted").and_then(Value::as_bool) == Some(true);
    let has_number = doc.get("numbers").and_then(Value::as_object).is_some_and(|n| n.contains_key(e164));
    !deleted && has_number && PortState::of_doc(doc).is_open()
}

/// A new claim of `e164` by request `port_id` of `account_id`.
pub fn claim_doc(e164: &str, port_id: &str, account_id: &str, now: i64) -> Value {
    json!({
        "_id": claim_id(e164),
        "pvt_type": "number_claim",
        "number": e164,
        "port_request_id": port_id,
        "account_id": account_id,
        "at": now,
        // two claims by one request (an import made through two instances at once) are still
        // two writes: identical ones would get one revision, and both would win
        "holder": super::ids::new_doc_id(),
    })
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Claimed by the request asking.
    Ours,
    /// Held by another open request (or one being created).
    Held { port_request_id: String, account_id: String },
    /// The claiming request is gone, closed, or no longer has the number.
    Stale,
}

/// Judges the `claim` of `e164` for request `me`, given the claiming request's document as it
/// is now (`None` if it does not exist).
pub fn judge(claim: &Value, holder: Option<&Value>, e164: &str, me: &str, now: i64) -> Verdict {
    let field = |k: &str| claim.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let claimant = field("port_request_id");
    if claimant == me {
        return Verdict::Ours;
    }
    let held = match holder {
        None => now - claim.get("at").and_then(Value::as_i64).unwrap_or(0) < IN_FLIGHT_SECS,
        Some(doc) => holds(doc, e164),
    };
    if held { Verdict::Held { port_request_id: claimant, account_id: field("account_id") } } else { Verdict::Stale }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "+14155550100";

    fn claim(by: &str, at: i64) -> Value {
        claim_doc(N, by, "acct", at)
    }

    fn request(state: &str, numbers: Value) -> Value {
        json!({"_id": "other", "pvt_port_state": state, "numbers": numbers})
    }

    #[test]
    fn two_claims_by_one_request_in_one_second_differ() {
        // identical documents would get one revision on a cluster, and both writers would win
        assert_ne!(claim("me", 0), claim("me", 0));
    }

    #[test]
    fn our_own_claim_is_ours() {
        assert_eq!(judge(&claim("me", 0), None, N, "me", 1000), Verdict::Ours);
    }

    #[test]
    fn an_open_request_with_the_number_holds_it() {
        let held = Verdict::Held { port_request_id: "other".into(), account_id: "acct".into() };
        for state in ["unconfirmed", "submitted", "pending", "scheduled", "rejected"] {
            assert_eq!(judge(&claim("other", 0), Some(&request(state, json!({N: {}}))), N, "me", 1000), held);
        }
    }

    #[test]
    fn closed_deleted_or_edited_requests_leave_a_stale_claim() {
        let c = claim("other", 0);
        for state in ["completed", "canceled"] {
            assert_eq!(judge(&c, Some(&request(state, json!({N: {}}))), N, "me", 1000), Verdict::Stale);
        }
        let mut deleted = request("submitted", json!({N: {}}));
        deleted["pvt_deleted"] = json!(true);
        assert_eq!(judge(&c, Some(&deleted), N, "me", 1000), Verdict::Stale);
        let edited = request("unconfirmed", json!({"+14155550101": {}}));
        assert_eq!(judge(&c, Some(&edited), N, "me", 1000), Verdict::Stale);
    }

    #[test]
    fn a_missing_request_holds_only_while_it_may_be_in_flight() {
        let now = 10_000;
        assert!(matches!(judge(&claim("other", now - 5), None, N, "me", now), Verdict::Held { .. }));
        assert_eq!(judge(&claim("other", now - IN_FLIGHT_SECS), None, N, "me", now), Verdict::Stale);
    }
}
