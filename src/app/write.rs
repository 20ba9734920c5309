//! The one write path of a port request. Every change goes through `change`:
//!
//! 1. it waits for this instance's changes of the request that came before (`store::queue`);
//! 2. it reads CouchDB's current revision (the cached copy only when CouchDB confirms it),
//!    reachable from the account asked through, and checks `If-Match` against it;
//! 3. the change decides on that revision, taking what it needs (number claims, number
//!    documents) into `Held`, and answers what to write: the document (with the events it
//!    notifies), or an attachment;
//! 4. a document is completed as every save completes it (the owner's tree, Kazoo's private
//!    fields, a signature voided by a change it shows, the events) and written in its turn
//!    (`store::port_requests`), which on a cluster knows whether it won;
//! 5. what was held is settled by the outcome: kept when the write landed, given back when it
//!    was refused (a concurrent change won), left to the repair when its fate is unknown;
//! 6. a write refused by a concurrent change is made again on the new revision, as if it had
//!    arrived a moment later, unless the client pinned the revision (`If-Match`) or the change
//!    must not be made over another (a full replace).
//!
//! Nothing is written before or beside the request for notifying: the events are in the
//! request's own write, so a refused change leaves nothing behind, and a saved one cannot lose
//! its notifications.

use super::claims::{self, Claims};
use super::completion::Activation;
use super::error::AppError;
use crate::configuration::EmailsBy;
use crate::domain::customer::void_if_changed;
use crate::domain::documents::port_request::{PortRequest, Stamp};
use crate::domain::events::{self, BusOrigin, Event, What};
use crate::domain::ids::{AccountId, PortRequestId, new_doc_id};
use crate::domain::time::now_gregorian;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::couch::NewAttachment;
use crate::store::directory::Account;
use std::sync::Arc;
use std::time::Duration;

/// How often a change is made again after meeting a concurrent one.
pub const ATTEMPTS: usize = 12;

/// The pause before attempt `n + 1` of a change that met a concurrent one: the winner of the
/// race is saving right now, so let it, then look again. It doubles from 5 ms, with jitter so
/// the losers do not meet again, up to 250 ms; twelve attempts span about 1.5 s, enough for a
/// few dozen writers of one request on a busy cluster to take their turns.
async fn pause_after_conflict(n: usize) {
    let base = (5u64 << (n.saturating_sub(1)).min(6)).min(250);
    let pause = base / 2 + rand::random::<u64>() % base.max(1);
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

/// Who asks for a change: an account (and one of its users), or the service itself (the
/// carrier push recording that it was sent, conflict resolution).
#[derive(Debug, Clone)]
pub enum Who {
    Account { account: Arc<Account>, user_id: Option<String> },
    Service,
}

impl Who {
    pub fn account(account: Arc<Account>, user_id: Option<String>) -> Self {
        Who::Account { account, user_id }
    }

    pub fn account_id(&self) -> Option<&AccountId> {
        match self {
            Who::Account { account, .. } => Some(&account.id),
            Who::Service => None,
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        match self {
            Who::Account { user_id, .. } => user_id.as_deref(),
            Who::Service => None,
        }
    }

    pub fn is_superduper_admin(&self) -> bool {
        matches!(self, Who::Account { account, .. } if account.is_superduper_admin())
    }

    /// May this one see private comments and act as the authority on `doc`?
    pub fn is_authority(&self, doc: &PortRequest) -> bool {
        self.is_superduper_admin() || (self.account_id().is_some() && doc.authority.get() == self.account_id())
    }
}

/// What every change is asked with, beside the change itself.
pub struct Ask<'a> {
    pub state: &'a Arc<AppState>,
    pub who: &'a Who,
    /// The account the request is reached through (the path's, or the owner's): a request
    /// elsewhere is as unknown as a missing one.
    pub through: &'a Account,
    /// The request id of the API call (recorded in the document, in Kazoo's private fields).
    pub request_id: &'a str,
    /// `If-Match`: the revision the client read.
    pub if_match: Option<&'a str>,
}

impl Ask<'_> {
    /// An event of this change, for the delivery queue of this instance.
    pub fn event(&self, doc: &PortRequest, at: i64, what: What) -> Event {
        Event {
            id: new_doc_id(),
            queue: self.state.settings.jobs.delivery.queue.clone(),
            at,
            what,
            webhook_url: doc.webhook_url().map(str::to_owned),
            bus: self.state.settings.bus.as_ref().map(|_| BusOrigin {
                account_id: self.through.id.to_string(),
                authorized_by: self.who.account_id().map(|a| a.to_string()),
                user_id: self.who.user_id().map(str::to_owned),
                version: "v2".into(),
            }),
            teletype: self.state.settings.emails_by == EmailsBy::Teletype,
        }
    }
}

