//! The end customer's link to a port request, and the signature given through it: plain rules
//! over the request document. The I/O is in `app::customer`.
//!
//! A link is `<request id>-<secret>`: the request id finds the document by key (no view that
//! could lag), and only the SHA-256 of the secret is stored, so neither CouchDB nor a log holds
//! anything that opens the page.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::documents::fields::{List, Slot};
use super::documents::port_request::{Attachment, PortRequest};
use super::phone_number::to_e164;
use super::validation::ValidationErrors;

/// The attachment that holds the signed LOA.
pub const SIGNED_LOA: &str = "signed_loa.pdf";

pub const DEFAULT_DAYS: i64 = 7;
pub const MAX_DAYS: i64 = 30;
pub const DAY: i64 = 86_400;
/// Links a request keeps, revoked and expired ones included (the newest).
const KEPT: usize = 20;

/// The bill fields a customer may correct, as they are named in the document and the form.
pub const BILL_FIELDS: [&str; 11] = [
    "name",
    "street_number",
    "street_pre_dir",
    "street_address",
    "street_type",
    "street_post_dir",
    "locality",
    "region",
    "postal_code",
    "account_number",
    "pin",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// 32 hex characters; names the link in the evidence and in the API.
    pub id: String,
    /// SHA-256 (hex) of the secret.
    pub secret_sha256: String,
    /// Gregorian seconds.
    pub created: i64,
    pub expires: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    pub created_by: Value,
    /// Submit the request once the customer has signed.
    #[serde(default)]
    pub submit_when_signed: bool,
}

impl Link {
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked.is_none() && now < self.expires
    }

    /// What the API shows of a link (never the secret or its hash).
    pub fn view(&self, now: i64) -> Value {
        json!({
            "id": self.id,
            "created": self.created,
            "expires": self.expires,
            "revoked": self.revoked,
            "recipient": self.recipient,
            "created_by": self.created_by,
            "submit_when_signed": self.submit_when_signed,
            "active": self.is_live(now),
        })
    }
}

/// A new secret: 32 random bytes, URL-safe.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The link token as it goes into the URL.
pub fn token(request_id: &str, secret: &str) -> String {
    format!("{request_id}-{secret}")
}

/// The request id and the secret of a token; `None` for anything that cannot be one.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('-')?;
    let id_ok = id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok = secret.len() == 43 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

/// Equal without telling, by its time, how much of it matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a token opens on this request.
#[derive(Debug, PartialEq)]
pub enum Access {
    Open(Link),
    /// It was a link of this request, revoked or expired: 410.
    Gone,
    /// No such link: 404.
    Unknown,
}

pub fn access(doc: &PortRequest, secret: &str, now: i64) -> Access {
    let hash = sha256_hex(secret.as_bytes());
    match doc.links().find(|l| same(&l.secret_sha256, &hash)) {
        Some(l) if l.is_live(now) => Access::Open(l.clone()),
        Some(_) => Access::Gone,
        None => Access::Unknown,
    }
}

/// How long a new link lives: the days asked for (default 7, at most 30).
pub fn expiry_days(asked: Option<&Value>) -> Result<i64, String> {
    match asked {
        None | Some(Value::Null) => Ok(DEFAULT_DAYS),
        Some(v) => match v.as_i64() {
            Some(d) if (1..=MAX_DAYS).contains(&d) => Ok(d),
            _ => Err(format!("expires_in_days is a whole number of days from 1 to {MAX_DAYS}")),
        },
    }
}

/// The request's links, to change: a list that cannot be read is replaced (no link in it can
/// open anything).
fn links_mut(doc: &mut PortRequest) -> &mut List<Link> {
    if !matches!(doc.customer_links, Slot::Set(_)) {
        doc.customer_links = Slot::Set(List::default());
    }
    doc.customer_links.get_or_default()
}

/// Adds `link` and revokes every older live one (a new link replaces them).
pub fn add_link(doc: &mut PortRequest, link: Link, now: i64) {
    let all = links_mut(doc);
    for l in all.iter_mut() {
        if l.revoked.is_none() {
            l.revoked = Some(now);
        }
    }
    all.push(link);
    all.keep_last(KEPT);
}

