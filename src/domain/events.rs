//! What happened to a port request, recorded in the request itself (its events), and which
//! deliveries each event causes.
//!
//! A change and its notifications are one write: the request's own save carries the event, with
//! a stable id. Delivery workers derive one delivery record per event and channel from the saved
//! document, with an id made from the event's, so whoever derives it gets the same record.

use super::desk::rejection_codes::RejectionCode;
use super::documents::fields::{List, Slot};
use super::documents::port_request::{Comment, PortRequest};
use super::notifications::{
    Audience, emails_for_comment, emails_for_number_progress, emails_for_signature, emails_for_state,
};
use super::phone_number::PhoneNumber;
use super::port_state::PortState;
use serde::{Deserialize, Serialize};

/// How many events a request keeps; older ones were delivered long ago.
pub const KEPT: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 32 hex characters, unique.
    pub id: String,
    /// The delivery queue of the instance that made the change: instances with the same queue
    /// share the deliveries.
    pub queue: String,
    /// When it happened (Gregorian seconds).
    pub at: i64,
    #[serde(flatten)]
    pub what: What,
    /// The request's webhook at the time (a later edit of the URL does not redirect it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Published on Kazoo's bus (it was on where the change was made), with what crossbar
    /// puts in the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<BusOrigin>,
    /// Kazoo's teletype mails it from the bus: this service sends none of its port mails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub teletype: bool,
}

/// Who asked for a change, as crossbar tells Kazoo's bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusOrigin {
    /// The account of the URL (`Account-ID`).
    pub account_id: String,
    /// The token's account (`Authorized-By`) and user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The API version of the URL (`Version`).
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum What {
    Transition {
        state: PortState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<PortState>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason_author: Option<String>,
        /// A rejection's code, as the catalogue said it then (its title and fix).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rejection: Option<RejectionCode>,
        /// Push the submitted request to the owner's `submitted_port_requests_url`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        carrier_push: bool,
    },
    Comment {
        /// The comment as stored.
        comment: Comment,
    },
    /// The end customer signed the LOA through a customer link.
    Signature { signer_name: String, link_id: String },
    /// One number moved on its own (per-number progress).
    NumberProgress {
        number: PhoneNumber,
        state: PortState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<PortState>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason_author: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Webhook,
    CarrierPush,
    /// Kazoo's AMQP bus.
    Bus,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
            Channel::CarrierPush => "carrier_push",
            Channel::Bus => "bus",
        }
    }

    /// The channels whose deliveries of one request go out in the order of its events.
    pub fn in_order(self) -> bool {
        !matches!(self, Channel::Email)
    }
}

/// One delivery an event causes: an email of a template to an audience, a webhook call or
/// the carrier push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel: Channel,
    /// The email template, or the webhook's event name (`transition`, `comment`).
    pub name: &'static str,
    pub audience: Option<Audience>,
}

impl Delivery {
    fn email(name: &'static str, audience: Audience) -> Self {
        Self { channel: Channel::Email, name, audience: Some(audience) }
    }

    /// The id of its delivery record: the same for everyone who derives it.
    pub fn record_id(&self, event_id: &str) -> String {
        match self.audience {
            Some(a) => format!("delivery:{event_id}:{}:{}:{}", self.channel.as_str(), self.name, a.as_str()),
            None => format!("delivery:{event_id}:{}:{}", self.channel.as_str(), self.name),
        }
    }
}

impl Event {
    /// Kazoo's emails for the event (new comments as `port_comment`; none of Kazoo's when
    /// teletype mails them), the webhook unless the comment is private, the carrier push of a
    /// submission, and the message on Kazoo's bus.
    pub fn deliveries(&self) -> Vec<Delivery> {
        let (emails, webhook, push) = match &self.what {
            What::Transition { state, carrier_push, .. } => (emails_for_state(*state), "transition", *carrier_push),
            What::Comment { comment } => {
                let hook = if comment.is_private() { "" } else { "comment" };
                (emails_for_comment(comment), hook, false)
            }
            What::Signature { .. } => (emails_for_signature(), "signature", false),
            What::NumberProgress { .. } => (emails_for_number_progress(), "number_progress", false),
        };
        let kazoos = super::bus::event_name(&self.what);
        let mut out: Vec<Delivery> = emails
            .into_iter()
            .filter(|_| !(self.teletype && kazoos.is_some()))
            .map(|(t, a)| Delivery::email(t, a))
            .collect();
        if self.webhook_url.is_some() && !webhook.is_empty() {
            out.push(Delivery { channel: Channel::Webhook, name: webhook, audience: None });
        }
        if push {
            out.push(Delivery { channel: Channel::CarrierPush, name: "carrier_push", audience: None });
        }
        if let (Some(_), Some(name)) = (&self.bus, kazoos) {
            out.push(Delivery { channel: Channel::Bus, name, audience: None });
        }
        out
    }

