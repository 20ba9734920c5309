//! Which notifications an event causes, and what they say (Kazoo 4.3's `cb_port_requests` and
//! teletype's port templates): plain functions; `jobs::delivery` does the I/O.

use super::desk::rejection_codes::RejectionCode;
use super::documents::account::AccountDoc;
use super::documents::fields::Slot;
use super::documents::port_request::{Comment, PortRequest};
use super::phone_number::{PhoneNumber, pretty_print};
use super::port_state::PortState;
use super::time::gregorian_to_datetime;
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

/// Who an email goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    /// `notifications.email.send_to` of the request.
    Submitter,
    /// The port authority's `port.support_email`, else its admin users.
    Authority,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Submitter => "submitter",
            Audience::Authority => "authority",
        }
    }
}

/// Kazoo's templates for a move into `state`, each with its audience (§3.3).
pub fn emails_for_state(state: PortState) -> Vec<(&'static str, Audience)> {
    use Audience::*;
    match state {
        PortState::Submitted => {
            vec![("port_request", Submitter), ("port_request", Authority), ("port_request_admin", Authority)]
        }
        PortState::Pending => vec![("port_pending", Submitter)],
        PortState::Scheduled => vec![("port_scheduled", Submitter)],
        PortState::Completed => vec![("ported", Submitter)],
        PortState::Rejected => vec![("port_rejected", Submitter), ("port_rejected", Authority)],
        PortState::Canceled => vec![("port_cancel", Submitter), ("port_cancel", Authority)],
        PortState::Unconfirmed => vec![],
    }
}

/// `port_comment` goes to the submitter (unless private) and the authority.
pub fn emails_for_comment(comment: &Comment) -> Vec<(&'static str, Audience)> {
    if comment.is_private() {
        vec![("port_comment", Audience::Authority)]
    } else {
        vec![("port_comment", Audience::Submitter), ("port_comment", Audience::Authority)]
    }
}

/// `port_number_progress` tells the submitter that one number moved on its own.
pub fn emails_for_number_progress() -> Vec<(&'static str, Audience)> {
    vec![("port_number_progress", Audience::Submitter)]
}

/// `port_signed` tells both sides that the end customer signed the LOA.
pub fn emails_for_signature() -> Vec<(&'static str, Audience)> {
    vec![("port_signed", Audience::Submitter), ("port_signed", Audience::Authority)]
}

pub const TEMPLATES: [&str; 13] = [
    "port_request",
    "port_request_admin",
    "port_pending",
    "port_scheduled",
    "ported",
    "port_rejected",
    "port_cancel",
    "port_comment",
    "port_unconfirmed",
    "port_signed",
    "port_customer_link",
    "port_number_progress",
    // this service's own: the port authority's daily digest (`domain::desk::digest`)
    "port_authority_digest",
];

/// Kazoo's default subjects, as handlebars templates.
pub fn subject(template: &str) -> &'static str {
    match template {
        "port_request" => "Number port request for account '{{account.name}}'",
        "port_request_admin" => "Number port request for account '{{account.name}}' (Details)",
        "port_pending" => "Port request: '{{port_request.name}}' is now pending",
        "port_scheduled" => "Port request '{{port_request.name}}' has been scheduled",
        "ported" => "Number port request '{{port_request.name}}' completed",
        "port_rejected" => "Port request '{{port_request.name}}' has been rejected",
        "port_cancel" => "Port request '{{port_request.name}}' has been canceled",
        "port_comment" => "New comment for port request '{{port_request.name}}'",
        "port_unconfirmed" => "Unfinished port request '{{port_request.name}}' reminder",
        "port_signed" => "The Letter of Authorization of '{{port_request.name}}' was signed",
        "port_customer_link" => "{{port_authority.name}}: please complete the transfer of your numbers",
        "port_number_progress" => {
            "Port request '{{port_request.name}}': {{number_progress.number.pretty}} is now {{number_progress.state}}"
        }
        "port_authority_digest" => {
            "Port requests for {{port_authority.name}}: {{digest.attention_count}} need your attention ({{digest.day}})"
        }
        _ => "Port request '{{port_request.name}}'",
    }
}

/// Exponential backoff: `base`, `2 base`, `4 base`, ... capped at `max`.
pub fn retry_delay(failed_attempts: u32, base: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(failed_attempts.saturating_sub(1).min(30));
    base.saturating_mul(factor).min(max)
}

