//! The end customer's link and what it lets the customer do: correct details, upload documents
//! and sign the LOA. Each change is one write of the request through the one write path, made
//! as the request's owner account (no user); the link's secret is never stored, only its
//! SHA-256, so the link mail is sent by the change that makes the link, and its outcome is
//! answered (the link itself is in the answer).

use super::accounts::reseller_of;
use super::attachments::{self, Upload};
use super::error::AppError;
use super::letter;
use super::requests::{self, MoveAsk, data_object};
use super::write::{Again, Ask, Who, Write, change, load_in_scope};
use crate::channels::email::Outgoing;
use crate::domain::customer::{
    self as cust, Access, CONSENT, DrawingError, Link, Signature, add_link, add_signature, loa_fields_sha256,
    open_to_customer, revoke_all, sha256_hex,
};
use crate::domain::documents::port_request::PortRequest;
use crate::domain::events::What;
use crate::domain::ids::{AccountId, PortRequestId, new_doc_id};
use crate::domain::notifications::{Happening, email_data};
use crate::domain::port_state::PortState;
use crate::domain::time::{gregorian_to_datetime, now_gregorian};
use crate::state::AppState;
use crate::store::directory::Account;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// A link just made: the only time its token exists outside the customer's hands.
pub struct NewLink {
    pub link: Link,
    pub url: String,
    /// The link mail's outcome, when a recipient was given.
    pub mailed: Option<Result<(), String>>,
    pub doc: Arc<PortRequest>,
}

fn field_error(field: &str, message: &str, value: &Value) -> AppError {
    AppError::field(field, "invalid", json!({ "message": message, "value": value }))
}

/// What a new link is asked with: `{expires_in_days, recipient, submit_when_signed}`.
struct LinkAsk {
    days: i64,
    recipient: Option<String>,
    submit_when_signed: bool,
}

fn link_ask(data: &Value) -> Result<LinkAsk, AppError> {
    let data = data_object(data)?;
    let days = cust::expiry_days(data.get("expires_in_days"))
        .map_err(|m| field_error("expires_in_days", &m, &data["expires_in_days"]))?;
    let recipient = match data.get("recipient") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.trim().parse::<lettre::Address>().is_ok() => Some(r.trim().to_owned()),
        Some(other) => return Err(field_error("recipient", "an email address", other)),
    };
    let submit_when_signed = match data.get("submit_when_signed") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(field_error("submit_when_signed", "true or false", other)),
    };
    Ok(LinkAsk { days, recipient, submit_when_signed })
}

/// `PUT /{id}/customer_link`: a new link (older ones revoked), mailed to the recipient if one
/// is given.
pub async fn create_link(ask: &Ask<'_>, id: &PortRequestId, data: &Value) -> Result<NewLink, AppError> {
    let asked = link_ask(data)?;
    let secret = cust::new_secret();
    let changed = change(ask, id, Again::OnConflict, async |doc, _| {
        let state = doc.state()?;
        if !open_to_customer(state) {
            return Err(AppError::NotOpenToCustomer(state));
        }
        let now = now_gregorian();
        let link = Link {
            id: new_doc_id(),
            secret_sha256: sha256_hex(secret.as_bytes()),
            created: now,
            expires: now + asked.days * cust::DAY,
            revoked: None,
            recipient: asked.recipient.clone(),
            created_by: json!({ "account_id": ask.who.account_id(), "user_id": ask.who.user_id() }),
            submit_when_signed: asked.submit_when_signed,
        };
        let mut new_doc = PortRequest::clone(doc);
        add_link(&mut new_doc, link.clone(), now);
        Ok((Some(Write::Document { doc: new_doc, events: vec![] }), link))
    })
    .await?;
    let (doc, link) = (changed.doc, changed.outcome);
    let url = format!("{}/customer/{}", ask.state.settings.public_url, cust::token(id.as_str(), &secret));
    let mailed = match &link.recipient {
        Some(to) => Some(mail_link(ask.state, &doc, &link, &url, to).await),
        None => None,
    };
    Ok(NewLink { link, url, mailed, doc })
}

/// `DELETE /{id}/customer_link`: every live link revoked.
pub async fn revoke_links(ask: &Ask<'_>, id: &PortRequestId) -> Result<Arc<PortRequest>, AppError> {
    let changed = change(ask, id, Again::OnConflict, async |doc, _| {
        let mut new_doc = PortRequest::clone(doc);
        if revoke_all(&mut new_doc, now_gregorian()) == 0 {
            return Ok((None, ()));
        }
        Ok((Some(Write::Document { doc: new_doc, events: vec![] }), ()))
    })
    .await?;
    Ok(changed.doc)
}

