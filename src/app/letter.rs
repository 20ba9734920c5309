//! The Letter of Authorization of a stored request: the same PDF for the API, the customer
//! page's preview and, with a signature, the signed letter.

use super::accounts::reseller_of;
use super::error::AppError;
use crate::domain::documents::account::AccountDoc;
use crate::domain::documents::port_request::PortRequest;
use crate::domain::loa::{kazoo_data, template_data};
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
    // Kazoo names a carrier's template after the request's own `carrier`, ours after the bill's
    let carrier = doc.public_fields().get("carrier").and_then(Value::as_str).map(str::to_owned);
    let templates =
        state.loa.find_templates(&state.directory, &reseller_id, carrier.as_deref().or(doc.carrier())).await?;
    let now = now_gregorian();
    let rev = |r: Option<&str>| r.unwrap_or_default().to_owned();
    let day = (now / 86_400).to_string();
    let signed = signature.map(|s| crate::domain::customer::sha256_hex(s.to_string().as_bytes())).unwrap_or_default();
    let account_rev = |d: &AccountDoc| rev(d.rev.as_deref());
    let parts = [
        doc.id.as_str(),
        &rev(doc.rev()),
        &account_rev(&owner.doc),
        &account_rev(&reseller_doc),
        timezone.name(),
        &day,
        &signed,
    ];
    let mut data = template_data(doc, &owner.doc, &reseller_doc, timezone, now);
    if let Some(s) = signature {
        data["signature"] = s.clone();
    }
    let mut kazoo = None;
    let count = templates.len();
    // the first template that renders makes the letter; a broken stored one is passed over
    for (i, template) in templates.into_iter().enumerate() {
        let key = LoaRenderer::cache_key(&parts, &template);
        // a cached letter costs one lookup: no HTML is made for it
        if let Some(letter) = state.loa.cached(&key).await {
            return Ok(letter);
        }
        let kazoo = kazoo.get_or_insert_with(|| kazoo_data(doc, &owner.doc, &reseller_doc));
        let mut html = match LoaRenderer::render_html(&template, &data, kazoo) {
            Ok(html) => html,
            Err(e) if i + 1 < count => {
                tracing::warn!(error = %e, "a stored LOA template is passed over");
                continue;
            }
            Err(e) => return Err(e),
        };
        if signature.is_some() {
            // the evidence, whatever the LOA template: the shipped one places the drawing on its
            // signature line, any template gets the evidence page
            let evidence = state.loa.evidence_html(&data)?;
            html = match html.rfind("</body>") {
                Some(at) => format!("{}{evidence}{}", &html[..at], &html[at..]),
                None => format!("{html}{evidence}"),
            };
        }
        return state.loa.render_cached(key, &html).await;
    }
    Err(AppError::Unavailable("no LOA template could be rendered".into()))
}