/// What an attempt holds until its write is decided.
#[derive(Default)]
pub struct Held {
    pub claims: Option<Claims>,
    pub activation: Option<Activation>,
}

impl Held {
    pub fn claims(&mut self, claims: Claims) {
        self.claims = Some(claims);
    }

    /// The write landed, or its fate is unknown: the claims stay; number documents are
    /// finished, or left to the repair.
    fn keep(self, state: &AppState, landed: bool) {
        if let Some(c) = self.claims {
            c.keep();
        }
        match (self.activation, landed) {
            (Some(a), true) => a.finish(&state.couch),
            (Some(a), false) => a.leave_to_repair(),
            (None, _) => {}
        }
    }

    /// The write was refused (or never made): everything goes back.
    pub async fn give_back(self, state: &AppState) {
        if let Some(c) = self.claims {
            c.give_back().await;
        }
        if let Some(a) = self.activation {
            a.rollback(state).await;
        }
    }
}

/// What a change writes.
pub enum Write {
    /// The document, with the events it notifies.
    Document { doc: PortRequest, events: Vec<Event> },
    /// An attachment added or replaced (nothing else of the document changes).
    Attachment { name: String, content_type: String, chunks: Vec<bytes::Bytes> },
    /// An attachment removed.
    RemoveAttachment { name: String },
}

/// Whether a change is made again on a newer revision after meeting a concurrent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Again {
    /// Unless the client pinned the revision with `If-Match`.
    OnConflict,
    /// Never: a full replace made again would undo the other writer's fields.
    Never,
}

/// A change's outcome: the request as it is now, and what the change answers.
pub struct Changed<T> {
    pub doc: Arc<PortRequest>,
    pub outcome: T,
}

/// Loads a live request reachable from `account` (its own or a descendant's); one elsewhere is
/// as unknown as a missing one.
pub async fn load_in_scope(
    state: &AppState,
    account: &AccountId,
    id: &PortRequestId,
) -> Result<Arc<PortRequest>, AppError> {
    match state.port_requests.load(id.as_str()).await? {
        Some(doc) if doc.is_under(account) => Ok(doc),
        _ => Err(AppError::NoRequest(id.to_string())),
    }
}

fn check_if_match(if_match: Option<&str>, doc: &PortRequest) -> Result<(), AppError> {
    match if_match {
        Some(tag) if tag != "*" && Some(tag) != doc.rev() => Err(AppError::PreconditionFailed),
        _ => Ok(()),
    }
}

/// Makes a change of request `id`: `make` decides on the current revision and answers what to
/// write (nothing: the change answers without writing). See the module comment for everything
/// around it.
pub async fn change<T>(
    ask: &Ask<'_>,
    id: &PortRequestId,
    again: Again,
    mut make: impl AsyncFnMut(&Arc<PortRequest>, &mut Held) -> Result<(Option<Write>, T), AppError>,
) -> Result<Changed<T>, AppError> {
    let (state, account) = (ask.state, &ask.through.id);
    let _place = state.port_requests.enter(id.as_str()).await;
    let retry = again == Again::OnConflict && ask.if_match.is_none();
    for n in 1.. {
        let before = load_in_scope(state, account, id).await?;
        check_if_match(ask.if_match, &before)?;
        let mut held = Held::default();
        let (write, outcome) = match make(&before, &mut held).await {
            Ok(decided) => decided,
            Err(e) => {
                held.give_back(state).await;
                return Err(e);
            }
        };
        let written = match write {
            None => Ok(before.clone()),
            Some(w) => write_one(ask, &before, w).await,
        };
        match written {
            Ok(after) => {
                held.keep(state, true);
                let released: Vec<_> =
                    before.held_numbers().into_iter().filter(|n| !after.held_numbers().contains(n)).collect();
                claims::release_later(state, id.as_str(), released);
                return Ok(Changed { doc: after, outcome });
            }
            Err(StoreError::Conflict) => {
                held.give_back(state).await;
                if !retry || n >= ATTEMPTS {
                    return Err(AppError::Conflict);
                }
                pause_after_conflict(n).await;
            }
            // the write may have landed: what it holds stays until that is known
            Err(e) => {
                held.keep(state, false);
                return Err(AppError::Store(e));
            }
        }
    }
    unreachable!("the loop returns")
}