/// The name the customer knows their provider by: the reseller's whitelabel `company_name`,
/// else the reseller account's name.
pub async fn brand(state: &AppState, owner: &Account) -> Result<Option<String>, AppError> {
    let reseller_id = reseller_of(&state.directory, owner).await?;
    let whitelabel = state.directory.whitelabel(&reseller_id).await?;
    if let Some(name) = whitelabel.as_ref().and_then(|w| w.company_name.get()) {
        return Ok(Some(name.clone()));
    }
    let reseller = state.directory.account(&reseller_id).await?;
    Ok(reseller.and_then(|r| r.name().map(str::to_owned)))
}

/// The link mail, in the name of the reseller whose customer this is.
async fn mail_link(state: &AppState, doc: &PortRequest, link: &Link, url: &str, to: &str) -> Result<(), String> {
    let owner_id = doc.owner().ok_or("the request has no owner")?;
    let owner = state.directory.account(owner_id).await.map_err(|e| e.to_string())?.ok_or("the owner is gone")?;
    let name = brand(state, &owner).await.map_err(|e| e.to_string())?;
    let tz = owner.own_timezone().and_then(crate::domain::schedule::parse_timezone).unwrap_or(chrono_tz::UTC);
    let mut provider = crate::domain::documents::account::AccountDoc::default();
    provider.name.set(name.unwrap_or_else(|| "Your service provider".into()));
    let happening = Happening { at: Some(link.created), ..Happening::default() };
    let mut data = email_data(doc, &owner.doc, &provider, &happening, tz);
    let expires = gregorian_to_datetime(link.expires)
        .map(|at| at.with_timezone(&tz).format("%B %-d, %Y %H:%M %Z").to_string())
        .unwrap_or_default();
    data["link"] = json!({ "url": url, "expires": { "local": expires } });
    let rendered = state.mailer.render("port_customer_link", &data)?;
    let delivery = format!("customer_link:{}", link.id);
    let message = crate::channels::email::Envelope { message_id: &new_doc_id(), delivery: &delivery, event: &link.id };
    let to = [to.to_owned()];
    let outgoing =
        Outgoing { to: &to, cc: &[], bcc: &[], from: None, reply_to: None, rendered: &rendered, files: vec![] };
    state.mailer.send(&message, outgoing).await
}

/// What a link's holder reaches.
pub struct Opened {
    pub doc: Arc<PortRequest>,
    pub link: Link,
    pub owner: Arc<Account>,
}

/// Why a link opens nothing.
#[derive(Debug, PartialEq)]
pub enum Closed {
    /// Not a link of any request (or the request is gone): 404.
    Unknown,
    /// Revoked or expired: 410.
    Gone,
}

/// Opens a link on CouchDB's current revision of its request.
pub async fn open(state: &AppState, token: &str) -> Result<Result<Opened, Closed>, AppError> {
    let Some((id, secret)) = cust::parse_token(token) else { return Ok(Err(Closed::Unknown)) };
    let Some(doc) = state.port_requests.load(id).await? else { return Ok(Err(Closed::Unknown)) };
    let link = match cust::access(&doc, secret, now_gregorian()) {
        Access::Open(link) => link,
        Access::Gone => return Ok(Err(Closed::Gone)),
        Access::Unknown => return Ok(Err(Closed::Unknown)),
    };
    let Some(owner_id) = doc.owner() else { return Ok(Err(Closed::Unknown)) };
    let Some(owner) = state.directory.account(owner_id).await? else { return Ok(Err(Closed::Unknown)) };
    Ok(Ok(Opened { doc, link, owner }))
}

impl Opened {
    /// The customer: the request's owner account, no user.
    pub fn customer(&self) -> Who {
        Who::account(self.owner.clone(), None)
    }
}

fn check_open(doc: &PortRequest) -> Result<(), AppError> {
    let state = doc.state()?;
    if open_to_customer(state) { Ok(()) } else { Err(AppError::NotOpenToCustomer(state)) }
}

/// The customer's corrections of the fields a customer may correct, validated as the API
/// validates them. An empty PIN keeps the stored one (the page never shows it).
pub async fn correct(
    state: &Arc<AppState>,
    opened: &Opened,
    form: &Map<String, Value>,
    request_id: &str,
) -> Result<Arc<PortRequest>, AppError> {
    check_open(&opened.doc)?;
    let mut data = cust::corrections(form).map_err(AppError::Invalid)?;
    if data.pointer("/bill/pin") == Some(&Value::Null) {
        data["bill"].as_object_mut().map(|b| b.remove("pin"));
    }
    let who = opened.customer();
    let ask = Ask { state, who: &who, through: &opened.owner, request_id, if_match: None };
    Ok(requests::patch(&ask, &opened.doc.id, &data).await?.doc)
}

/// A customer's upload (the request must still be theirs to complete).
pub async fn upload(
    state: &Arc<AppState>,
    opened: &Opened,
    upload: Upload,
    request_id: &str,
) -> Result<String, AppError> {
    check_open(&opened.doc)?;
    let who = opened.customer();
    let ask = Ask { state, who: &who, through: &opened.owner, request_id, if_match: None };
    let name = upload.name.clone();
    attachments::attach(&ask, &opened.doc.id, upload).await?;
    Ok(name)
}

