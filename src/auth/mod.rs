//! Who is calling: Kazoo token authentication (cached) and account-level authorization.

pub mod jwt;

use crate::domain::ids::AccountId;
use crate::store::directory::{Account, Directory};
use crate::store::{StoreError, dbs};
use jsonwebtoken::DecodingKey;
use moka::future::Cache;
use std::sync::Arc;
use std::time::Duration;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Arc<Account>,
    pub owner_id: Option<String>,
    /// Unix seconds after which the credential is no longer valid.
    pub expires: i64,
}

impl Caller {
    /// The caller as the one asking for a change.
    pub fn who(&self) -> crate::app::write::Who {
        crate::app::write::Who::account(self.account.clone(), self.owner_id.clone())
    }

    pub fn account_id(&self) -> &AccountId {
        &self.account.id
    }

    pub fn is_superduper_admin(&self) -> bool {
        self.account.is_superduper_admin()
    }

    /// crossbar's `cb_simple_authz`: the account itself, an ancestor, or a superduper admin.
    pub fn may_access(&self, target: &Account) -> bool {
        self.is_superduper_admin() || target.is_self_or_descendant_of(&self.account.id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid credentials: {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Authenticator {
    directory: Directory,
    keys: Cache<String, Arc<DecodingKey>>,
    verified: Cache<String, Arc<Caller>>,
}

const PRIVATE_KEY_ATTACHMENT: &str = "private_key.pem";

impl Authenticator {
    pub fn new(directory: Directory, ttl: Duration) -> Self {
        Self {
            directory,
            keys: Cache::builder().max_capacity(64).time_to_live(ttl).build(),
            verified: Cache::builder().max_capacity(100_000).time_to_live(ttl).build(),
        }
    }

    async fn decoding_key(&self, kid: &str) -> Result<Arc<DecodingKey>, AuthError> {
        if let Some(key) = self.keys.get(kid).await {
            return Ok(key);
        }
        let couch = self.directory.couch();
        let (_, pem) = couch
            .get_attachment(dbs::SYSTEM_AUTH, kid, PRIVATE_KEY_ATTACHMENT)
            .await?
            .ok_or(AuthError::Invalid("unknown signing key"))?;
        let pem = std::str::from_utf8(&pem).map_err(|_| AuthError::Invalid("unreadable signing key"))?;
        let key = Arc::new(
            jwt::decoding_key_from_private_pem(pem).map_err(|_| AuthError::Invalid("unreadable signing key"))?,
        );
        self.keys.insert(kid.to_owned(), key.clone()).await;
        Ok(key)
    }

    async fn identity_secret(&self, account: &Account, owner_id: Option<&str>) -> Result<String, AuthError> {
        let secret = match owner_id {
            Some(user_id) => {
                self.directory.user(&account.id, user_id).await?.and_then(|u| u.signature_secret.get().cloned())
            }
            None => account.signature_secret().map(str::to_owned),
        };
        secret.filter(|s| !s.is_empty()).ok_or(AuthError::Invalid("no identity secret"))
    }

    /// Validates a Kazoo token as `kz_auth_jwt` does: signature with the key named by `kid`,
    /// expiry, issuer, then the `identity_sig` against the identity's signature secret.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Caller>, AuthError> {
        if let Some(hit) = self.verified.get(token).await {
            if hit.expires > crate::domain::time::now_unix() {
                return Ok(hit);
            }
            self.verified.invalidate(token).await;
            return Err(AuthError::Invalid("expired"));
        }
        let kid = jwt::key_id(token).ok_or(AuthError::Invalid("malformed token"))?;
        let key = self.decoding_key(&kid).await?;
        let claims = jwt::verify(token, &key).map_err(|_| AuthError::Invalid("bad signature, expiry or issuer"))?;
        if claims.identity_sig.is_empty() {
            return Err(AuthError::Invalid("no identity_sig"));
        }
        let account_id = AccountId::from_any(&claims.account_id).ok_or(AuthError::Invalid("bad account_id"))?;
        let account = self.directory.account(&account_id).await?.ok_or(AuthError::Invalid("unknown account"))?;
        let owner_id = claims.owner_id.clone().filter(|o| !o.is_empty());
        let identity_secret = self.identity_secret(&account, owner_id.as_deref()).await?;
        let server_secret = self
            .directory
            .config_value("auth", "secret_for_user_signature")
            .await?
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if !jwt::identity_signature_matches(&claims.identity_sig, &identity_secret, &server_secret, claims.identity()) {
            return Err(AuthError::Invalid("identity_sig mismatch"));
        }
        let caller = Arc::new(Caller { account, owner_id, expires: claims.exp });
        self.verified.insert(token.to_owned(), caller.clone()).await;
        Ok(caller)
    }
}
