//! The Fone Dynamics porting API on the same port requests: a Property is a Kazoo account, an
//! Account any ancestor. A submission creates the request and submits it in one write; the
//! status queries read a window of requests by modified time.

use super::error::AppError;
use super::requests::{self, Saved};
use super::write::Ask;
use crate::domain::documents::port_request::PortRequest;
use crate::domain::fone::{self, Window};
use crate::domain::ids::{AccountId, PortRequestId};
use crate::domain::time::unix_to_gregorian;
use crate::state::AppState;
use crate::store::ViewQuery;
use crate::store::directory::Account;
use crate::store::views::OWN_DDOC;
use serde_json::{Value, json};

/// The property's time zone (dates of the request are midnights there).
pub fn timezone(account: &Account) -> chrono_tz::Tz {
    account.own_timezone().and_then(crate::domain::schedule::parse_timezone).unwrap_or(chrono_tz::UTC)
}

/// `POST /v2/Properties/{PropertySid}/Porting`: checks the body by the API's rules, then creates
/// the port request, submitted.
pub async fn submit(ask: &Ask<'_>, body: &Value) -> Result<Saved, AppError> {
    let property = ask.through;
    let tz = timezone(property);
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let submission = fone::check(body, today).map_err(AppError::Fone)?;
    let public = fone::to_port_request(&submission, tz);
    requests::create(ask, public, PortRequestId::new_random(), Some("submitted through the Fone Dynamics API")).await
}

/// Which requests a status query reads: one account's, or a whole subtree's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusScope {
    Property,
    Subtree,
}

/// The requests of `account` (or its subtree) updated within the window: a page of them, and
/// how many there are.
pub async fn status(
    state: &AppState,
    account: &AccountId,
    scope: StatusScope,
    w: &Window,
) -> Result<(Vec<PortRequest>, u64), AppError> {
    let (lo, hi) = (unix_to_gregorian(w.from), unix_to_gregorian(w.to));
    let in_scope = |doc: &PortRequest| match scope {
        StatusScope::Property => doc.owner() == Some(account),
        StatusScope::Subtree => doc.is_under(account),
    };
    match &w.ids {
        Some(ids) => {
            let wanted: Vec<String> = ids.iter().filter(|i| crate::domain::ids::is_doc_id(i)).cloned().collect();
            let mut docs: Vec<PortRequest> = state
                .port_requests
                .load_many(&wanted)
                .await?
                .into_iter()
                .filter(|d| in_scope(d) && d.modified.copied().is_some_and(|m| (lo..=hi).contains(&m)))
                .collect();
            docs.sort_by_key(|d| d.modified.copied());
            let total = docs.len() as u64;
            Ok((docs.into_iter().skip(w.skip as usize).take(w.count as usize).collect(), total))
        }
        None => {
            let kind = match scope {
                StatusScope::Property => "account",
                StatusScope::Subtree => "subtree",
            };
            let (start, end) = (json!([kind, account, lo]), json!([kind, account, hi]));
            let total = state
                .port_requests
                .view_count(OWN_DDOC, "listing_by_scope_modified", start.clone(), end.clone())
                .await?;
            let query =
                ViewQuery { limit: Some(w.count), skip: Some(w.skip), ..ViewQuery::range(start, end).with_docs() };
            let rows = state.port_requests.view(OWN_DDOC, "listing_by_scope_modified", &query).await?;
            Ok((rows.into_iter().filter_map(|(_, d)| d).collect(), total))
        }
    }
}