/// Addresses a webhook may not reach unless allowed (SSRF): loopback, private, shared (CGNAT),
/// link-local (cloud metadata), unspecified and broadcast, in IPv4, IPv6 and IPv4-mapped IPv6.
pub fn is_private_ip(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (b & 0xc0) == 64)
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_ip(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || v6.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// `X-Signature-SHA256`: hex HMAC-SHA256 of the body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `kz_json:normalize`: keys lower-cased, `-` to `_`, nulls dropped, recursively.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.to_lowercase().replace('-', "_"), normalize(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// The body of the carrier push (`knm_port_request:send_request`): some keys removed, some
/// renamed, normalised; unlike 4.3, private comments are removed.
pub fn carrier_push_body(doc: &PortRequest) -> Value {
    let mut body = Value::Object(doc.carrier_push_fields());
    super::port_request::filter_comments(&mut body, doc, false);
    normalize(&body)
}

/// A webhook event about a request.
pub fn webhook_body(
    event: &str,
    doc: &PortRequest,
    previous: Option<PortState>,
    reason: Option<&str>,
    unix_ts: i64,
) -> Value {
    let mut body = json!({
        "event": event,
        "port_request_id": doc.id,
        "account_id": doc.owner(),
        "port_state": doc.shown_state(),
        "previous_state": previous,
        "reason": reason,
        "timestamp": unix_ts,
    });
    // where each number is, once some moved on their own
    if super::number_progress::any(doc) {
        body["numbers"] = Value::Object(super::number_progress::all(doc));
    }
    body
}

/// A date as the templates show it: `{utc, local, timestamp, timezone}` (§3.4), `utc` and
/// `local` written with the given formats.
pub fn date_as(gregorian: Option<i64>, tz: Tz, utc: &str, local: &str) -> Value {
    match gregorian.and_then(gregorian_to_datetime) {
        Some(at) => json!({
            "utc": at.format(utc).to_string(),
            "local": at.with_timezone(&tz).format(local).to_string(),
            "timestamp": gregorian,
            "timezone": tz.name(),
        }),
        None => Value::Null,
    }
}

/// A date for this service's templates: ready to print.
fn date(gregorian: Option<i64>, tz: Tz) -> Value {
    date_as(gregorian, tz, "%Y-%m-%d %H:%M UTC", "%B %-d, %Y %H:%M %Z")
}

fn dash(v: &Slot<String>) -> Value {
    json!(v.text().unwrap_or("-"))
}

/// What happened, as the delivery's event tells it.
#[derive(Debug, Clone, Default)]
pub struct Happening {
    pub reason: Option<String>,
    pub reason_author: Option<String>,
    pub comment: Option<Comment>,
    pub at: Option<i64>,
    /// The number that moved on its own, where it went and where from.
    pub number: Option<(PhoneNumber, PortState, Option<PortState>)>,
    /// A rejection's code, with its title, meaning, fix and fields.
    pub rejection: Option<RejectionCode>,
}

/// `{id, name, realm}` of an account, for the templates.
fn account_names(account: &AccountDoc) -> Value {
    json!({ "id": account.id.get(), "name": account.name.get(), "realm": account.realm.get() })
}

/// Template data for a port email (`teletype_port_utils:port_request_data`).
pub fn email_data(
    doc: &PortRequest,
    account: &AccountDoc,
    authority: &AccountDoc,
    happening: &Happening,
    tz: Tz,
) -> Value {
    let mut pr = doc.public_fields();
    pr.remove("comments");
    pr.remove("ui_metadata");
    pr.remove("ui_flags");
    let state = doc.state().ok();
    let numbers_shown = match state {
        Some(PortState::Completed) => doc.ported(),
        _ => doc.numbers_shown(),
    };
    // where each number is, when some moved on their own
    let own = super::number_progress::all(doc);
    let has_own = super::number_progress::any(doc);
    let numbers: Vec<Value> = numbers_shown
        .keys()
        .map(|e| {
            let mut entry = json!({ "e164": e, "pretty": e.pretty() });
            if has_own && let Some(p) = own.get(e.as_str()) {
                entry["progress"] = p.clone();
            }
            entry
        })
        .collect();
    let default_bill = super::documents::port_request::Bill::default();
    let bill = doc.bill().unwrap_or(&default_bill);
    pr.insert("port_state".into(), doc.shown_state());
    pr.insert("numbers".into(), json!(numbers));
    pr.insert("customer_contact".into(), json!(doc.send_to()));
    pr.insert("reference_number".into(), dash(&doc.reference_number));
    pr.insert("losing_carrier".into(), json!(bill.carrier.text().unwrap_or("unknown carrier")));
    pr.insert(
        "winning_carrier".into(),
        match &doc.winning_carrier {
            Slot::Absent => json!("unknown carrier"),
            other => serde_json::to_value(other).unwrap_or(Value::Null),
        },
    );
    pr.insert("created".into(), date(doc.created.copied(), tz));
    pr.insert("requested_port_date".into(), date(doc.transfer_date.copied(), tz));
    pr.insert("port_scheduled_date".into(), date(doc.scheduled_date.copied(), tz));
    pr.insert("signing_date".into(), date(doc.signing_date.copied(), tz));
    pr.insert("ported_date".into(), date(happening.at, tz));
    pr.insert(
        "bill".into(),
        json!({
            "name": dash(&bill.name),
            "address": {
                "street_number": dash(&bill.street_number), "street_pre_dir": dash(&bill.street_pre_dir),
                "street_name": dash(&bill.street_address), "street_type": dash(&bill.street_type),
                "street_post_dir": dash(&bill.street_post_dir), "locality": dash(&bill.locality),
                "region": dash(&bill.region), "postal_code": dash(&bill.postal_code),
            },
            "account": { "number": dash(&bill.account_number), "pin": dash(&bill.pin), "btn": dash(&bill.btn) },
        }),
    );
    let mut data = json!({
        "port_request": Value::Object(pr),
        "account": account_names(account),
        "port_authority": account_names(authority),
    });
    if let Some(reason) = happening.reason.as_deref().filter(|r| !r.is_empty()) {
        data["transition_reason"] = json!({
            "content": reason,
            "date": date(happening.at, tz),
            "user": { "author": happening.reason_author.clone().unwrap_or_else(|| "An agent".into()) },
        });
    }
    if let Some(r) = &happening.rejection {
        data["rejection"] = json!(r);
    }
    if let Some((number, state, previous)) = &happening.number {
        data["number_progress"] = json!({
            "number": { "e164": number, "pretty": number.pretty() },
            "state": state,
            "previous": previous,
        });
    }
    if has_own {
        data["numbers_progress"] = json!(
            own.iter()
                .map(|(n, p)| json!({ "e164": n, "pretty": pretty_print(n), "state": p["state"] }))
                .collect::<Vec<_>>()
        );
    }
    if let Some(c) = &happening.comment {
        data["comment"] = json!({
            "content": c.content.get(),
            "author": c.author.as_deref().unwrap_or("An agent"),
            "is_private": c.is_private(),
            "date": date(c.timestamp.copied(), tz),
        });
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kazoo_recipients() {
        assert_eq!(emails_for_state(PortState::Submitted).len(), 3);
        assert_eq!(emails_for_state(PortState::Pending), vec![("port_pending", Audience::Submitter)]);
        assert!(emails_for_state(PortState::Canceled).contains(&("port_cancel", Audience::Authority)));
        let comment = |v: Value| serde_json::from_value::<Comment>(v).unwrap();
        assert_eq!(
            emails_for_comment(&comment(json!({"is_private": true}))),
            vec![("port_comment", Audience::Authority)]
        );
        assert_eq!(emails_for_comment(&comment(json!({}))).len(), 2);
    }

    #[test]
    fn backoff_grows_to_a_cap() {
        let (b, m) = (Duration::from_secs(5), Duration::from_secs(7200));
        assert_eq!(retry_delay(1, b, m), Duration::from_secs(5));
        assert_eq!(retry_delay(2, b, m), Duration::from_secs(10));
        assert_eq!(retry_delay(5, b, m), Duration::from_secs(80));
        assert_eq!(retry_delay(40, b, m), m);
    }

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_private_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "100.128.0.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(!is_private_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn signatures() {
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn email_data_shapes() {
        let doc = PortRequest::stored_with(
            json!({"_id": "p", "name": "Move", "numbers": {"+14155551234": {}},
            "bill": {"name": "Jo", "carrier": "PACIFIC BELL", "locality": "SF"},
            "notifications": {"email": {"send_to": "jo@example.com"}}, "comments": [{"content": "x"}]}),
            json!({"port_state": "submitted"}),
        );
        let h = Happening { reason: Some("ok".into()), at: Some(63_900_000_000), ..Default::default() };
        let named = |n: &str| serde_json::from_value::<AccountDoc>(json!({ "name": n })).unwrap();
        let d = email_data(&doc, &named("Acct"), &named("Auth"), &h, chrono_tz::UTC);
        assert_eq!(d["port_request"]["numbers"][0]["e164"], "+14155551234");
        assert_eq!(d["port_request"]["customer_contact"], json!(["jo@example.com"]));
        assert_eq!(d["port_request"]["losing_carrier"], "PACIFIC BELL");
        assert_eq!(d["port_request"]["reference_number"], "-");
        assert_eq!(d["port_request"]["bill"]["address"]["street_name"], "-");
        assert_eq!(d["transition_reason"]["content"], "ok");
        assert!(d["port_request"].get("comments").is_none());
        assert_eq!(d["account"]["name"], "Acct");
    }
}