/// Revokes every live link; returns how many were.
pub fn revoke_all(doc: &mut PortRequest, now: i64) -> usize {
    if !doc.links().any(|l| l.is_live(now)) {
        return 0;
    }
    let mut n = 0;
    for l in links_mut(doc).iter_mut() {
        if l.is_live(now) {
            l.revoked = Some(now);
            n += 1;
        }
    }
    n
}

/// The customer's corrections from a form: only the fields a customer may correct, trimmed;
/// an empty field removes the stored value. Returns a PATCH `data` object, checked against the
/// API's schema later, as every edit is; here only what a form adds: a BTN must be a phone
/// number, and no field is longer than 128 characters.
pub fn corrections(form: &Map<String, Value>) -> Result<Value, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let mut text = |k: &str| {
        let v = form.get(k).and_then(Value::as_str).map(str::trim)?;
        if v.chars().count() > 128 {
            errors.add(k, "maxLength", json!({ "message": "At most 128 characters", "target": 128 }));
            return None;
        }
        Some(v.to_owned())
    };
    let mut bill = Map::new();
    for f in BILL_FIELDS.iter().copied().chain(["btn"]) {
        if let Some(v) = text(&format!("bill.{f}")) {
            bill.insert(f.into(), if v.is_empty() { Value::Null } else { json!(v) });
        }
    }
    let signee = text("signee_name");
    if let Some(Value::String(btn)) = bill.get("btn")
        && to_e164(btn).is_none()
    {
        errors.add(
            "bill.btn",
            "pattern",
            json!({ "message": "Enter the billing telephone number as it is on the bill, e.g. 415 555 0100", "value": btn }),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut data = Map::new();
    if !bill.is_empty() {
        data.insert("bill".into(), Value::Object(bill));
    }
    if let Some(v) = signee {
        data.insert("signee_name".into(), if v.is_empty() { Value::Null } else { json!(v) });
    }
    Ok(Value::Object(data))
}

/// The fields the LOA shows, hashed: a signature holds for this value only.
pub fn loa_fields_sha256(doc: &PortRequest) -> String {
    fn pick<T: Serialize>(slot: &Slot<T>) -> Value {
        match slot {
            Slot::Absent => Value::Null,
            other => serde_json::to_value(other).unwrap_or(Value::Null),
        }
    }
    let numbers: Value = match &doc.numbers {
        Slot::Set(n) => json!(n.keys().collect::<Vec<_>>()),
        other => pick(other),
    };
    let shown = json!({
        "numbers": numbers,
        "bill": pick(&doc.bill),
        "name": pick(&doc.name),
        "signee_name": pick(&doc.signee_name),
        "transfer_date": pick(&doc.transfer_date),
        "winning_carrier": pick(&doc.winning_carrier),
        "reference_number": pick(&doc.reference_number),
    });
    // serde_json's maps are sorted: the same fields give the same text
    sha256_hex(shown.to_string().as_bytes())
}

/// The evidence of one signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub signer_name: String,
    pub ip: String,
    pub user_agent: String,
    /// Gregorian seconds.
    pub signed_at: i64,
    pub link_id: String,
    /// SHA-256 of the LOA PDF the signer was shown (the file the preview serves for this
    /// content).
    pub shown_loa_sha256: String,
    /// SHA-256 of the HTML that letter was made from: what the signer saw, checked at signing.
    #[serde(default)]
    pub shown_loa_content_sha256: String,
    /// SHA-256 of the signed PDF stored as `signed_loa.pdf`.
    pub signed_loa_sha256: String,
    /// What the LOA showed (`loa_fields_sha256`) when it was signed.
    pub fields_sha256: String,
    pub consent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voided: Option<Voided>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Voided {
    pub at: i64,
    pub reason: String,
}

pub const CONSENT: &str = "I agree that my typed name and drawn signature sign this Letter of Authorization \
    electronically, with the same effect as a handwritten signature.";

/// The signature that holds (the newest, unless voided).
pub fn current_signature(doc: &PortRequest) -> Option<&Signature> {
    doc.signature_list().next_back().filter(|s| s.voided.is_none())
}

/// Adds a signature, with the signed letter as an inline attachment of the same write.
pub fn add_signature(doc: &mut PortRequest, s: Signature, signed_pdf: &[u8]) {
    if !matches!(doc.signatures, Slot::Set(_)) {
        doc.signatures = Slot::Set(List::default());
    }
    doc.signatures.get_or_default().push(s);
    let letter = Attachment {
        content_type: Slot::Set("application/pdf".into()),
        data: Slot::Set(STANDARD.encode(signed_pdf)),
        ..Attachment::default()
    };
    if !matches!(doc.attachments, Slot::Set(_)) {
        doc.attachments = Slot::Set(Default::default());
    }
    doc.attachments.get_or_default().insert(SIGNED_LOA.into(), letter);
}

/// Voids the current signature of a document about to be saved if a field the LOA shows has
/// changed since it was given; the signing date goes with it (the letter is unsigned again).
/// Returns whether it did.
pub fn void_if_changed(doc: &mut PortRequest, now: i64) -> bool {
    let Some(current) = current_signature(doc) else { return false };
    if current.fields_sha256 == loa_fields_sha256(doc) {
        return false;
    }
    if let Some(last) = doc.signatures.get_mut().and_then(|l| l.iter_mut().next_back()) {
        last.voided = Some(Voided { at: now, reason: "a field the letter shows changed after it was signed".into() });
    }
    doc.signing_date.clear();
    true
}

/// What a signer's drawing must be.
#[derive(Debug, PartialEq)]
pub enum DrawingError {
    NotPng,
    TooLarge,
}

/// Largest drawn signature accepted (a canvas of a few hundred pixels is far smaller).
pub const MAX_DRAWING_BYTES: usize = 512 * 1024;

/// The PNG of a `data:image/png;base64,...` URL, as the page's canvas sends it.
pub fn drawing(data_url: &str) -> Result<Vec<u8>, DrawingError> {
    let b64 = data_url.trim().strip_prefix("data:image/png;base64,").ok_or(DrawingError::NotPng)?;
    if b64.len() > MAX_DRAWING_BYTES * 4 / 3 + 4 {
        return Err(DrawingError::TooLarge);
    }
    let png = STANDARD.decode(b64).map_err(|_| DrawingError::NotPng)?;
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") || png.len() < 67 {
        return Err(DrawingError::NotPng);
    }
    Ok(png)
}

