//! Kazoo's notification events on its AMQP bus (`kazoo-4.3-notifications.md`): which event a
//! change publishes, and the message as `kapi_notifications:<event>_v/1` takes it. Plain
//! functions; `channels::bus` publishes.

use super::documents::port_request::PortRequest;
use super::events::{BusOrigin, Event, What};
use super::port_state::PortState;
use serde_json::{Map, Value, json};

/// The exchange Kazoo's notifications go through (a topic exchange, not durable).
pub const EXCHANGE: &str = "notifications";
/// The exchange of direct answers (teletype's `notify_update`), routed by queue name.
pub const TARGETED: &str = "targeted";

/// Kazoo's event for what happened (`cb_port_requests:port_state_change_notify` and
/// `send_port_comment_notification`); none for what Kazoo does not publish.
pub fn event_name(what: &What) -> Option<&'static str> {
    match what {
        What::Transition { state, .. } => match state {
            PortState::Submitted => Some("port_request"),
            PortState::Pending => Some("port_pending"),
            PortState::Scheduled => Some("port_scheduled"),
            PortState::Completed => Some("ported"),
            PortState::Rejected => Some("port_rejected"),
            PortState::Canceled => Some("port_cancel"),
            PortState::Unconfirmed => None,
        },
        What::Comment { .. } => Some("port_comment"),
        What::Signature { .. } | What::NumberProgress { .. } => None,
    }
}

/// `notifications.number.<event>`.
pub fn routing_key(event: &str) -> String {
    format!("notifications.number.{event}")
}

/// What every message of this publisher carries (`kz_api`'s defaults).
#[derive(Debug, Clone)]
pub struct Publisher {
    pub app_name: String,
    pub app_version: String,
    pub node: String,
    /// The queue teletype answers to (`Server-ID`), empty when no answer is wanted.
    pub server_id: String,
}

fn defaults(out: &mut Map<String, Value>, publisher: &Publisher, event: &str, msg_id: &str) {
    for (k, v) in [
        ("App-Name", publisher.app_name.as_str()),
        ("App-Version", publisher.app_version.as_str()),
        ("Node", publisher.node.as_str()),
        ("Server-ID", publisher.server_id.as_str()),
        ("Msg-ID", msg_id),
        ("Event-Category", "notification"),
        ("Event-Name", event),
    ] {
        out.insert(k.into(), json!(v));
    }
}

/// The message of `event` (one of the request's events), as crossbar publishes it: the state
/// events with `Version`, `Authorized-By` and `Reason` (an object, only for a reason given),
/// a comment with the comment itself (its author defaulted to the caller).
pub fn message(event: &Event, name: &str, doc: &PortRequest, msg_id: &str, publisher: &Publisher) -> Value {
    let origin = event.bus.clone().unwrap_or_else(|| BusOrigin {
        account_id: doc.owner().map(|a| a.to_string()).unwrap_or_default(),
        authorized_by: None,
        user_id: None,
        version: "v2".into(),
    });
    let mut out = Map::new();
    defaults(&mut out, publisher, name, msg_id);
    out.insert("Account-ID".into(), json!(origin.account_id));
    out.insert("Port-Request-ID".into(), json!(doc.id));
    if let Some(by) = &origin.authorized_by {
        out.insert("Authorized-By".into(), json!(by));
    }
    match &event.what {
        What::Comment { comment } => {
            let mut c = serde_json::to_value(comment).unwrap_or_else(|_| json!({}));
            if let Some(o) = c.as_object_mut() {
                if let Some(user) = origin.user_id.as_ref().filter(|_| !o.contains_key("user_id")) {
                    o.insert("user_id".into(), json!(user));
                }
                if let Some(by) = origin.authorized_by.as_ref().filter(|_| !o.contains_key("account_id")) {
                    o.insert("account_id".into(), json!(by));
                }
            }
            out.insert("Comment".into(), c);
        }
        _ => {
            out.insert("Version".into(), json!(origin.version));
            if let Some(reason) = event.reason().filter(|r| !r.is_empty()) {
                let mut r = json!({ "content": reason, "timestamp": event.at });
                if let Some(u) = &origin.user_id {
                    r["user_id"] = json!(u);
                }
                if let Some(a) = &origin.authorized_by {
                    r["account_id"] = json!(a);
                }
                if let What::Transition { rejection: Some(code), .. } = &event.what {
                    r["reason_code"] = json!(code.code);
                    r["rejection"] = json!(code);
                }
                out.insert("Reason".into(), r);
            }
        }
    }
    Value::Object(out)
}

