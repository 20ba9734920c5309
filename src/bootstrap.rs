//! Preparing CouchDB: the databases and views the service needs, and (`--demo`) the minimum
//! of a Kazoo install to try it: master account, admin user, system signing key.
//! Everything is created only where missing, so running it twice changes nothing.

use crate::auth::jwt;
use crate::configuration::Settings;
use crate::domain::documents::account::{AccountDoc, ConfigDoc, SystemKeyDoc, UserDoc};
use crate::domain::ids::{AccountId, derived_id, new_doc_id};
use crate::domain::time::now_gregorian;
use crate::store::couch::NewAttachment;
use crate::store::{Couch, Document, StoreError, dbs, views};
use anyhow::{Context, anyhow};
use serde_json::{Value, json};

pub async fn connect(settings: &Settings) -> anyhow::Result<Couch> {
    let couch = Couch::new(&settings.couchdb)?;
    couch
        .server_info()
        .await
        .with_context(|| format!("CouchDB at {} is unreachable", settings.couchdb.display_url()))?;
    Ok(couch)
}

/// What `serve` needs: `port_requests` with Kazoo's design doc and ours, and the service's
/// database with its own.
pub async fn ensure_databases(couch: &Couch) -> Result<(), StoreError> {
    views::ensure_port_requests_db(couch).await?;
    views::ensure_service_db(couch).await
}

/// Creates `doc` unless a document with its id exists. Returns whether it was created.
async fn create_if_missing<T: Document>(couch: &Couch, db: &str, mut doc: T) -> Result<bool, StoreError> {
    match couch.save_doc(db, &mut doc).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(e),
    }
}

fn random_secret() -> String {
    new_doc_id()
}

pub struct DemoOutput {
    pub master_account_id: AccountId,
    pub admin_user_id: String,
    pub token: String,
}

