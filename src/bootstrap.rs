//! Preparing CouchDB: the databases and views the service needs, and (`--demo`) the minimum
//! of a Kazoo install to try it: master account, admin user, system signing key.
//! Everything is created only where missing, so running it twice changes nothing.

use crate::auth::jwt;
use crate::configuration::Settings;
use crate::couch::{Couch, NewAttachment, StoreError, dbs, design};
use crate::domain::ids::{AccountId, derived_id, new_doc_id};
use crate::domain::time::now_gregorian;
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

/// What `serve` needs: `port_requests` with Kazoo's design doc and ours.
pub async fn ensure_service_databases(couch: &Couch) -> Result<(), StoreError> {
    design::ensure_port_requests_db(couch).await
}

const CLAIMS_ADOPTED: &str = "claims_adopted";

/// Makes the number claims of every open request that lacks them (requests Kazoo or an older
/// version wrote), and notes that it was done. Returns how many claims were made.
pub async fn adopt_claims(couch: &Couch) -> Result<usize, StoreError> {
    crate::notify::ensure_db(couch).await?;
    let made = crate::port_requests::numbers::adopt_all(couch).await?;
    let mut mark = json!({ "_id": CLAIMS_ADOPTED, "pvt_type": "marker", "at": now_gregorian() });
    if let Some(existing) = couch.get(dbs::SERVICE, CLAIMS_ADOPTED).await? {
        mark["_rev"] = existing["_rev"].clone();
    }
    match couch.save(dbs::SERVICE, &mut mark).await {
        Ok(_) | Err(StoreError::Conflict) => Ok(made),
        Err(e) => Err(e),
    }
}

/// On the first start against a database, adopts the claims in the background (later
/// changes written elsewhere are adopted by the delivery follower).
pub fn spawn_claim_adoption(state: actix_web::web::Data<crate::state::AppState>) {
    tokio::spawn(async move {
        match state.couch.get(dbs::SERVICE, CLAIMS_ADOPTED).await {
            Ok(Some(_)) => {}
            Ok(None) => match adopt_claims(&state.couch).await {
                Ok(made) => tracing::info!(claims = made, "claimed the numbers of the open port requests"),
                Err(e) => tracing::warn!(error = %e, "cannot claim the numbers of the open port requests"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot tell whether the open numbers are claimed"),
        }
    });
}

/// Creates `doc` unless a document with its id exists. Returns whether it was created.
async fn create_if_missing(couch: &Couch, db: &str, mut doc: Value) -> Result<bool, StoreError> {
    match couch.save(db, &mut doc).await {
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
        let mut doc = couch.get(dbs::SYSTEM_CONFIG, id).await?.unwrap_or_else(|| json!({ "_id": id }));
        if let Some(existing) = doc.get("default").and_then(|d| d.get(key)).filter(|v| !v.is_null()) {
            return Ok(existing.clone());
        }
        if !doc.get("default").is_some_and(Value::is_object) {
            doc["default"] = json!({});
        }
        doc["default"][key] = value.clone();
        doc["pvt_type"] = json!("config");
        match couch.save(dbs::SYSTEM_CONFIG, &mut doc).await {
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
            let mut doc = json!({ "_id": kid, "pvt_type": "system_key", "pvt_created": now_gregorian() });
            match couch.save(dbs::SYSTEM_AUTH, &mut doc).await {
                Ok(_) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
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
pub async fn create_account_docs(couch: &Couch, doc: &Value) -> Result<(), StoreError> {
    let id = AccountId::parse(doc["_id"].as_str().unwrap_or_default()).map_err(|e| StoreError::Fault(e.to_string()))?;
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
    create_account_docs(
        couch,
        &json!({
            "_id": master.as_str(),
            "name": "Master Account",
            "realm": "master.localhost",
            "timezone": "UTC",
            "pvt_type": "account",
            "pvt_account_id": master.as_str(),
            "pvt_account_db": master.db_name(),
            "pvt_tree": [],
            "pvt_enabled": true,
            "pvt_superduper_admin": true,
            "pvt_signature_secret": random_secret(),
            "pvt_api_key": random_secret() + &random_secret(),
            "pvt_created": now,
            "pvt_modified": now,
        }),
    )
    .await?;

    let admin_id = derived_id(&format!("demo-admin-{master}"));
    create_if_missing(
        couch,
        &master.db_name(),
        json!({
            "_id": admin_id,
            "pvt_type": "user",
            "username": "admin",
            "first_name": "Demo",
            "last_name": "Admin",
            "email": "admin@master.localhost",
            "priv_level": "admin",
            "pvt_signature_secret": random_secret(),
            "pvt_account_id": master.as_str(),
            "pvt_created": now,
            "pvt_modified": now,
        }),
    )
    .await?;

    let kid = config_default(couch, "auth", "system_key", json!(new_doc_id())).await?;
    let kid = kid.as_str().ok_or_else(|| anyhow!("system_config/auth system_key is not a string"))?.to_owned();
    config_default(couch, "auth", "secret_for_user_signature", json!(random_secret())).await?;
    ensure_system_key(couch, &kid).await?;

    let token = token(couch, master.as_str(), Some(&admin_id), 24 * 3600).await?;
    Ok(DemoOutput { master_account_id: master, admin_user_id: admin_id, token })
}

/// Signs a token for an account (and user) with the system key, as crossbar would after a
/// login. A missing `pvt_signature_secret` is created, as Kazoo does on first use.
pub async fn token(couch: &Couch, account_id: &str, user_id: Option<&str>, ttl: i64) -> anyhow::Result<String> {
    let account = AccountId::from_any(account_id).ok_or_else(|| anyhow!("'{account_id}' is not an account id"))?;
    let auth = couch.get(dbs::SYSTEM_CONFIG, "auth").await?.unwrap_or_default();
    let kid = auth["default"]["system_key"]
        .as_str()
        .ok_or_else(|| anyhow!("system_config/auth has no default.system_key (run bootstrap --demo)"))?;
    let server_secret = auth["default"]["secret_for_user_signature"].as_str().unwrap_or_default();
    let (_, pem) = couch
        .get_attachment(dbs::SYSTEM_AUTH, kid, "private_key.pem")
        .await?
        .ok_or_else(|| anyhow!("system_auth/{kid} has no private_key.pem"))?;
    let pem = String::from_utf8(pem.to_vec()).context("the system key is not text")?;

    let identity_doc_id = user_id.unwrap_or(account.as_str());
    let identity_secret = loop {
        let mut doc = couch
            .get(&account.db_name(), identity_doc_id)
            .await?
            .ok_or_else(|| anyhow!("no document {identity_doc_id} in the database of account {account}"))?;
        if let Some(secret) = doc.get("pvt_signature_secret").and_then(Value::as_str) {
            break secret.to_owned();
        }
        let secret = random_secret();
        doc["pvt_signature_secret"] = json!(secret);
        match couch.save(&account.db_name(), &mut doc).await {
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
