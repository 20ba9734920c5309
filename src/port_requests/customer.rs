//! The end customer's link and what it lets the customer do: correct details, upload documents
//! and sign the LOA. Each change is one write of the request, made like every other change
//! (`changes`), as the request's owner account; the link's secret is never stored, only its
//! SHA-256, so the link mail is sent by the request that makes the link, and its outcome is
//! answered (the link itself is in the answer).

use super::changes::{self, Request, again_on_conflict, commit};
use super::numbers::Taken;
use super::{letter, load, load_in_scope};
use crate::auth::Caller;
use crate::directory::Account;
use crate::domain::customer::{
    self as cust, Access, CONSENT, DrawingError, Link, SIGNED_LOA, Signature, add_link, add_signature,
    loa_fields_sha256, open_to_customer, revoke_all, sha256_hex,
};
use crate::domain::events::What;
use crate::domain::ids::{AccountId, new_doc_id};
use crate::domain::notifications::{Happening, email_data};
use crate::domain::port_state::PortState;
use crate::domain::time::{gregorian_to_datetime, now_gregorian};
use crate::error::ApiError;
use crate::state::AppState;
use base64::Engine;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// A link just made: the only time its token exists outside the customer's hands.
pub struct NewLink {
    pub link: Link,
    pub url: String,
    /// The link mail's outcome, when a recipient was given.
    pub mailed: Option<Result<(), String>>,
    pub doc: Value,
}

fn not_open(state: PortState) -> ApiError {
    ApiError::validation(
        "port_state",
        "enum",
        json!({ "message": "A customer link can only be made while the request is unconfirmed or rejected", "cause": state }),
    )
}

fn field_error(field: &str, message: &str, value: &Value) -> ApiError {
    ApiError::validation(field, "invalid", json!({ "message": message, "value": value }))
}

/// `PUT /{id}/customer_link`: a new link (older ones revoked), mailed to `recipient` if given.
pub async fn create_link(req: &Request<'_>, account: &Account, id: &str) -> Result<NewLink, ApiError> {
    let data = changes::data_object(req.data)?;
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
    let secret = cust::new_secret();
    let (doc, link) = again_on_conflict(req, id, async || {
        let doc = load_in_scope(req.state, account, id).await?;
        super::check_if_match(req.if_match, &doc)?;
        let state = PortState::of_doc(&doc);
        if !open_to_customer(state) {
            return Err(not_open(state));
        }
        let now = now_gregorian();
        let link = Link {
            id: new_doc_id(),
            secret_sha256: sha256_hex(secret.as_bytes()),
            created: now,
            expires: now + days * cust::DAY,
            revoked: None,
            recipient: recipient.clone(),
            created_by: json!({ "account_id": req.caller.account_id(), "user_id": req.caller.owner_id }),
            submit_when_signed,
        };
        let mut new_doc = Value::clone(&doc);
        add_link(&mut new_doc, link.clone(), now);
        Ok((commit(req, new_doc, &[], Taken::default()).await?, link))
    })
    .await?;
    let url = format!("{}/customer/{}", req.state.settings.public_url, cust::token(id, &secret));
    let mailed = match &link.recipient {
        Some(to) => Some(mail_link(req.state, &doc, &link, &url, to).await),
        None => None,
    };
    Ok(NewLink { link, url, mailed, doc })
}

/// The name the customer knows their provider by: the reseller's whitelabel `company_name`,
/// else the reseller account's name.
pub async fn brand(state: &AppState, owner: &Account) -> Result<Option<String>, ApiError> {
    let reseller_id = super::reseller_of(&state.directory, owner).await?;
    let whitelabel = state.directory.whitelabel(&reseller_id).await?;
    if let Some(name) = whitelabel.as_ref().and_then(|w| w.get("company_name")).and_then(Value::as_str) {
        return Ok(Some(name.to_owned()));
    }
    let reseller = state.directory.account(&reseller_id).await?;
    Ok(reseller.and_then(|r| r.doc.get("name").and_then(Value::as_str).map(str::to_owned)))
}

