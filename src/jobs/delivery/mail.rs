//! A port mail by Kazoo's rules: its settings and bodies as operators keep them in CouchDB
//! (`notification.<template>`, looked up from the request's account up to its reseller, then in
//! `system_config`), this service's own templates where there are none.
//!
//! - Settings (`enabled`, `subject`, `from`, `reply_to`, `to`/`cc`/`bcc`): the first document
//!   found on the walk. `enabled: false` there means no mail.
//! - Bodies: the first document on the walk with `template.text/html` or `template.text/plain`,
//!   rendered as ErlyDTL renders them with teletype's data (`domain::teletype`); escaped when
//!   the document is an account's, as is every subject. One that does not parse or render is
//!   noted on the delivery record and the next on the walk is tried, then this service's own.
//! - Recipients stay Kazoo's (`domain::notifications`): the submitter (else the document's
//!   `to` addresses) with the document's cc and bcc; the port authority alone, without them.
//!
//! Unlike Kazoo, which takes a missing system document for a disabled mail (teletype always
//! writes one), a database without any document gets this service's templates.

use super::channels::{Mail, authority_emails};
use crate::app::accounts::reseller_of;
use crate::channels::email::{Envelope, Outgoing, Rendered};
use crate::domain::deliveries::{DeliveryDoc, Outcome};
use crate::domain::documents::account::AccountDoc;
use crate::domain::documents::notification::{HTML_BODY, NotificationDoc, Recipients, TEXT_BODY};
use crate::domain::ids::{AccountId, derived_id};
use crate::domain::notifications::Audience;
use crate::domain::teletype::{self, Accounts, System};
use crate::dtl::Template;
use crate::state::AppState;
use crate::store::dbs;
use crate::store::directory::Account;
use serde_json::Value;
use std::sync::Arc;

/// Where a notification document was found.
#[derive(Debug, Clone)]
struct Place {
    db: String,
    /// Bodies of an account's document are escaped; the system's are not.
    account: Option<AccountId>,
}

impl Place {
    fn label(&self) -> String {
        match &self.account {
            Some(a) => format!("account {a}"),
            None => "system_config".into(),
        }
    }
}

/// The request's account, its parents nearest first up to its reseller, then `system_config`.
async fn walk(state: &AppState, owner: &Account) -> Result<Vec<Place>, String> {
    let reseller = reseller_of(&state.directory, owner).await.map_err(|e| e.to_string())?;
    let mut places = vec![Place { db: owner.id.db_name(), account: Some(owner.id.clone()) }];
    if owner.id != reseller {
        for ancestor in owner.tree().into_iter().rev() {
            let last = ancestor == reseller;
            places.push(Place { db: ancestor.db_name(), account: Some(ancestor) });
            if last {
                break;
            }
        }
    }
    places.push(Place { db: dbs::SYSTEM_CONFIG.into(), account: None });
    Ok(places)
}

/// The notification documents of `template` on the walk, in its order.
async fn found(state: &AppState, owner: &Account, template: &str) -> Result<Vec<(Place, NotificationDoc)>, String> {
    let mut out = Vec::new();
    for place in walk(state, owner).await? {
        if let Some(doc) = state.directory.notification(&place.db, template).await.map_err(|e| e.to_string())? {
            out.push((place, doc));
        }
    }
    Ok(out)
}

/// An attachment of a notification document, as text.
async fn body(state: &AppState, place: &Place, doc: &NotificationDoc, name: &str) -> Result<Option<Arc<str>>, String> {
    let Some(stub) = doc.attachments.get().and_then(|a| a.get(name)) else { return Ok(None) };
    let digest = stub.get("digest").and_then(Value::as_str).unwrap_or_default();
    let id = doc.id.as_deref().unwrap_or_default();
    state.directory.attachment_text(&place.db, id, name, digest).await.map_err(|e| e.to_string())
}

/// The stored bodies of one document, rendered (`None` for a part it does not have).
async fn stored_bodies(
    state: &AppState,
    template: &str,
    place: &Place,
    doc: &NotificationDoc,
    data: &Value,
) -> Result<(Option<String>, Option<String>), String> {
    let escape = place.account.is_some();
    let mut parts = [None, None];
    for (slot, name) in parts.iter_mut().zip([HTML_BODY, TEXT_BODY]) {
        if let Some(source) = body(state, place, doc, name).await? {
            let rendered = Template::parse(&source).and_then(|t| t.render(data, escape));
            let id = NotificationDoc::id_for(template);
            *slot = Some(rendered.map_err(|e| format!("{name} of {id} in {}: {e}", place.label()))?);
        }
    }
    let [html, text] = parts;
    Ok((html, text))
}

/// Addresses of a `cc` or `bcc` setting: its own (`specified`), or the account's admins.
async fn addresses(state: &AppState, setting: &Recipients, owner: &Account) -> Result<Vec<String>, String> {
    if setting.is("admins") {
        let users = state.directory.users(&owner.id).await.map_err(|e| e.to_string())?;
        return Ok(users.iter().filter(|u| u.is_admin()).filter_map(|u| u.email.get().cloned()).collect());
    }
    Ok(setting.addresses())
}

