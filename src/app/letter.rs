//! The Letter of Authorization of a stored request: the same PDF for the API, the customer
//! page's preview and, with a signature, the signed letter.

use super::accounts::reseller_of;
use super::error::AppError;
use crate::domain::documents::account::AccountDoc;
use crate::domain::documents::port_request::PortRequest;
use crate::domain::loa::template_data;
use crate::domain::time::now_gregorian;
pub use crate::pdf::Letter;
use crate::pdf::LoaRenderer;
use crate::state::AppState;
use crate::store::directory::Account;
use serde_json::Value;
use std::sync::Arc;

/// The request's LOA as of now (cached by the revisions it is made from and the day).
/// `viewer`: the account the request was reached through, its owner's stand-in if the owner
/// cannot be read. `signature`: what the signed letter adds (the drawing, the evidence).
pub async fn render(
    state: &AppState,
    viewer: &Arc<Account>,
    doc: &PortRequest,
    signature: Option<&Value>,
) -> Result<Letter, AppError> {
    let owner = match doc.owner() {
        Some(owner) if *owner != viewer.id => state.directory.account(owner).await?.unwrap_or_else(|| viewer.clone()),
        _ => viewer.clone(),
    };
    let reseller_id = reseller_of(&state.directory, &owner).await?;
    let reseller = state.directory.account(&reseller_id).await?;
    let timezone = owner
        .own_timezone()
        .or_else(|| reseller.as_ref().and_then(|r| r.own_timezone()))
        .and_then(crate::domain::schedule::parse_timezone)
        .unwrap_or(chrono_tz::America::Los_Angeles);
    let reseller_doc = reseller.as_ref().map(|r| r.doc.clone()).unwrap_or_default();
    let template = state.loa.find_template(&state.directory, &reseller_id, doc.carrier()).await?;
    let now = now_gregorian();
    let rev = |r: Option<&str>| r.unwrap_or_default().to_owned();
    let day = (now / 86_400).to_string();
    let signed = signature.map(|s| crate::domain::customer::sha256_hex(s.to_string().as_bytes())).unwrap_or_default();
    let account_rev = |d: &AccountDoc| rev(d.rev.as_deref());
    let key = LoaRenderer::cache_key(
        &[
            doc.id.as_str(),
            &rev(doc.rev()),
            &account_rev(&owner.doc),
            &account_rev(&reseller_doc),
            timezone.name(),
            &day,
            &signed,
        ],
        &template,
    );
    // a cached letter costs one lookup: no HTML is made for it
    if let Some(letter) = state.loa.cached(&key).await {
        return Ok(letter);
    }
    let mut data = template_data(doc, &owner.doc, &reseller_doc, timezone, now);
    if let Some(s) = signature {
        data["signature"] = s.clone();
    }
    let mut html = LoaRenderer::render_html(&template, &data)?;
    if signature.is_some() {
        // the evidence, whatever the LOA template: the shipped one places the drawing on its
        // signature line, any template gets the evidence page
        let evidence = state.loa.evidence_html(&data)?;
        html = match html.rfind("</body>") {
            Some(at) => format!("{}{evidence}{}", &html[..at], &html[at..]),
            None => format!("{html}{evidence}"),
        };
    }
    state.loa.render_cached(key, &html).await
}
