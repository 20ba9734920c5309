//! Port requests at the storage edge: loading and saving documents, the number checks, the
//! port authority walk, completion (number documents), and the changes themselves
//! (`changes`), which handlers in `routes` call.

pub mod changes;
pub mod completion;
pub mod conflicts;
pub mod customer;
pub mod import;
pub mod letter;
pub mod numbers;
pub mod queue;

use crate::auth::Caller;
use crate::couch::{Fetched, StoreError, dbs};
use crate::directory::{Account, Directory};
use crate::domain::authority::{self, Step, Visit};
use crate::domain::comments::{self, Commenter};
use crate::domain::ids::AccountId;
use crate::domain::port_request::{Actor, ActorUser};
use crate::error::ApiError;
use crate::state::AppState;
use serde_json::Value;
use std::sync::Arc;

/// Loads a live port request: CouchDB's current revision (a cached copy only when CouchDB
/// confirms it is still current). Anything else (missing, deleted, another type) is a 404.
pub async fn load(state: &AppState, id: &str) -> Result<Arc<Value>, ApiError> {
    if !crate::domain::ids::is_doc_id(id) {
        return Err(ApiError::BadIdentifier(Some(id.to_owned())));
    }
    let cached = state.docs.get(id);
    let known = cached.as_ref().and_then(|d| d.get("_rev").and_then(Value::as_str));
    let doc = match (state.couch.get_if_changed(dbs::PORT_REQUESTS, id, known).await?, cached) {
        (Fetched::Unchanged, Some(cached)) => cached,
        (Fetched::Doc(doc), _) => {
            let doc = Arc::new(doc);
            state.docs.keep(doc.clone());
            doc
        }
        (Fetched::Unchanged | Fetched::Missing, _) => {
            state.docs.forget(id);
            return Err(ApiError::BadIdentifier(Some(id.to_owned())));
        }
    };
    checked(doc, id)
}

fn checked(doc: Arc<Value>, id: &str) -> Result<Arc<Value>, ApiError> {
    let not_found = || ApiError::BadIdentifier(Some(id.to_owned()));
    let is_port_request = doc.get("pvt_type").is_none_or(|t| t == "port_request");
    let deleted = doc.get("pvt_deleted").and_then(Value::as_bool) == Some(true);
    if !is_port_request || deleted {
        return Err(not_found());
    }
    Ok(doc)
}

/// Is the request owned by `account` or one of its descendants?
pub fn in_scope(doc: &Value, account: &AccountId) -> bool {
    let owner = doc.get("pvt_account_id").and_then(Value::as_str);
    let tree = doc.get("pvt_tree").and_then(Value::as_array);
    owner == Some(account.as_str()) || tree.is_some_and(|t| t.iter().any(|a| a.as_str() == Some(account.as_str())))
}

/// Loads a request reachable from the account in the path (its own or a descendant's);
/// a request elsewhere is as unknown as a missing one.
pub async fn load_in_scope(state: &AppState, account: &Account, id: &str) -> Result<Arc<Value>, ApiError> {
    let doc = load(state, id).await?;
    if !in_scope(&doc, &account.id) {
        return Err(ApiError::BadIdentifier(Some(id.to_owned())));
    }
    Ok(doc)
}

/// Saves with the revision the document carries: a concurrent change is a 409.
pub async fn save(state: &AppState, doc: &mut Value) -> Result<String, ApiError> {
    let rev = state.couch.save(dbs::PORT_REQUESTS, doc).await.map_err(|e| match e {
        StoreError::Conflict => ApiError::Conflict,
        other => other.into(),
    })?;
    // attachments sent inline are stored: keep their stubs, not their bytes
    if let Some(atts) = doc.get_mut("_attachments").and_then(Value::as_object_mut) {
        for att in atts.values_mut() {
            if let Some(data) = att.as_object_mut().and_then(|a| a.remove("data")) {
                let b64 = data.as_str().unwrap_or_default();
                let length = b64.len() / 4 * 3 - b64.bytes().rev().take_while(|b| *b == b'=').count();
                att["stub"] = serde_json::json!(true);
                att["length"] = serde_json::json!(length);
            }
        }
    }
    state.docs.keep(Arc::new(doc.clone()));
    Ok(rev)
}