/// A drawing as the signed LOA embeds it.
pub fn png_data_url(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", STANDARD.encode(png))
}

/// The states in which a customer may act through a link.
pub fn open_to_customer(state: super::port_state::PortState) -> bool {
    use super::port_state::PortState::*;
    matches!(state, Unconfirmed | Rejected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::port_state::PortState;

    fn link(id: &str, secret: &str, expires: i64) -> Link {
        Link {
            id: id.into(),
            secret_sha256: sha256_hex(secret.as_bytes()),
            created: 0,
            expires,
            revoked: None,
            recipient: None,
            created_by: json!({}),
            submit_when_signed: false,
        }
    }

    #[test]
    fn tokens_carry_the_request_and_a_secret() {
        let s = new_secret();
        assert_eq!(s.len(), 43);
        let id = "0123456789abcdef0123456789abcdef";
        let t = token(id, &s);
        assert_eq!(parse_token(&t), Some((id, s.as_str())));
        assert_eq!(parse_token("nope"), None);
        assert_eq!(parse_token(&format!("{id}-short")), None);
        assert_eq!(parse_token(&format!("{}-{s}", id.to_uppercase())), None);
        assert_ne!(new_secret(), s);
    }

    fn doc(v: Value) -> PortRequest {
        let mut v = v;
        v["_id"] = json!("p");
        PortRequest::from_stored(v).unwrap()
    }

    #[test]
    fn a_new_link_revokes_the_old_and_expired_links_are_gone() {
        let mut doc = doc(json!({}));
        add_link(&mut doc, link("a", "one", 100), 10);
        assert!(matches!(access(&doc, "one", 50), Access::Open(l) if l.id == "a"));
        assert_eq!(access(&doc, "one", 100), Access::Gone);
        add_link(&mut doc, link("b", "two", 200), 20);
        assert_eq!(access(&doc, "one", 50), Access::Gone);
        assert!(matches!(access(&doc, "two", 50), Access::Open(_)));
        assert_eq!(access(&doc, "three", 50), Access::Unknown);
        assert_eq!(revoke_all(&mut doc, 30), 1);
        assert_eq!(access(&doc, "two", 50), Access::Gone);
        assert_eq!(revoke_all(&mut doc, 31), 0);
        assert!(!doc.to_value().to_string().contains("\"two\""), "the secret itself is never stored");
    }

    #[test]
    fn expiry_is_seven_days_by_default_and_at_most_thirty() {
        assert_eq!(expiry_days(None), Ok(7));
        assert_eq!(expiry_days(Some(&json!(30))), Ok(30));
        assert!(expiry_days(Some(&json!(31))).is_err());
        assert!(expiry_days(Some(&json!(0))).is_err());
        assert!(expiry_days(Some(&json!("3"))).is_err());
    }

    #[test]
    fn corrections_take_only_what_a_customer_may_correct() {
        let form: Map<String, Value> = serde_json::from_value(json!({
            "bill.name": " Jo Doe ", "bill.pin": "", "bill.btn": "4155550000", "signee_name": "Jo",
            "numbers": "+14155550001", "bill.carrier": "Evil", "csrf": "x"
        }))
        .unwrap();
        assert_eq!(
            corrections(&form).unwrap(),
            json!({"bill": {"name": "Jo Doe", "pin": null, "btn": "4155550000"}, "signee_name": "Jo"})
        );
        let bad: Map<String, Value> =
            serde_json::from_value(json!({"bill.btn": "call me", "bill.name": "x".repeat(129)})).unwrap();
        let errors = corrections(&bad).unwrap_err().to_value();
        assert!(errors.get("bill.btn").is_some() && errors.get("bill.name").is_some(), "{errors}");
    }

    #[test]
    fn a_change_the_letter_shows_voids_the_signature() {
        let mut doc = doc(json!({"numbers": {"+14155550001": {}}, "bill": {"name": "Jo"}, "signing_date": 5}));
        let s = Signature {
            signer_name: "Jo".into(),
            ip: "127.0.0.1".into(),
            user_agent: "t".into(),
            signed_at: 5,
            link_id: "a".into(),
            shown_loa_sha256: "x".into(),
            shown_loa_content_sha256: "c".into(),
            signed_loa_sha256: "y".into(),
            fields_sha256: loa_fields_sha256(&doc),
            consent: CONSENT.into(),
            voided: None,
        };
        add_signature(&mut doc, s, b"%PDF");
        assert_eq!(doc.attachment(SIGNED_LOA).and_then(|a| a.content_type.as_deref()), Some("application/pdf"));
        doc.rest.insert("ui_metadata".into(), json!({"x": 1}));
        assert!(!void_if_changed(&mut doc, 9), "a field the letter does not show");
        assert!(current_signature(&doc).is_some());
        doc.bill.get_mut().unwrap().account_number.set("123".into());
        assert!(void_if_changed(&mut doc, 9));
        assert!(current_signature(&doc).is_none());
        assert_eq!(doc.signature_list().next().unwrap().voided.as_ref().unwrap().at, 9);
        assert!(doc.signing_date.is_absent());
        assert!(!void_if_changed(&mut doc, 10), "voided once");
    }

    #[test]
    fn drawings_are_png_data_urls() {
        let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &[0u8; 80]].concat();
        let url = png_data_url(&png);
        assert_eq!(drawing(&url).unwrap(), png);
        assert_eq!(drawing("data:image/svg+xml;base64,PHN2Zz4="), Err(DrawingError::NotPng));
        assert_eq!(
            drawing(&png_data_url(b"GIF89a-not-a-png-at-all-and-long-enough-to-pass-the-length-check!!")),
            Err(DrawingError::NotPng)
        );
        let huge = format!("data:image/png;base64,{}", "A".repeat(MAX_DRAWING_BYTES * 2));
        assert_eq!(drawing(&huge), Err(DrawingError::TooLarge));
    }

    #[test]
    fn customers_act_while_the_request_is_theirs_to_fix() {
        assert!(open_to_customer(PortState::Unconfirmed));
        assert!(open_to_customer(PortState::Rejected));
        assert!(!open_to_customer(PortState::Submitted));
    }
}
