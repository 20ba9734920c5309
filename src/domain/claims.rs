//! Number claims: one document per number in the service's own database, so that two requests
//! racing for the same number cannot both win (CouchDB accepts one new document per id, and
//! one update per revision). A claim is only a lock: the port request stays the truth, and a
//! claim whose request no longer holds the number open is stale and may be taken over.

pub use super::documents::service::ClaimDoc;

use super::documents::port_request::PortRequest;
use super::ids::AccountId;
use super::phone_number::PhoneNumber;

/// How long a claim whose request does not exist (yet) still holds: the request that took it
/// may be on its way to CouchDB. A creation that failed after claiming blocks its numbers no
/// longer than this.
pub const IN_FLIGHT_SECS: i64 = 60;

const CLAIM_PREFIX: &str = "number_claim:";

pub fn claim_id(number: &PhoneNumber) -> String {
    format!("{CLAIM_PREFIX}{number}")
}

/// The number a claim id names.
pub fn number_of(claim_id: &str) -> Option<PhoneNumber> {
    PhoneNumber::exact(claim_id.strip_prefix(CLAIM_PREFIX)?).ok()
}

/// A new claim of `number` by request `port_id` of `account_id` (Unix seconds `now`). Two
/// claims by one request (an import made through two instances at once) are still two writes:
/// each carries its own `holder`.
pub fn claim_doc(number: &PhoneNumber, port_id: &str, account_id: &AccountId, now: i64) -> ClaimDoc {
    ClaimDoc::new(claim_id(number), number.as_str(), port_id, account_id.as_str(), now)
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

/// Judges the `claim` of `number` for request `me`, given the claiming request's document as it
/// is now (`None` if it does not exist).
pub fn judge(claim: &ClaimDoc, holder: Option<&PortRequest>, number: &PhoneNumber, me: &str, now: i64) -> Verdict {
    if claim.port_request_id == me {
        return Verdict::Ours;
    }
    let held = match holder {
        None => now - claim.at < IN_FLIGHT_SECS,
        Some(doc) => doc.holds(number),
    };
    if held {
        Verdict::Held { port_request_id: claim.port_request_id.clone(), account_id: claim.account_id.clone() }
    } else {
        Verdict::Stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const N: &str = "+14155550100";

    fn n() -> PhoneNumber {
        PhoneNumber::exact(N).unwrap()
    }

    fn acct() -> AccountId {
        AccountId::parse("0123456789abcdef0123456789abcdef").unwrap()
    }

    fn claim(by: &str, at: i64) -> ClaimDoc {
        claim_doc(&n(), by, &acct(), at)
    }

    fn request(state: &str, numbers: serde_json::Value) -> PortRequest {
        PortRequest::stored_with(json!({"_id": "other", "numbers": numbers}), json!({"port_state": state}))
    }

    #[test]
    fn two_claims_by_one_request_in_one_second_differ() {
        // identical documents would get one revision on a cluster, and both writers would win
        assert_ne!(claim("me", 0), claim("me", 0));
        assert_eq!(number_of(&claim("me", 0).id), Some(n()));
    }

    #[test]
    fn our_own_claim_is_ours() {
        assert_eq!(judge(&claim("me", 0), None, &n(), "me", 1000), Verdict::Ours);
    }

    #[test]
    fn an_open_request_with_the_number_holds_it() {
        let held = Verdict::Held { port_request_id: "other".into(), account_id: acct().to_string() };
        for state in ["unconfirmed", "submitted", "pending", "scheduled", "rejected"] {
            assert_eq!(judge(&claim("other", 0), Some(&request(state, json!({N: {}}))), &n(), "me", 1000), held);
        }
    }

    #[test]
    fn closed_deleted_or_edited_requests_leave_a_stale_claim() {
        let c = claim("other", 0);
        for state in ["completed", "canceled"] {
            assert_eq!(judge(&c, Some(&request(state, json!({N: {}}))), &n(), "me", 1000), Verdict::Stale);
        }
        let mut deleted = request("submitted", json!({N: {}}));
        deleted.deleted.set(true);
        assert_eq!(judge(&c, Some(&deleted), &n(), "me", 1000), Verdict::Stale);
        let edited = request("unconfirmed", json!({"+14155550101": {}}));
        assert_eq!(judge(&c, Some(&edited), &n(), "me", 1000), Verdict::Stale);
    }

    #[test]
    fn a_missing_request_holds_only_while_it_may_be_in_flight() {
        let now = 10_000;
        assert!(matches!(judge(&claim("other", now - 5), None, &n(), "me", now), Verdict::Held { .. }));
        assert_eq!(judge(&claim("other", now - IN_FLIGHT_SECS), None, &n(), "me", now), Verdict::Stale);
    }
}
