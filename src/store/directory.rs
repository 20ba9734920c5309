//! Read-only, cached access to the Kazoo databases around port requests: account documents
//! (from each account's own database, as crossbar reads them), users, whitelabel documents and
//! `system_config`. Answers are cached for `cache_ttl` (the absence of a configuration document
//! too: most accounts have none, and asking each time is waste).

use super::couch::{Couch, StoreResult};
use super::dbs;
use crate::domain::documents::account::{AccountDoc, ConfigDoc, UserDoc, Whitelabel};
use crate::domain::documents::notification::NotificationDoc;
use crate::domain::ids::AccountId;
use moka::future::Cache;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// An account, read from its own database.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: AccountId,
    pub doc: AccountDoc,
}

impl Account {
    pub fn name(&self) -> Option<&str> {
        self.doc.name.as_deref()
    }

    /// Ancestors, root (master) first; the account itself is not included.
    pub fn tree(&self) -> Vec<AccountId> {
        self.doc.ancestors()
    }

    pub fn is_superduper_admin(&self) -> bool {
        self.doc.superduper_admin.is_true()
    }

    pub fn is_reseller(&self) -> bool {
        self.doc.reseller.is_true()
    }

    pub fn realm(&self) -> Option<&str> {
        self.doc.realm.as_deref()
    }

    pub fn signature_secret(&self) -> Option<&str> {
        self.doc.signature_secret.as_deref()
    }

    /// The account's own time zone, unless absent or `inherit`.
    pub fn own_timezone(&self) -> Option<&str> {
        self.doc.timezone.text().filter(|tz| *tz != "inherit")
    }

    /// Is `other` this account or one of its ancestors?
    pub fn is_self_or_descendant_of(&self, other: &AccountId) -> bool {
        &self.id == other || self.tree().contains(other)
    }
}

#[derive(Clone)]
pub struct Directory {
    couch: Couch,
    accounts: Cache<AccountId, Arc<Account>>,
    docs: Cache<(String, String), Option<Arc<Value>>>,
    names: Cache<AccountId, Arc<str>>,
    /// Attachments read as text, by database, document, name and digest (a changed attachment
    /// has a new digest, so an entry is never stale).
    texts: Cache<(String, String, String, String), Option<Arc<str>>>,
}