/// The link mail, in the name of the reseller whose customer this is.
async fn mail_link(state: &AppState, doc: &Value, link: &Link, url: &str, to: &str) -> Result<(), String> {
    let owner_id = doc["pvt_account_id"].as_str().and_then(AccountId::from_any).ok_or("the request has no owner")?;
    let owner = state.directory.account(&owner_id).await.map_err(|e| e.to_string())?.ok_or("the owner is gone")?;
    let name = brand(state, &owner).await.map_err(|e| e.to_string())?;
    let tz = owner.own_timezone().and_then(crate::domain::schedule::parse_timezone).unwrap_or(chrono_tz::UTC);
    let provider = json!({ "name": name.unwrap_or_else(|| "Your service provider".into()) });
    let happening = Happening { at: Some(link.created), ..Happening::default() };
    let mut data = email_data(doc, &owner.doc, &provider, &happening, tz);
    let expires = gregorian_to_datetime(link.expires)
        .map(|at| at.with_timezone(&tz).format("%B %-d, %Y %H:%M %Z").to_string())
        .unwrap_or_default();
    data["link"] = json!({ "url": url, "expires": { "local": expires } });
    let rendered = state.mailer.render("port_customer_link", &data)?;
    let delivery = format!("customer_link:{}", link.id);
    let message = crate::email::Envelope { message_id: &new_doc_id(), delivery: &delivery, event: &link.id };
    state.mailer.send(&message, &[to.to_owned()], None, &rendered, vec![]).await
}

/// `DELETE /{id}/customer_link`: every live link revoked.
pub async fn revoke_links(req: &Request<'_>, account: &Account, id: &str) -> Result<Value, ApiError> {
    again_on_conflict(req, id, async || {
        let doc = load_in_scope(req.state, account, id).await?;
        super::check_if_match(req.if_match, &doc)?;
        let mut new_doc = Value::clone(&doc);
        if revoke_all(&mut new_doc, now_gregorian()) == 0 {
            return Ok(new_doc);
        }
        commit(req, new_doc, &[], Taken::default()).await
    })
    .await
}

/// What a link's holder reaches.
pub struct Opened {
    pub doc: Arc<Value>,
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
pub async fn open(state: &AppState, token: &str) -> Result<Result<Opened, Closed>, ApiError> {
    let Some((id, secret)) = cust::parse_token(token) else { return Ok(Err(Closed::Unknown)) };
    let doc = match load(state, id).await {
        Ok(doc) => doc,
        Err(ApiError::BadIdentifier(_) | ApiError::NotFound) => return Ok(Err(Closed::Unknown)),
        Err(e) => return Err(e),
    };
    let link = match cust::access(&doc, secret, now_gregorian()) {
        Access::Open(link) => link,
        Access::Gone => return Ok(Err(Closed::Gone)),
        Access::Unknown => return Ok(Err(Closed::Unknown)),
    };
    let Some(owner_id) = doc["pvt_account_id"].as_str().and_then(AccountId::from_any) else {
        return Ok(Err(Closed::Unknown));
    };
    let Some(owner) = state.directory.account(&owner_id).await? else { return Ok(Err(Closed::Unknown)) };
    Ok(Ok(Opened { doc, link, owner }))
}

/// The customer, acting as the request's owner account (no user).
fn customer_caller(opened: &Opened) -> Caller {
    Caller { account: opened.owner.clone(), owner_id: None, expires: i64::MAX }
}

/// A change made through a link: by the customer (as the owner account), or for the link's
/// maker.
struct Acting {
    caller: Caller,
    data: Value,
    reason: Option<String>,
}

impl Acting {
    fn customer(opened: &Opened, data: Value) -> Self {
        Self { caller: customer_caller(opened), data, reason: None }
    }

    fn request<'a>(&'a self, state: &'a actix_web::web::Data<AppState>, request_id: &'a str) -> Request<'a> {
        Request {
            state,
            caller: &self.caller,
            request_id,
            if_match: None,
            data: &self.data,
            reason: self.reason.clone(),
            accept_charges: false,
        }
    }
}