/// The data teletype would give: the accounts, their parents and the sending node.
async fn teletype_data(state: &AppState, mail: &Mail<'_>, owner: &Account, authority: Option<&Account>) -> Value {
    let parent_of = async |a: &Account| match a.tree().last() {
        Some(p) => state.directory.account(p).await.ok().flatten(),
        None => None,
    };
    let parent = parent_of(owner).await;
    let authority_parent = match authority {
        Some(a) => parent_of(a).await,
        None => None,
    };
    let none = AccountDoc::default();
    let accounts = Accounts {
        account: &owner.doc,
        parent: parent.as_ref().map(|p| &p.doc),
        authority: authority.map_or(&none, |a| &a.doc),
        authority_parent: authority_parent.as_ref().map(|p| &p.doc),
    };
    let system = System { hostname: crate::configuration::hostname(), node: state.settings.node_name.clone() };
    let timezone = crate::app::accounts::kazoos_timezone(&state.directory, owner).await;
    let mut data = teletype::data(mail.doc, &accounts, &mail.happening, timezone, &system);
    if let Some(c) = &mail.happening.comment
        && let (Some(account), Some(user)) =
            (c.account_id.as_deref().and_then(AccountId::from_any), c.user_id.as_deref())
        && let Ok(Some(user)) = state.directory.user(&account, user).await
    {
        data["user"] = teletype::user_params(&user);
    }
    data
}

/// Renders and sends one port mail; what was noted on the way goes on the record.
pub async fn deliver(state: &AppState, record: &DeliveryDoc, mail: Mail<'_>) -> Result<Outcome, String> {
    let template = record.event.as_str();
    let Some(owner) = mail.owner.clone() else {
        return own_templates(state, record, mail).await;
    };
    let found = found(state, &owner, template).await?;
    let Some((settings_place, settings)) = found.first() else {
        return own_templates(state, record, mail).await;
    };
    if !settings.is_enabled() {
        return Ok(Outcome::Skipped(format!(
            "{} is disabled in {}",
            NotificationDoc::id_for(template),
            settings_place.label()
        )));
    }
    let mut notes = Vec::new();
    let authority = state.directory.account(&mail.authority).await.map_err(|e| e.to_string())?;
    let data = teletype_data(state, &mail, &owner, authority.as_deref()).await;

    let (to, cc, bcc) = match mail.audience {
        Audience::Submitter => {
            let mut to = mail.doc.send_to();
            if to.is_empty()
                && let Some(t) = settings.to.get()
            {
                to = t.addresses();
            }
            let list = async |r: Option<&Recipients>| match r {
                Some(r) => addresses(state, r, &owner).await,
                None => Ok(vec![]),
            };
            (to, list(settings.cc.get()).await?, list(settings.bcc.get()).await?)
        }
        Audience::Authority => (authority_emails(state, &mail.authority).await?, vec![], vec![]),
    };
    if to.is_empty() {
        return Ok(Outcome::Skipped("no recipient".into()));
    }

    // the subject: the document's, else teletype's default, else ours; always escaped
    let mut subject = None;
    for (what, source) in
        [("subject", settings.subject.text()), ("teletype's default subject", teletype::default_subject(template))]
    {
        let Some(source) = source else { continue };
        match Template::parse(source).and_then(|t| t.render(&data, true)) {
            Ok(s) => {
                subject = Some(s);
                break;
            }
            Err(e) => notes.push(format!(
                "the {what} of {} in {}: {e}",
                NotificationDoc::id_for(template),
                settings_place.label()
            )),
        }
    }
    // the bodies: the first document on the walk that has some and renders
    let mut bodies = None;
    for (place, doc) in found.iter().filter(|(_, d)| d.has_bodies()) {
        match stored_bodies(state, template, place, doc, &data).await {
            Ok((html, text)) if html.is_some() || text.is_some() => {
                bodies = Some((html, text));
                break;
            }
            Ok(_) => {}
            Err(e) => notes.push(e),
        }
    }
    for n in &notes {
        tracing::warn!(record = %record.id, note = %n, "a stored template was not used");
    }
    // this service's own template only for what the stored ones did not give
    let rendered = match (subject, bodies) {
        (Some(subject), Some((html, text))) => Rendered { subject, html, text },
        (subject, bodies) => {
            let own = state.mailer.render(template, &mail.data)?;
            let (html, text) = bodies.unwrap_or((own.html, own.text));
            Rendered { subject: subject.unwrap_or(own.subject), html, text }
        }
    };
    let outgoing = Outgoing {
        to: &to,
        cc: &cc,
        bcc: &bcc,
        from: settings.from.text(),
        reply_to: settings.reply_to.text().map(str::to_owned).or(mail.reply_to),
        rendered: &rendered,
        files: mail.files,
    };
    send(state, record, outgoing).await?;
    Ok(Outcome::Delivered { to, notes })
}

/// The mail with this service's templates only (no document anywhere on the walk).
async fn own_templates(state: &AppState, record: &DeliveryDoc, mail: Mail<'_>) -> Result<Outcome, String> {
    let to = match mail.audience {
        Audience::Submitter => mail.doc.send_to(),
        Audience::Authority => authority_emails(state, &mail.authority).await?,
    };
    if to.is_empty() {
        return Ok(Outcome::Skipped("no recipient".into()));
    }
    let rendered = state.mailer.render(record.event.as_str(), &mail.data)?;
    let outgoing = Outgoing {
        to: &to,
        cc: &[],
        bcc: &[],
        from: None,
        reply_to: mail.reply_to,
        rendered: &rendered,
        files: mail.files,
    };
    send(state, record, outgoing).await?;
    Ok(Outcome::Delivered { to, notes: vec![] })
}

pub(super) async fn send(state: &AppState, record: &DeliveryDoc, outgoing: Outgoing<'_>) -> Result<(), String> {
    let event_id = record.event_id.as_deref().unwrap_or(&record.id);
    let envelope = Envelope { message_id: &derived_id(&record.id), delivery: &record.id, event: event_id };
    state.mailer.send(&envelope, outgoing).await
}