/// The reminder of an unconfirmed request (`kt_port_requests`'s `port_unconfirmed`).
pub fn reminder(doc: &PortRequest, msg_id: &str, publisher: &Publisher) -> Value {
    let mut out = Map::new();
    defaults(&mut out, publisher, "port_unconfirmed", msg_id);
    out.insert("Account-ID".into(), json!(doc.owner().map(|a| a.to_string()).unwrap_or_default()));
    out.insert("Port-Request-ID".into(), json!(doc.id));
    Value::Object(out)
}

/// A port authority's daily digest (this service's own event: `digest` is its template data).
pub fn digest(digest: &Value, authority: &str, msg_id: &str, publisher: &Publisher) -> Value {
    let mut out = Map::new();
    defaults(&mut out, publisher, super::desk::digest::EVENT, msg_id);
    out.insert("Account-ID".into(), json!(authority));
    out.insert("Digest".into(), digest.get("digest").cloned().unwrap_or_default());
    Value::Object(out)
}

/// teletype's answer to a publication (`notify_update`), when it is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The `Msg-ID` of the publication it answers.
    pub msg_id: String,
    /// `completed`, `disabled`, `failed`, `ignored` or `pending`.
    pub status: String,
    pub failure: Option<String>,
}

pub fn read_update(body: &[u8]) -> Option<Update> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("Event-Name").and_then(Value::as_str) != Some("notify_update") {
        return None;
    }
    Some(Update {
        msg_id: v.get("Msg-ID")?.as_str()?.to_owned(),
        status: v.get("Status")?.as_str()?.to_owned(),
        failure: v.get("Failure-Message").and_then(Value::as_str).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::documents::port_request::Comment;

    fn publisher() -> Publisher {
        Publisher { app_name: "a".into(), app_version: "1".into(), node: "n".into(), server_id: String::new() }
    }

    fn event(what: What, origin: Option<BusOrigin>) -> Event {
        Event {
            id: "e".into(),
            queue: "q".into(),
            at: 63_900_000_000,
            what,
            webhook_url: None,
            bus: origin,
            teletype: false,
        }
    }

    #[test]
    fn state_and_comment_messages() {
        let doc =
            PortRequest::stored_with(json!({"_id": "p"}), json!({"account_id": "0123456789abcdef0123456789abcdef"}));
        let origin = BusOrigin {
            account_id: "parent".into(),
            authorized_by: Some("auth".into()),
            user_id: Some("u".into()),
            version: "v2".into(),
        };
        let rejected = What::Transition {
            state: PortState::Rejected,
            previous: None,
            reason: Some("bad bill".into()),
            reason_author: None,
            rejection: None,
            carrier_push: false,
        };
        assert_eq!(event_name(&rejected), Some("port_rejected"));
        let m = message(&event(rejected, Some(origin.clone())), "port_rejected", &doc, "m1", &publisher());
        assert_eq!(m["Event-Name"], "port_rejected");
        assert_eq!(m["Account-ID"], "parent");
        assert_eq!(
            m["Reason"],
            json!({"content": "bad bill", "timestamp": 63_900_000_000_i64, "user_id": "u", "account_id": "auth"})
        );
        assert_eq!(m["Version"], "v2");
        let comment: Comment = serde_json::from_value(json!({"content": "hi", "timestamp": 1})).unwrap();
        let m = message(&event(What::Comment { comment }, Some(origin)), "port_comment", &doc, "m2", &publisher());
        assert_eq!(m["Comment"], json!({"content": "hi", "timestamp": 1, "user_id": "u", "account_id": "auth"}));
        assert!(m.get("Reason").is_none() && m.get("Version").is_none());
        assert_eq!(routing_key("port_comment"), "notifications.number.port_comment");
    }

    #[test]
    fn teletypes_answers() {
        let u = read_update(br#"{"Event-Name":"notify_update","Msg-ID":"m","Status":"failed","Failure-Message":"x"}"#);
        assert_eq!(u, Some(Update { msg_id: "m".into(), status: "failed".into(), failure: Some("x".into()) }));
        assert_eq!(read_update(br#"{"Event-Name":"other"}"#), None);
    }
}