/// The stamp of a save asked by `ask` (none for the service's own changes).
fn stamp_of<'a>(ask: &'a Ask<'_>) -> Option<Stamp<'a>> {
    Some(Stamp {
        now: now_gregorian(),
        request_id: ask.request_id,
        auth_account_id: ask.who.account_id()?.as_str(),
        auth_user_id: ask.who.user_id(),
    })
}

/// Completes and saves a new request (no revision yet): the creation's write.
pub async fn create(
    ask: &Ask<'_>,
    mut doc: PortRequest,
    events: Vec<Event>,
    held: Held,
) -> Result<Arc<PortRequest>, AppError> {
    let state = ask.state;
    let written = async {
        complete(ask, &mut doc, &events).await.map_err(StoreError::from_app)?;
        state.port_requests.save(&mut doc).await
    }
    .await;
    match written {
        Ok(_) => {
            held.keep(state, true);
            Ok(Arc::new(doc))
        }
        Err(StoreError::Conflict) => {
            held.give_back(state).await;
            Err(AppError::Conflict)
        }
        Err(e) => {
            held.keep(state, false);
            Err(AppError::Store(e))
        }
    }
}

/// What every saved document gets: the owner's tree as it is now, Kazoo's private fields, a
/// signature voided by a change the letter shows, the events.
async fn complete(ask: &Ask<'_>, doc: &mut PortRequest, events: &[Event]) -> Result<(), AppError> {
    if let Some(owner) = doc.owner().cloned()
        && let Some(account) = ask.state.directory.account(&owner).await?
    {
        doc.tree.set(account.tree());
    }
    if let Some(stamp) = stamp_of(ask) {
        doc.stamp(&stamp);
    }
    void_if_changed(doc, now_gregorian());
    events::record(doc, events);
    Ok(())
}

async fn write_one(ask: &Ask<'_>, before: &PortRequest, write: Write) -> Result<Arc<PortRequest>, StoreError> {
    let repo = &ask.state.port_requests;
    match write {
        Write::Document { mut doc, events } => {
            complete(ask, &mut doc, &events).await.map_err(StoreError::from_app)?;
            repo.save(&mut doc).await?;
            Ok(Arc::new(doc))
        }
        Write::Attachment { name, content_type, chunks } => {
            let length: usize = chunks.iter().map(bytes::Bytes::len).sum();
            let body = || {
                let stream = futures_util::stream::iter(chunks.clone().into_iter().map(Ok::<_, std::io::Error>));
                reqwest::Body::wrap_stream(stream)
            };
            let file = NewAttachment { name: &name, content_type: &content_type, length };
            repo.put_attachment(before, &file, &body).await?;
            reload(ask.state, before).await
        }
        Write::RemoveAttachment { name } => {
            match repo.delete_attachment(before, &name).await {
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
            reload(ask.state, before).await
        }
    }
}

/// The request as it is after a write of its attachments.
async fn reload(state: &AppState, before: &PortRequest) -> Result<Arc<PortRequest>, StoreError> {
    state.port_requests.load(before.id.as_str()).await?.ok_or(StoreError::NotFound)
}

impl StoreError {
    /// A store error met while completing a document (reading the owner's account).
    fn from_app(e: AppError) -> Self {
        match e {
            AppError::Store(e) => e,
            other => StoreError::Fault(other.to_string()),
        }
    }
}