/// What the signer sent.
pub struct SignForm {
    pub signer_name: String,
    pub drawing: String,
    pub consent: bool,
    /// The content hash of the LOA the page showed (`letter::Letter`).
    pub shown_loa_content: String,
    pub ip: String,
    pub user_agent: String,
}

/// The outcome of a signature.
pub struct Signed {
    pub doc: Arc<PortRequest>,
    /// With `submit_when_signed`: the submission's outcome.
    pub submitted: Option<Result<(), AppError>>,
}

/// Signs the LOA: the signed PDF (the letter with the drawing, the name, the date and an
/// evidence page) stored as an attachment in the same write as the evidence, `signee_name`,
/// `signing_date` and the event that mails both sides.
pub async fn sign(
    state: &Arc<AppState>,
    opened: &Opened,
    form: &SignForm,
    request_id: &str,
) -> Result<Signed, AppError> {
    let name = form.signer_name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(field_error("signer_name", "Type your full name (at most 128 characters)", &json!(name)));
    }
    if !form.consent {
        return Err(field_error("consent", "Tick the box to agree to sign electronically", &json!(false)));
    }
    let png = cust::drawing(&form.drawing).map_err(|e| {
        let why = match e {
            DrawingError::NotPng => "Draw your signature in the box",
            DrawingError::TooLarge => "The drawing is too large",
        };
        field_error("signature", why, &Value::Null)
    })?;
    let who = opened.customer();
    let ask = Ask { state, who: &who, through: &opened.owner, request_id, if_match: None };
    let changed = change(&ask, &opened.doc.id, Again::OnConflict, async |doc, _| {
        check_open(doc)?;
        let shown = letter::render(state, &opened.owner, doc, None).await?;
        if shown.content_sha256 != form.shown_loa_content {
            return Err(AppError::LetterChanged);
        }
        let now = now_gregorian();
        let mut new_doc = PortRequest::clone(doc);
        new_doc.signee_name.set(name.to_owned());
        new_doc.signing_date.set(now);
        let signed_at_text = gregorian_to_datetime(now).map(|t| t.to_rfc3339()).unwrap_or_default();
        let shown_sha = sha256_hex(&shown.pdf);
        let evidence_view = json!({
            "image": cust::png_data_url(&png),
            "signer_name": name,
            "signed_at_text": signed_at_text,
            "ip": form.ip,
            "user_agent": form.user_agent,
            "link_id": opened.link.id,
            "shown_loa_sha256": shown_sha,
            "shown_loa_content_sha256": shown.content_sha256,
            "consent": CONSENT,
        });
        let signed_pdf = letter::render(state, &opened.owner, &new_doc, Some(&evidence_view)).await?.pdf;
        let signature = Signature {
            signer_name: name.to_owned(),
            ip: form.ip.clone(),
            user_agent: form.user_agent.clone(),
            signed_at: now,
            link_id: opened.link.id.clone(),
            shown_loa_sha256: shown_sha,
            shown_loa_content_sha256: shown.content_sha256.clone(),
            signed_loa_sha256: sha256_hex(&signed_pdf),
            fields_sha256: loa_fields_sha256(&new_doc),
            consent: CONSENT.to_owned(),
            voided: None,
        };
        add_signature(&mut new_doc, signature, &signed_pdf);
        let what = What::Signature { signer_name: name.to_owned(), link_id: opened.link.id.clone() };
        let event = ask.event(&new_doc, now, what);
        Ok((Some(Write::Document { doc: new_doc, events: vec![event] }), ()))
    })
    .await?;
    let submitted =
        if opened.link.submit_when_signed { Some(submit_for_creator(state, opened, request_id).await) } else { None };
    Ok(Signed { doc: changed.doc, submitted })
}

/// Submits as the account (and user) that made the link asked.
async fn submit_for_creator(state: &Arc<AppState>, opened: &Opened, request_id: &str) -> Result<(), AppError> {
    let by = &opened.link.created_by;
    let account_id = by["account_id"].as_str().and_then(AccountId::from_any).ok_or(AppError::Forbidden)?;
    let account = state.directory.account(&account_id).await?.ok_or(AppError::Forbidden)?;
    let maker = Who::account(account, by["user_id"].as_str().map(str::to_owned));
    let ask = Ask { state, who: &maker, through: &opened.owner, request_id, if_match: None };
    let asked = MoveAsk {
        data: &json!({}),
        reason: Some("Submitted when the customer signed the Letter of Authorization".into()),
        accept_charges: false,
        reason_code: None,
    };
    requests::move_to(&ask, &opened.doc.id, PortState::Submitted, &asked).await.map(|_| ())
}

/// The request a link opened, as it is now (after a refused change, to show it again).
pub async fn reload(state: &AppState, opened: &Opened) -> Result<Opened, AppError> {
    let doc = load_in_scope(state, &opened.owner.id, &opened.doc.id).await?;
    Ok(Opened { doc, link: opened.link.clone(), owner: opened.owner.clone() })
}
