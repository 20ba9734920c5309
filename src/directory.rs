//! Read-only, cached access to the Kazoo databases around port requests: account documents
//! (from each account's own database, as crossbar reads them), users, whitelabel documents and
//! `system_config`. Positive answers are cached for `cache_ttl`; misses are never cached.

use crate::couch::{Couch, StoreResult, dbs};
use crate::domain::ids::AccountId;
use moka::future::Cache;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// An account document, read from the account's own database.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: AccountId,
    pub doc: Value,
}

impl Account {
    pub fn name(&self) -> Option<&str> {
        self.doc.get("name").and_then(Value::as_str)
    }

    /// Ancestors, root (master) first; the account itself is not included.
    pub fn tree(&self) -> Vec<AccountId> {
        self.doc
            .get("pvt_tree")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(|v| v.as_str().and_then(AccountId::from_any)).collect())
            .unwrap_or_default()
    }

    pub fn is_superduper_admin(&self) -> bool {
        self.doc.get("pvt_superduper_admin").and_then(Value::as_bool) == Some(true)
    }

    pub fn is_reseller(&self) -> bool {
        self.doc.get("pvt_reseller").and_then(Value::as_bool) == Some(true)
    }

    pub fn realm(&self) -> Option<&str> {
        self.doc.get("realm").and_then(Value::as_str)
    }

    pub fn signature_secret(&self) -> Option<&str> {
        self.doc.get("pvt_signature_secret").and_then(Value::as_str)
    }

    /// The account's own time zone, unless absent or `inherit`.
    pub fn own_timezone(&self) -> Option<&str> {
        self.doc.get("timezone").and_then(Value::as_str).filter(|tz| !tz.is_empty() && *tz != "inherit")
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
}

impl Directory {
    pub fn new(couch: Couch, ttl: Duration) -> Self {
        Self {
            couch,
            accounts: Cache::builder().max_capacity(100_000).time_to_live(ttl).build(),
            docs: Cache::builder().max_capacity(100_000).time_to_live(ttl).build(),
            names: Cache::builder().max_capacity(100_000).time_to_live(ttl).build(),
        }
    }

    pub fn couch(&self) -> &Couch {
        &self.couch
    }

    /// A document from any database, cached (a missing one too: configuration documents such
    /// as `pdf.loa` or `whitelabel` are usually absent, and asking again each time is waste).
    pub async fn doc(&self, db: &str, id: &str) -> StoreResult<Option<Arc<Value>>> {
        let key = (db.to_owned(), id.to_owned());
        if let Some(hit) = self.docs.get(&key).await {
            return Ok(hit);
        }
        let doc = self.couch.get(db, id).await?.map(Arc::new);
        self.docs.insert(key, doc.clone()).await;
        Ok(doc)
    }

    /// The account document; `None` if the account does not exist or was deleted.
    pub async fn account(&self, id: &AccountId) -> StoreResult<Option<Arc<Account>>> {
        if let Some(hit) = self.accounts.get(id).await {
            return Ok(Some(hit));
        }
        let Some(doc) = self.couch.get(&id.db_name(), id.as_str()).await? else {
            return Ok(None);
        };
        if doc.get("pvt_deleted").and_then(Value::as_bool) == Some(true) {
            return Ok(None);
        }
        let account = Arc::new(Account { id: id.clone(), doc });
        self.accounts.insert(id.clone(), account.clone()).await;
        Ok(Some(account))
    }

    /// A user document from an account database.
    pub async fn user(&self, account: &AccountId, user_id: &str) -> StoreResult<Option<Arc<Value>>> {
        let doc = self.doc(&account.db_name(), user_id).await?;
        Ok(doc.filter(|d| d.get("pvt_deleted").and_then(Value::as_bool) != Some(true)))
    }

    /// A `system_config` document (`{}` when missing).
    pub async fn system_config(&self, id: &str) -> StoreResult<Arc<Value>> {
        Ok(self.doc(dbs::SYSTEM_CONFIG, id).await?.unwrap_or_else(|| Arc::new(json!({}))))
    }

    /// `system_config/<category>` `default.<key>`, as Kazoo's `kapps_config` reads it.
    pub async fn config_value(&self, category: &str, key: &str) -> StoreResult<Option<Value>> {
        let doc = self.system_config(category).await?;
        Ok(doc.get("default").and_then(|d| d.get(key)).cloned())
    }

    pub async fn master_account_id(&self) -> StoreResult<Option<AccountId>> {
        Ok(self
            .config_value("accounts", "master_account_id")
            .await?
            .and_then(|v| v.as_str().and_then(AccountId::from_any)))
    }

    /// The account's `whitelabel` document, if any.
    pub async fn whitelabel(&self, account: &AccountId) -> StoreResult<Option<Arc<Value>>> {
        self.doc(&account.db_name(), "whitelabel").await
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
        for doc in self.couch.get_many(dbs::ACCOUNTS, &missing).await? {
            let id = doc.get("_id").and_then(Value::as_str).and_then(AccountId::from_any);
            if let (Some(id), Some(name)) = (id, doc.get("name").and_then(Value::as_str)) {
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
