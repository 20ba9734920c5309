//! The data Kazoo's teletype gives the port templates (`kazoo-4.3-port-features.md` 3.4), for
//! the bodies and subjects operators keep in CouchDB: `port_request` (the request as its
//! templates know it, with `transition_reason`, `comment` and `port_authority` in it),
//! `account`, `system` and, for a comment, `user`. Dates are `{utc, local, timestamp,
//! timezone}`, `utc` and `local` as `YYYY-MM-DD HH:MM:SS` texts the `date` filter reads.

use super::documents::account::{AccountDoc, UserDoc};
use super::documents::port_request::PortRequest;
use super::notifications::Happening;
use super::port_state::PortState;
use base64::Engine;
use chrono_tz::Tz;
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

/// Who sends: the host and node names teletype puts in `system`.
#[derive(Debug, Clone)]
pub struct System {
    pub hostname: String,
    pub node: String,
}

fn encoded(name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Md5::digest(name.as_bytes()))
}

impl System {
    fn params(&self) -> Value {
        json!({
            "hostname": self.hostname, "encoded_hostname": encoded(&self.hostname),
            "node": self.node, "encoded_node": encoded(&self.node),
        })
    }
}

/// A date as teletype gives it (`teletype_util:fix_timestamp`): the times for the `date`
/// filter to format.
pub fn date(gregorian: Option<i64>, tz: Tz) -> Value {
    const PLAIN: &str = "%Y-%m-%d %H:%M:%S";
    super::notifications::date_as(gregorian, tz, PLAIN, PLAIN)
}

/// `{name, realm, id, language, timezone, parent_*}` of an account (`account_params`).
pub fn account_params(account: &AccountDoc, parent: Option<&AccountDoc>) -> Value {
    let mut out = Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            out.insert(k.into(), json!(v));
        }
    };
    put("name", account.name.text());
    put("realm", account.realm.text());
    put("id", account.id.text());
    put("language", account.rest.get("language").and_then(Value::as_str));
    put("timezone", account.timezone.text());
    if let Some(p) = parent {
        put("parent_name", p.name.text());
        put("parent_realm", p.realm.text());
        put("parent_id", p.id.text());
    }
    Value::Object(out)
}

/// `{first_name, last_name, email, timezone}` of a user (`user_params`).
pub fn user_params(user: &UserDoc) -> Value {
    json!({
        "first_name": user.first_name.text(), "last_name": user.last_name.text(),
        "email": user.email.text(), "timezone": user.rest.get("timezone"),
    })
}

fn dash(v: Option<&str>) -> Value {
    json!(v.filter(|s| !s.is_empty()).unwrap_or("-"))
}

/// The accounts a mail is about.
pub struct Accounts<'a> {
    /// The request's account, and its parent.
    pub account: &'a AccountDoc,
    pub parent: Option<&'a AccountDoc>,
    /// The port authority, and its parent.
    pub authority: &'a AccountDoc,
    pub authority_parent: Option<&'a AccountDoc>,
}

/// Teletype's data for a port mail (`teletype_port_utils:port_request_data`).
pub fn data(doc: &PortRequest, accounts: &Accounts<'_>, happening: &Happening, tz: Tz, system: &System) -> Value {
    let mut pr = doc.public_fields();
    for gone in ["comments", "ui_metadata", "ui_flags"] {
        pr.remove(gone);
    }
    pr.insert("id".into(), json!(doc.id));
    let numbers = match doc.state() {
        Ok(PortState::Completed) => doc.ported(),
        _ => doc.numbers_shown(),
    };
    pr.insert("numbers".into(), json!(numbers.keys().collect::<Vec<_>>()));
    let stored_bill = pr.get("bill").and_then(Value::as_object).cloned().unwrap_or_default();
    for (k, v) in &stored_bill {
        pr.insert(format!("bill_{k}"), v.clone());
    }
    let text = |k: &str| stored_bill.get(k).and_then(Value::as_str);
    pr.insert(
        "bill".into(),
        json!({
            "account": { "number": dash(text("account_number")), "pin": dash(text("pin")), "btn": dash(text("btn")) },
            "address": {
                "name": dash(text("name")), "street_pre_dir": dash(text("street_pre_dir")),
                "street_number": dash(text("street_number")), "street_name": dash(text("street_address")),
                "street_type": dash(text("street_type")), "street_post_dir": dash(text("street_post_dir")),
                "extended_address": dash(text("extended_address")), "locality": dash(text("locality")),
                "region": dash(text("region")), "postal_code": dash(text("postal_code")),
            },
        }),
    );
    pr.insert("reference_number".into(), dash(doc.reference_number.text()));
    pr.insert("port_state".into(), doc.shown_state());
    pr.insert("customer_contact".into(), json!(doc.send_to()));
    let carrier = text("carrier")
        .or_else(|| pr.get("carrier").and_then(Value::as_str))
        .or_else(|| pr.get("billing").and_then(|b| b.get("carrier")).and_then(Value::as_str))
        .or_else(|| pr.get("bill_carrier").and_then(Value::as_str))
        .unwrap_or("unknown carrier")
        .to_owned();
    pr.insert("losing_carrier".into(), json!(carrier));
    if doc.winning_carrier.text().is_none() {
        pr.insert("winning_carrier".into(), json!("unknown carrier"));
    }
    let local = |v: &Value| v.get("local").cloned().unwrap_or(Value::Null);
    let created = date(doc.created.copied(), tz);
    let transfer = date(doc.transfer_date.copied(), tz);
    let scheduled = date(doc.scheduled_date.copied(), tz);
    pr.insert("created".into(), created);
    pr.insert("transfer_date".into(), local(&transfer));
    pr.insert("requested_port_date".into(), transfer);
    pr.insert("scheduled_date".into(), local(&scheduled));
    pr.insert("port_scheduled_date".into(), scheduled);
    pr.insert("signing_date".into(), date(doc.signing_date.copied(), tz));
    // Kazoo reads the completion's time from a key that is never there: it is "now"
    pr.insert("ported_date".into(), date(happening.at, tz));
    pr.insert("port_authority".into(), account_params(accounts.authority, accounts.authority_parent));
    if let Some(reason) = happening.reason.as_deref().filter(|r| !r.is_empty()) {
        pr.insert(
            "transition_reason".into(),
            json!({
                "content": reason,
                "date": date(happening.at, tz),
                "user": { "author": happening.reason_author.clone().unwrap_or_else(|| "An agent".into()) },
                "rejection": happening.rejection,
            }),
        );
    }
    if let Some(c) = &happening.comment {
        let when = date(c.timestamp.copied(), tz);
        let mut comment = serde_json::to_value(c).unwrap_or_default();
        if let Some(o) = comment.as_object_mut() {
            o.insert("timestamp".into(), local(&when));
            o.insert("date".into(), when);
            o.insert("author".into(), json!(c.author.as_deref().unwrap_or("An agent")));
        }
        pr.insert("comment".into(), comment);
    }
    json!({
        "port_request": Value::Object(pr),
        "account": account_params(accounts.account, accounts.parent),
        "system": system.params(),
    })
}