/// Sets `default.<key>` on a `system_config` doc unless it already has a value.
async fn config_default(couch: &Couch, id: &str, key: &str, value: Value) -> Result<Value, StoreError> {
    loop {
        let mut doc = couch.get_doc::<ConfigDoc>(dbs::SYSTEM_CONFIG, id).await?.unwrap_or_else(|| {
            let mut fresh = ConfigDoc::default();
            fresh.id.set(id.to_owned());
            fresh
        });
        if let Some(existing) = doc.value(key).filter(|v| !v.is_null()) {
            return Ok(existing.clone());
        }
        doc.set_default(key, value.clone());
        match couch.save_doc(dbs::SYSTEM_CONFIG, &mut doc).await {
            Ok(_) => return Ok(value),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
}

async fn ensure_system_key(couch: &Couch, kid: &str) -> Result<(), StoreError> {
    let doc = match couch.get(dbs::SYSTEM_AUTH, kid).await? {
        Some(doc) => doc,
        None => {
            create_if_missing(couch, dbs::SYSTEM_AUTH, SystemKeyDoc::new(kid, now_gregorian())).await?;
            couch.get(dbs::SYSTEM_AUTH, kid).await?.ok_or(StoreError::NotFound)?
        }
    };
    if doc.get("_attachments").and_then(|a| a.get("private_key.pem")).is_some() {
        return Ok(());
    }
    let rev = doc["_rev"].as_str().unwrap_or_default().to_owned();
    let pem = jwt::generate_private_pem();
    match couch
        .put_attachment(
            (dbs::SYSTEM_AUTH, kid, &rev),
            &NewAttachment { name: "private_key.pem", content_type: "application/x-pem-file", length: pem.len() },
            &|| reqwest::Body::from(pem.clone()),
        )
        .await
    {
        Ok(_) | Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes an account document to its own database and the `accounts` copy.
pub async fn create_account_docs(couch: &Couch, doc: &AccountDoc) -> Result<(), StoreError> {
    let id =
        doc.id.as_deref().and_then(AccountId::from_any).ok_or_else(|| StoreError::Fault("not an account id".into()))?;
    couch.ensure_db(&id.db_name()).await?;
    create_if_missing(couch, &id.db_name(), doc.clone()).await?;
    create_if_missing(couch, dbs::ACCOUNTS, doc.clone()).await?;
    Ok(())
}

pub async fn demo(couch: &Couch) -> anyhow::Result<DemoOutput> {
    for db in [dbs::ACCOUNTS, dbs::SYSTEM_CONFIG, dbs::SYSTEM_AUTH] {
        couch.ensure_db(db).await?;
    }
    let master = config_default(couch, "accounts", "master_account_id", json!(new_doc_id())).await?;
    let master = AccountId::from_any(master.as_str().unwrap_or_default())
        .ok_or_else(|| anyhow!("system_config/accounts master_account_id is not an account id"))?;
    let now = now_gregorian();
    let mut account = AccountDoc::new(&master, "Master Account", now);
    account.realm.set("master.localhost".into());
    account.timezone.set("UTC".into());
    account.superduper_admin.set(true);
    account.signature_secret.set(random_secret());
    account.api_key.set(random_secret() + &random_secret());
    create_account_docs(couch, &account).await?;

    let admin_id = derived_id(&format!("demo-admin-{master}"));
    let mut admin = UserDoc::new(&master, now);
    admin.id.set(admin_id.clone());
    admin.username.set("admin".into());
    admin.first_name.set("Demo".into());
    admin.last_name.set("Admin".into());
    admin.email.set("admin@master.localhost".into());
    admin.priv_level.set("admin".into());
    admin.signature_secret.set(random_secret());
    create_if_missing(couch, &master.db_name(), admin).await?;

    let kid = config_default(couch, "auth", "system_key", json!(new_doc_id())).await?;
    let kid = kid.as_str().ok_or_else(|| anyhow!("system_config/auth system_key is not a string"))?.to_owned();
    config_default(couch, "auth", "secret_for_user_signature", json!(random_secret())).await?;
    ensure_system_key(couch, &kid).await?;

    let token = token(couch, master.as_str(), Some(&admin_id), 24 * 3600).await?;
    Ok(DemoOutput { master_account_id: master, admin_user_id: admin_id, token })
}

/// Signs a token for an account (and user) with the system key, as crossbar would after a
/// login. A missing signature secret is created, as Kazoo does on first use.
pub async fn token(couch: &Couch, account_id: &str, user_id: Option<&str>, ttl: i64) -> anyhow::Result<String> {
    let account = AccountId::from_any(account_id).ok_or_else(|| anyhow!("'{account_id}' is not an account id"))?;
    let auth = couch.get_doc::<ConfigDoc>(dbs::SYSTEM_CONFIG, "auth").await?.unwrap_or_default();
    let kid = auth
        .value("system_key")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("system_config/auth has no default.system_key (run bootstrap --demo)"))?;
    let server_secret = auth.value("secret_for_user_signature").and_then(Value::as_str).unwrap_or_default();
    let (_, pem) = couch
        .get_attachment(dbs::SYSTEM_AUTH, kid, "private_key.pem")
        .await?
        .ok_or_else(|| anyhow!("system_auth/{kid} has no private_key.pem"))?;
    let pem = String::from_utf8(pem.to_vec()).context("the system key is not text")?;

    let identity_doc_id = user_id.unwrap_or(account.as_str());
    // the account and user documents share the key of the secret (`UserDoc` reads it for both)
    let identity_secret = loop {
        let mut doc = couch
            .get_doc::<UserDoc>(&account.db_name(), identity_doc_id)
            .await?
            .ok_or_else(|| anyhow!("no document {identity_doc_id} in the database of account {account}"))?;
        if let Some(secret) = doc.signature_secret.get() {
            break secret.clone();
        }
        let secret = random_secret();
        doc.signature_secret.set(secret.clone());
        match couch.save_doc(&account.db_name(), &mut doc).await {
            Ok(_) => break secret,
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    jwt::issue(&jwt::TokenRequest {
        kid,
        private_pem: &pem,
        account_id: account.as_str(),
        owner_id: user_id,
        ttl_seconds: ttl,
        identity_secret: &identity_secret,
        server_secret,
    })
}