/// `If-Match` against the stored revision: a stale one is a 412.
pub fn check_if_match(if_match: Option<&str>, doc: &Value) -> Result<(), ApiError> {
    match if_match {
        Some(tag) if tag != "*" && Some(tag) != doc.get("_rev").and_then(Value::as_str) => {
            Err(ApiError::PreconditionFailed)
        }
        _ => Ok(()),
    }
}

/// Resolves the port authority of an account (`kzd_port_requests:find_port_authority`).
pub async fn find_authority(directory: &Directory, account: &Account) -> Result<AccountId, ApiError> {
    let master = match directory.master_account_id().await? {
        Some(m) => m,
        // no master configured: the root of the tree stands in, as the oldest account would
        None => account.tree().first().cloned().unwrap_or_else(|| account.id.clone()),
    };
    let mut current = account.id.clone();
    for _ in 0..64 {
        let (whitelabel, parent) = if current == master {
            (None, None)
        } else {
            let wl = directory.whitelabel(&current).await?;
            let parent = directory
                .account(&current)
                .await?
                .and_then(|d| if d.is_reseller() { Some(master.clone()) } else { d.tree().last().cloned() });
            (wl.and_then(|w| authority::whitelabel_authority(&w)), parent)
        };
        match authority::step(Visit { master: &master, submitter: &account.id, current: &current, whitelabel, parent })
        {
            Step::Found(a) => return Ok(a),
            Step::Climb(next) => current = next,
        }
    }
    Ok(master)
}

/// The reseller an account belongs to (`kz_services_reseller:get_id`): itself when it is one,
/// its `pvt_reseller_id`, the nearest reseller above it, or master.
pub async fn reseller_of(directory: &Directory, account: &Account) -> Result<AccountId, ApiError> {
    if account.is_reseller() {
        return Ok(account.id.clone());
    }
    if let Some(id) = account.doc.get("pvt_reseller_id").and_then(Value::as_str).and_then(AccountId::from_any) {
        return Ok(id);
    }
    for ancestor in account.tree().iter().rev() {
        if directory.account(ancestor).await?.is_some_and(|a| a.is_reseller()) {
            return Ok(ancestor.clone());
        }
    }
    Ok(directory
        .master_account_id()
        .await?
        .or_else(|| account.tree().first().cloned())
        .unwrap_or_else(|| account.id.clone()))
}

pub async fn account_name(directory: &Directory, id: &AccountId) -> Result<Option<String>, ApiError> {
    Ok(directory.account(id).await?.and_then(|a| a.name().map(str::to_owned)))
}

/// The caller as a transition's `authorization`, with names from the account and user docs.
pub async fn actor(state: &AppState, caller: &Caller) -> Result<Actor, ApiError> {
    let user = match &caller.owner_id {
        Some(uid) => {
            let doc = state.directory.user(caller.account_id(), uid).await?;
            let field = |k: &str| doc.as_ref().and_then(|d| d.get(k).and_then(Value::as_str).map(str::to_owned));
            let full_name = doc
                .as_ref()
                .and_then(|d| comments::full_name(d))
                .or_else(|| field("username"))
                .or_else(|| field("email"));
            Some(ActorUser {
                id: uid.clone(),
                first_name: field("first_name"),
                last_name: field("last_name"),
                full_name,
            })
        }
        None => None,
    };
    Ok(Actor {
        account_id: caller.account_id().to_string(),
        account_name: caller.account.name().map(str::to_owned),
        user,
    })
}

/// The caller as a comment's author.
pub async fn commenter(state: &AppState, caller: &Caller) -> Result<Commenter, ApiError> {
    let full_name = match &caller.owner_id {
        Some(uid) => state.directory.user(caller.account_id(), uid).await?.map(|u| comments::full_name(&u)),
        None => None,
    };
    Ok(Commenter { account_id: caller.account_id().to_string(), user_id: caller.owner_id.clone(), full_name })
}

/// May this caller see private comments and act as the authority on this request?
pub fn is_authority(caller: &Caller, doc: &Value) -> bool {
    caller.is_superduper_admin()
        || doc.get("pvt_port_authority").and_then(Value::as_str) == Some(caller.account_id().as_str())
}