impl Directory {
    pub fn new(couch: Couch, ttl: Duration) -> Self {
        Self {
            couch,
            accounts: Cache::builder().max_capacity(100_000).time_to_live(ttl).build(),
            docs: Cache::builder().max_capacity(100_000).time_to_live(ttl).build(),
            names: Cache::builder().max_capacity(100_000).time_to_live(ttl).build(),
            texts: Cache::builder()
                .weigher(|_, v: &Option<Arc<str>>| v.as_ref().map_or(1, |t| t.len().try_into().unwrap_or(u32::MAX)))
                .max_capacity(32 * 1024 * 1024)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub fn couch(&self) -> &Couch {
        &self.couch
    }

    /// A document from any database, cached (a missing one too).
    pub async fn doc(&self, db: &str, id: &str) -> StoreResult<Option<Arc<Value>>> {
        let key = (db.to_owned(), id.to_owned());
        if let Some(hit) = self.docs.get(&key).await {
            return Ok(hit);
        }
        let doc = self.couch.get(db, id).await?.map(Arc::new);
        self.docs.insert(key, doc.clone()).await;
        Ok(doc)
    }

    /// A cached document as its type; one that does not read as it counts as absent (a
    /// configuration document of another shape configures nothing this service knows).
    async fn typed<T: DeserializeOwned>(&self, db: &str, id: &str) -> StoreResult<Option<T>> {
        Ok(self.doc(db, id).await?.and_then(|d| T::deserialize(&*d).ok()))
    }

    /// The account document; `None` if the account does not exist or was deleted.
    pub async fn account(&self, id: &AccountId) -> StoreResult<Option<Arc<Account>>> {
        if let Some(hit) = self.accounts.get(id).await {
            return Ok(Some(hit));
        }
        let Some(doc) = self.couch.get_doc::<AccountDoc>(&id.db_name(), id.as_str()).await? else {
            return Ok(None);
        };
        if doc.deleted.is_true() {
            return Ok(None);
        }
        let account = Arc::new(Account { id: id.clone(), doc });
        self.accounts.insert(id.clone(), account.clone()).await;
        Ok(Some(account))
    }

    /// A user document from an account database (`None` when missing or deleted).
    pub async fn user(&self, account: &AccountId, user_id: &str) -> StoreResult<Option<UserDoc>> {
        let user: Option<UserDoc> = self.typed(&account.db_name(), user_id).await?;
        Ok(user.filter(|u| !u.deleted.is_true()))
    }

    /// The account's users (at most 10,000), deleted ones left out.
    pub async fn users(&self, account: &AccountId) -> StoreResult<Vec<UserDoc>> {
        let docs = self.couch.all_docs(&account.db_name(), 10_000).await?;
        Ok(docs
            .into_iter()
            .filter_map(|d| serde_json::from_value::<UserDoc>(d).ok())
            .filter(|u| u.is_user() && !u.deleted.is_true())
            .collect())
    }

    /// A `system_config` document (empty when missing).
    pub async fn system_config(&self, id: &str) -> StoreResult<ConfigDoc> {
        Ok(self.typed(dbs::SYSTEM_CONFIG, id).await?.unwrap_or_default())
    }

    /// `system_config/<category>` `default.<key>`, as Kazoo's `kapps_config` reads it.
    pub async fn config_value(&self, category: &str, key: &str) -> StoreResult<Option<Value>> {
        Ok(self.system_config(category).await?.value(key).cloned())
    }

    pub async fn master_account_id(&self) -> StoreResult<Option<AccountId>> {
        Ok(self
            .config_value("accounts", "master_account_id")
            .await?
            .and_then(|v| v.as_str().and_then(AccountId::from_any)))
    }

    /// `notification.<template>` in `db` (an account's database or `system_config`), unless
    /// absent or deleted.
    pub async fn notification(&self, db: &str, template: &str) -> StoreResult<Option<NotificationDoc>> {
        let doc: Option<NotificationDoc> = self.typed(db, &NotificationDoc::id_for(template)).await?;
        Ok(doc.filter(|d| !d.deleted.is_true()))
    }

    /// An attachment as text (`None` when it is gone), cached by its `digest`.
    pub async fn attachment_text(&self, db: &str, id: &str, name: &str, digest: &str) -> StoreResult<Option<Arc<str>>> {
        let key = (db.to_owned(), id.to_owned(), name.to_owned(), digest.to_owned());
        if let Some(hit) = self.texts.get(&key).await {
            return Ok(hit);
        }
        let text = self
            .couch
            .get_attachment(db, id, name)
            .await?
            .map(|(_, bytes)| Arc::from(String::from_utf8_lossy(&bytes).as_ref()));
        self.texts.insert(key, text.clone()).await;
        Ok(text)
    }

    /// The account's `whitelabel` document, if any.
    pub async fn whitelabel(&self, account: &AccountId) -> StoreResult<Option<Whitelabel>> {
        self.typed(&account.db_name(), "whitelabel").await
    }

    /// Account names for a page of results: cached ones, then one read of the `accounts`
    /// copies for the rest. Unknown accounts are absent from the answer.
    pub async fn account_names(&self, ids: &[AccountId]) -> StoreResult<HashMap<AccountId, Arc<str>>> {
        let mut names = HashMap::new();
        let mut missing = Vec::new();
        for id in ids {
            match self.names.get(id).await {
                Some(n) => {
                    names.insert(id.clone(), n);
                }
                None => missing.push(id.to_string()),
            }
        }
        for doc in self.couch.get_docs::<AccountDoc>(dbs::ACCOUNTS, &missing).await? {
            let id = doc.id.as_deref().and_then(AccountId::from_any);
            if let (Some(id), Some(name)) = (id, doc.name.as_deref()) {
                let name: Arc<str> = Arc::from(name);
                self.names.insert(id.clone(), name.clone()).await;
                names.insert(id, name);
            }
        }
        Ok(names)
    }

    /// Forgets what is cached about an account (after we learn it changed).
    pub async fn forget_account(&self, id: &AccountId) {
        self.accounts.invalidate(id).await;
    }
}