    /// Which endpoint a delivery reaches: the channel, and for a webhook its URL. The
    /// deliveries of one request to one endpoint go out in the order of its events.
    pub fn endpoint(&self, delivery: &Delivery) -> Option<(Channel, Option<&str>)> {
        delivery.channel.in_order().then(|| {
            (delivery.channel, if delivery.channel == Channel::Webhook { self.webhook_url.as_deref() } else { None })
        })
    }

    /// What the templates say happened.
    pub fn reason(&self) -> Option<&str> {
        match &self.what {
            What::Transition { reason, .. } | What::NumberProgress { reason, .. } => reason.as_deref(),
            What::Comment { .. } | What::Signature { .. } => None,
        }
    }
}

/// Adds events to a request about to be saved, keeping the newest `KEPT`. A list that cannot
/// be read is replaced: its events were delivered long ago or never will be.
pub fn record(doc: &mut PortRequest, new: &[Event]) {
    if new.is_empty() {
        return;
    }
    if !matches!(doc.events, Slot::Set(_)) {
        doc.events = Slot::Set(List::default());
    }
    let list = doc.events.get_or_default();
    for e in new {
        list.push(e.clone());
    }
    list.keep_last(KEPT);
}

/// The delivery record ids of every event of `queue` a request carries, with their event.
pub fn record_ids(doc: &PortRequest, queue: &str) -> Vec<(String, Event, Delivery)> {
    doc.events()
        .filter(|e| e.queue == queue)
        .flat_map(|e| e.deliveries().into_iter().map(move |d| (d.record_id(&e.id), e.clone(), d)))
        .collect()
}

/// The id of the reminder record of a request for one period: the same whoever queues it.
pub fn reminder_record_id(port_request_id: &str, period: i64) -> String {
    format!("delivery:reminder:{port_request_id}:{period}:email:port_unconfirmed:submitter")
}

/// The id of the reminder's message on Kazoo's bus for one period.
pub fn reminder_bus_record_id(port_request_id: &str, period: i64) -> String {
    format!("delivery:reminder:{port_request_id}:{period}:bus:port_unconfirmed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn transition(state: PortState, webhook: bool, push: bool) -> Event {
        Event {
            id: "e1".into(),
            queue: "q".into(),
            at: 10,
            what: What::Transition {
                state,
                previous: None,
                reason: Some("ok".into()),
                reason_author: None,
                rejection: None,
                carrier_push: push,
            },
            webhook_url: webhook.then(|| "https://hooks.example.com/x".into()),
            bus: None,
            teletype: false,
        }
    }

    #[test]
    fn a_submission_mails_both_sides_calls_the_webhook_and_pushes() {
        let ids: Vec<String> =
            transition(PortState::Submitted, true, true).deliveries().iter().map(|d| d.record_id("e1")).collect();
        assert_eq!(
            ids,
            [
                "delivery:e1:email:port_request:submitter",
                "delivery:e1:email:port_request:authority",
                "delivery:e1:email:port_request_admin:authority",
                "delivery:e1:webhook:transition",
                "delivery:e1:carrier_push:carrier_push",
            ]
        );
        assert_eq!(transition(PortState::Pending, false, false).deliveries().len(), 1);
    }

    #[test]
    fn private_comments_reach_the_authority_only_and_no_webhook() {
        let private = Event {
            id: "c".into(),
            queue: "q".into(),
            at: 1,
            what: What::Comment { comment: comment(json!({"content": "x", "is_private": true})) },
            webhook_url: Some("https://hooks.example.com".into()),
            bus: None,
            teletype: false,
        };
        assert_eq!(private.deliveries(), vec![Delivery::email("port_comment", Audience::Authority)]);
        let public = Event { what: What::Comment { comment: comment(json!({"content": "x"})) }, ..private };
        assert_eq!(public.deliveries().len(), 3);
    }

    fn comment(v: serde_json::Value) -> Comment {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn events_round_trip_through_the_document_and_old_ones_go() {
        let mut doc = PortRequest::from_stored(json!({"_id": "p"})).unwrap();
        let e = transition(PortState::Pending, true, false);
        record(&mut doc, std::slice::from_ref(&e));
        let v = doc.to_value();
        let stored = PortRequest::from_stored(v.clone()).unwrap().stored_private("events");
        assert_eq!(stored[0]["type"], "transition");
        assert_eq!(stored[0]["state"], "pending");
        let doc = PortRequest::from_stored(v).unwrap();
        assert_eq!(doc.events().cloned().collect::<Vec<_>>(), vec![e.clone()]);
        let mut doc = doc;
        let many: Vec<Event> = (0..KEPT + 5).map(|i| Event { id: format!("e{i}"), ..e.clone() }).collect();
        record(&mut doc, &many);
        let kept: Vec<Event> = doc.events().cloned().collect();
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept.last().unwrap().id, format!("e{}", KEPT + 4));
        assert!(record_ids(&doc, "other").is_empty());
        assert_eq!(record_ids(&doc, "q").len(), KEPT * 2);
    }
}
