//! Who is who around a request: its port authority and reseller (Kazoo's walks over the
//! account tree), and the one asking as a transition's author or a comment's.

use super::error::AppError;
use super::write::Who;
use crate::domain::authority::{self, Step, Visit};
use crate::domain::comments::Commenter;
use crate::domain::ids::AccountId;
use crate::domain::port_request::{Actor, ActorUser};
use crate::store::directory::{Account, Directory};

/// Resolves the port authority of an account (`kzd_port_requests:find_port_authority`).
pub async fn find_authority(directory: &Directory, account: &Account) -> Result<AccountId, AppError> {
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

/// The port authority an account acts as (`cb_port_requests:set_port_authority`, agent type):
/// itself when its whitelabel names it, else the walk from it.
pub async fn authority_as_agent(directory: &Directory, account: &Account) -> Result<AccountId, AppError> {
    let names_itself = directory
        .whitelabel(&account.id)
        .await?
        .and_then(|wl| authority::whitelabel_authority(&wl))
        .is_some_and(|a| a == account.id);
    if names_itself { Ok(account.id.clone()) } else { find_authority(directory, account).await }
}

/// The reseller an account belongs to (`kz_services_reseller:get_id`): itself when it is one,
/// its reseller id, the nearest reseller above it, or master.
pub async fn reseller_of(directory: &Directory, account: &Account) -> Result<AccountId, AppError> {
    if account.is_reseller() {
        return Ok(account.id.clone());
    }
    if let Some(id) = account.doc.reseller_id.as_deref().and_then(AccountId::from_any) {
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

pub async fn account_name(directory: &Directory, id: &AccountId) -> Result<Option<String>, AppError> {
    Ok(directory.account(id).await?.and_then(|a| a.name().map(str::to_owned)))
}

/// The one asking as a transition's `authorization`, with names from the account and user docs.
pub async fn actor(directory: &Directory, who: &Who) -> Result<Actor, AppError> {
    let Who::Account { account, user_id } = who else { return Ok(Actor::default()) };
    let user = match user_id {
        Some(uid) => {
            let doc = directory.user(&account.id, uid).await?;
            let field = |f: fn(&crate::domain::documents::account::UserDoc) -> Option<String>| doc.as_ref().and_then(f);
            let full_name = field(|d| d.full_name())
                .or_else(|| field(|d| d.username.get().cloned()))
                .or_else(|| field(|d| d.email.get().cloned()));
            Some(ActorUser {
                id: uid.clone(),
                first_name: field(|d| d.first_name.get().cloned()),
                last_name: field(|d| d.last_name.get().cloned()),
                full_name,
            })
        }
        None => None,
    };
    Ok(Actor { account_id: account.id.to_string(), account_name: account.name().map(str::to_owned), user })
}

/// The one asking as a comment's author.
pub async fn commenter(directory: &Directory, who: &Who) -> Result<Commenter, AppError> {
    let Who::Account { account, user_id } = who else { return Ok(Commenter::default()) };
    let full_name = match user_id {
        Some(uid) => directory.user(&account.id, uid).await?.map(|u| u.full_name()),
        None => None,
    };
    Ok(Commenter { account_id: account.id.to_string(), user_id: user_id.clone(), full_name })
}

/// The account's time zone as Kazoo reads it (`kzd_accounts:timezone`): its own, else the
/// nearest ancestor's (`inherit` or none), else `system_config/accounts`' `default_timezone`,
/// else America/Los_Angeles.
pub async fn kazoos_timezone(directory: &Directory, owner: &Account) -> chrono_tz::Tz {
    let parse = crate::domain::schedule::parse_timezone;
    if let Some(tz) = owner.own_timezone().and_then(parse) {
        return tz;
    }
    for ancestor in owner.tree().iter().rev() {
        if let Ok(Some(a)) = directory.account(ancestor).await
            && let Some(tz) = a.own_timezone().and_then(parse)
        {
            return tz;
        }
    }
    let default = directory.config_value("accounts", "default_timezone").await.ok().flatten();
    default.as_ref().and_then(serde_json::Value::as_str).and_then(parse).unwrap_or(chrono_tz::America::Los_Angeles)
}