/// Teletype's default subject of each port template (its modules' `TEMPLATE_SUBJECT`), used
/// when a stored document has none.
pub fn default_subject(template: &str) -> Option<&'static str> {
    Some(match template {
        "port_request" => "Number port request for account '{{account.name|safe}}'",
        "port_request_admin" => "Number port request for account '{{account.name|safe}}' (Details)",
        "port_pending" => "Port request: '{{port_request.name|safe}}' is now pending",
        "port_scheduled" => "Port request '{{port_request.name|safe}}' has been scheduled",
        "ported" => "Number port request '{{port_request.name|safe}}' completed",
        "port_rejected" => "Port request '{{port_request.name|safe}}' has been rejected",
        "port_cancel" => "Port request '{{port_request.name|safe}}' has been canceled",
        "port_comment" => "New comment for port request '{{port_request.name|safe}}'",
        "port_unconfirmed" => "Unfinished port request '{{port_request.name|safe}}' reminder",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teletype_shapes() {
        let doc = PortRequest::stored_with(
            json!({"_id": "p", "name": "Move", "numbers": {"+14155551234": {}}, "ui_flags": {},
            "bill": {"name": "Jo", "carrier": "PACIFIC BELL", "locality": "SF", "street_address": "Main"},
            "notifications": {"email": {"send_to": "jo@example.com"}}, "comments": [{"content": "x"}],
            "transfer_date": 63_900_000_000_i64}),
            json!({"port_state": "submitted", "created": 63_900_000_000_i64}),
        );
        let named = |n: &str| serde_json::from_value::<AccountDoc>(json!({ "name": n, "_id": "a1" })).unwrap();
        let (acct, auth) = (named("Acct"), named("Auth"));
        let accounts = Accounts { account: &acct, parent: None, authority: &auth, authority_parent: None };
        let h = Happening { reason: Some("ok".into()), at: Some(63_900_000_000), ..Default::default() };
        let sys = System { hostname: "h".into(), node: "n".into() };
        let d = data(&doc, &accounts, &h, chrono_tz::America::Los_Angeles, &sys);
        let pr = &d["port_request"];
        assert_eq!(pr["numbers"], json!(["+14155551234"]));
        assert_eq!(pr["bill"]["address"]["street_name"], "Main");
        assert_eq!(pr["bill"]["address"]["region"], "-");
        assert_eq!(pr["bill_name"], "Jo");
        assert_eq!(pr["losing_carrier"], "PACIFIC BELL");
        assert_eq!(pr["winning_carrier"], "unknown carrier");
        assert_eq!(pr["customer_contact"], json!(["jo@example.com"]));
        assert_eq!(pr["requested_port_date"]["local"], "2024-11-28 00:00:00");
        assert_eq!(pr["requested_port_date"]["utc"], "2024-11-28 08:00:00");
        assert_eq!(pr["transfer_date"], "2024-11-28 00:00:00");
        assert_eq!(pr["transition_reason"]["user"]["author"], "An agent");
        assert_eq!(pr["port_authority"]["name"], "Auth");
        assert!(pr.get("comments").is_none() && pr.get("ui_flags").is_none());
        assert_eq!(d["account"]["name"], "Acct");
        assert_eq!(d["system"]["node"], "n");
    }
}