fn check_open(doc: &Value) -> Result<(), ApiError> {
    let state = PortState::of_doc(doc);
    if open_to_customer(state) {
        Ok(())
    } else {
        Err(ApiError::validation(
            "port_state",
            "enum",
            json!({ "message": "This request is with your provider now and can no longer be changed here", "cause": state }),
        ))
    }
}

/// The customer's corrections of the fields a customer may correct, validated as the API
/// validates them. An empty PIN keeps the stored one (the page never shows it).
pub async fn correct(
    state: &actix_web::web::Data<AppState>,
    opened: &Opened,
    form: &Map<String, Value>,
    request_id: &str,
) -> Result<Value, ApiError> {
    check_open(&opened.doc)?;
    let mut data = cust::corrections(form).map_err(ApiError::Validation)?;
    if data.pointer("/bill/pin") == Some(&Value::Null) {
        data["bill"].as_object_mut().map(|b| b.remove("pin"));
    }
    let who = Acting::customer(opened, data);
    let req = who.request(state, request_id);
    let id = opened.doc["_id"].as_str().unwrap_or_default();
    Ok(changes::patch(&req, &opened.owner, id).await?.doc)
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
    pub doc: Value,
    /// With `submit_when_signed`: the submission's outcome.
    pub submitted: Option<Result<(), ApiError>>,
}

/// Signs the LOA: the signed PDF (the letter with the drawing, the name, the date and an
/// evidence page) stored as an attachment in the same write as the evidence, `signee_name`,
/// `signing_date` and the event that mails both sides.
pub async fn sign(
    state: &actix_web::web::Data<AppState>,
    opened: &Opened,
    form: &SignForm,
    request_id: &str,
) -> Result<Signed, ApiError> {
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
    let who = Acting::customer(opened, json!({}));
    let req = who.request(state, request_id);
    let id = opened.doc["_id"].as_str().unwrap_or_default().to_owned();
    let doc = again_on_conflict(&req, &id, async || {
        let doc = load_in_scope(state, &opened.owner, &id).await?;
        check_open(&doc)?;
        let shown = letter::render(state, &opened.owner, &doc, None).await?;
        if shown.content_sha256 != form.shown_loa_content {
            return Err(field_error(
                "loa",
                "The letter changed since this page was opened: review it again, then sign",
                &Value::Null,
            ));
        }
        let now = now_gregorian();
        let mut new_doc = Value::clone(&doc);
        new_doc["signee_name"] = json!(name);
        new_doc["signing_date"] = json!(now);
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
        add_signature(&mut new_doc, signature);
        if !new_doc.get("_attachments").is_some_and(Value::is_object) {
            new_doc["_attachments"] = json!({});
        }
        new_doc["_attachments"][SIGNED_LOA] = json!({
            "content_type": "application/pdf",
            "data": base64::engine::general_purpose::STANDARD.encode(&signed_pdf),
        });
        let what = What::Signature { signer_name: name.to_owned(), link_id: opened.link.id.clone() };
        let event = changes::event(&req, &new_doc, now, what);
        commit(&req, new_doc, &[event], Taken::default()).await
    })
    .await?;
    let submitted =
        if opened.link.submit_when_signed { Some(submit_for_creator(state, opened, request_id).await) } else { None };
    Ok(Signed { doc, submitted })
}

/// Submits as the account (and user) that made the link asked.
async fn submit_for_creator(
    state: &actix_web::web::Data<AppState>,
    opened: &Opened,
    request_id: &str,
) -> Result<(), ApiError> {
    let by = &opened.link.created_by;
    let account_id = by["account_id"].as_str().and_then(AccountId::from_any).ok_or(ApiError::NotFound)?;
    let account = state.directory.account(&account_id).await?.ok_or(ApiError::NotFound)?;
    let maker = Acting {
        caller: Caller { account, owner_id: by["user_id"].as_str().map(str::to_owned), expires: i64::MAX },
        data: json!({}),
        reason: Some("Submitted when the customer signed the Letter of Authorization".into()),
    };
    let req = maker.request(state, request_id);
    let id = opened.doc["_id"].as_str().unwrap_or_default();
    changes::move_to(&req, &opened.owner, id, PortState::Submitted).await.map(|_| ())
}
