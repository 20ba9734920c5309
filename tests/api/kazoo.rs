//! A Kazoo install as the tests need it, written straight to CouchDB with plain HTTP (none of
//! the service's code): system key, master account, accounts with users, whitelabel docs,
//! numbers. Tokens are signed here too, independently of the service's signing code.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::OnceCell;

pub fn hex32() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A document's path: `_design/` stays as it is (CouchDB redirects an escaped one).
fn doc_path(db: &str, id: &str) -> String {
    match id.strip_prefix("_design/") {
        Some(name) => format!("{}/_design/{}", enc(db), enc(name)),
        None => format!("{}/{}", enc(db), enc(id)),
    }
}

pub fn account_db(id: &str) -> String {
    format!("account/{}/{}/{}", &id[0..2], &id[2..4], &id[4..])
}

pub fn now_gregorian() -> i64 {
    chrono::Utc::now().timestamp() + 62_167_219_200
}

/// Raw CouchDB access for fixtures and for checking what the service stored.
#[derive(Clone)]
pub struct Couch {
    pub url: String,
    http: reqwest::Client,
}

impl Couch {
    pub fn new(url: &str) -> Self {
        // no pooled connections: each #[tokio::test] has its own runtime, and a pooled connection
        // dies with the runtime that opened it
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        Self { url: url.trim_end_matches('/').to_owned(), http }
    }

    pub async fn ensure_db(&self, db: &str) {
        let r = self.http.put(format!("{}/{}", self.url, enc(db))).send().await.expect("couch reachable");
        assert!(r.status().is_success() || r.status() == 412, "creating {db}: {}", r.status());
    }

    pub async fn get(&self, db: &str, id: &str) -> Option<Value> {
        let r = self.http.get(format!("{}/{}", self.url, doc_path(db, id))).send().await.unwrap();
        if r.status() == 404 { None } else { Some(r.json().await.unwrap()) }
    }

    /// PUT a document; returns the CouchDB answer (with `ok` or `error`).
    pub async fn put(&self, db: &str, doc: &Value) -> Value {
        let id = doc["_id"].as_str().unwrap();
        self.http
            .put(format!("{}/{}", self.url, doc_path(db, id)))
            .json(doc)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn put_attachment(&self, db: &str, id: &str, rev: &str, name: &str, ct: &str, body: Vec<u8>) -> Value {
        self.http
            .put(format!("{}/{}/{}/{}?rev={}", self.url, enc(db), enc(id), enc(name), rev))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{}", self.url, path)).send().await.unwrap()
    }

    /// Sets a `system_config` `default.<key>`; returns the previous value.
    pub async fn set_config(&self, doc_id: &str, key: &str, value: Value) -> Option<Value> {
        loop {
            let mut doc =
                self.get("system_config", doc_id).await.unwrap_or_else(|| json!({"_id": doc_id, "default": {}}));
            let previous = doc["default"].get(key).cloned();
            doc["default"][key] = value.clone();
            if self.put("system_config", &doc).await["ok"] == true {
                return previous;
            }
        }
    }
}

pub struct System {
    pub couch: Couch,
    pub kid: String,
    pub key: RsaPrivateKey,
    pub server_secret: String,
    pub master: Account,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub tree: Vec<String>,
    pub secret: String,
    pub user_id: String,
    pub user_secret: String,
}

static SYSTEM: OnceCell<System> = OnceCell::const_new();

pub fn couch_url() -> String {
    std::env::var("COUCHDB_URL").expect("COUCHDB_URL is set: run the tests with scripts/test.sh")
}

/// The shared Kazoo install of the test server (created once, reused when present).
pub async fn system() -> &'static System {
    SYSTEM.get_or_init(|| async { System::install(Couch::new(&couch_url())).await }).await
}

impl System {
    /// Creates (or finds) the system key, the auth secrets and a superduper master account.
    pub async fn install(couch: Couch) -> System {
        for db in ["accounts", "system_config", "system_auth"] {
            couch.ensure_db(db).await;
        }
        let auth = match couch.get("system_config", "auth").await {
            Some(doc) if doc["default"]["system_key"].is_string() => doc,
            _ => {
                let doc =
                    json!({"_id": "auth", "default": {"system_key": hex32(), "secret_for_user_signature": hex32()}});
                couch.put("system_config", &doc).await;
                couch.get("system_config", "auth").await.unwrap()
            }
        };
        let kid = auth["default"]["system_key"].as_str().unwrap().to_owned();
        let server_secret = auth["default"]["secret_for_user_signature"].as_str().unwrap_or_default().to_owned();
        let key = match couch.get_raw(&format!("/system_auth/{kid}/private_key.pem")).await {
            r if r.status().is_success() => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                RsaPrivateKey::from_pkcs1_pem(&r.text().await.unwrap()).unwrap()
            }
            _ => {
                let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
                let created = couch.put("system_auth", &json!({"_id": kid, "pvt_type": "system_key"})).await;
                let rev = created["rev"].as_str().unwrap_or_default().to_owned();
                let pem = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap().to_string();
                couch
                    .put_attachment(
                        "system_auth",
                        &kid,
                        &rev,
                        "private_key.pem",
                        "application/x-pem-file",
                        pem.into_bytes(),
                    )
                    .await;
                key
            }
        };
        let master_id = match couch.get("system_config", "accounts").await {
            Some(doc) if doc["default"]["master_account_id"].is_string() => {
                doc["default"]["master_account_id"].as_str().unwrap().to_owned()
            }
            _ => {
                let id = hex32();
                couch.set_config("accounts", "master_account_id", json!(id)).await;
                id
            }
        };
        let master = match load_account(&couch, &master_id).await {
            Some(a) => a,
            None => {
                write_account(&couch, &master_id, "Master Account", vec![], json!({"pvt_superduper_admin": true})).await
            }
        };
        System { couch, kid, key, server_secret, master }
    }

    /// A new account under `parent` (master when None), with an admin user.
    pub async fn account(&self, parent: Option<&Account>, name: &str, extra: Value) -> Account {
        let parent = parent.unwrap_or(&self.master);
        let mut tree = parent.tree.clone();
        tree.push(parent.id.clone());
        write_account(&self.couch, &hex32(), name, tree, extra).await
    }

    /// Makes `account` a port authority for its descendants (and names its support email).
    pub async fn whitelabel(&self, account: &Account, authority: &str, support_email: Option<&str>) {
        let mut doc = json!({"_id": "whitelabel", "pvt_type": "whitelabel", "port": {"authority": authority}});
        if let Some(email) = support_email {
            doc["port"]["support_email"] = json!(email);
        }
        let r = self.couch.put(&account_db(&account.id), &doc).await;
        assert_eq!(r["ok"], true, "{r}");
    }

    /// Signs a token the way Kazoo does, for the account's admin user (or the account).
    pub fn token(&self, account: &Account, with_user: bool) -> String {
        self.token_with(account, with_user, 3600, &self.key, None)
    }

    pub fn token_with(
        &self,
        account: &Account,
        with_user: bool,
        ttl: i64,
        key: &RsaPrivateKey,
        sig: Option<&str>,
    ) -> String {
        let (identity, secret) =
            if with_user { (&account.user_id, &account.user_secret) } else { (&account.id, &account.secret) };
        let mut mac = Hmac::<Sha256>::new_from_slice(format!("{secret}{}", self.server_secret).as_bytes()).unwrap();
        mac.update(identity.as_bytes());
        let identity_sig =
            sig.map(str::to_owned).unwrap_or_else(|| URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
        let mut claims = json!({
            "account_id": account.id, "method": "cb_user_auth", "iss": "kazoo",
            "exp": chrono::Utc::now().timestamp() + ttl, "identity_sig": identity_sig,
        });
        if with_user {
            claims["owner_id"] = json!(account.user_id);
        }
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = SigningKey::<Sha256>::new(key.clone()).sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// Assigns a number to an account in the numbers database, as Kazoo would.
    pub async fn assign_number(&self, number: &str, account: &Account, state: &str) {
        let db = format!("numbers/{}", &number[..5]);
        self.couch.ensure_db(&db).await;
        let mut doc = json!({"_id": number, "pvt_assigned_to": account.id, "pvt_state": state, "pvt_type": "number"});
        if let Some(existing) = self.couch.get(&db, number).await {
            doc["_rev"] = existing["_rev"].clone();
        }
        let r = self.couch.put(&db, &doc).await;
        assert_eq!(r["ok"], true, "{r}");
    }
}

async fn load_account(couch: &Couch, id: &str) -> Option<Account> {
    let doc = couch.get(&account_db(id), id).await?;
    let user_id = doc["test_admin_user"].as_str()?.to_owned();
    let user = couch.get(&account_db(id), &user_id).await?;
    Some(Account {
        id: id.to_owned(),
        name: doc["name"].as_str().unwrap_or_default().to_owned(),
        tree: serde_json::from_value(doc["pvt_tree"].clone()).unwrap_or_default(),
        secret: doc["pvt_signature_secret"].as_str()?.to_owned(),
        user_id,
        user_secret: user["pvt_signature_secret"].as_str()?.to_owned(),
    })
}

async fn write_account(couch: &Couch, id: &str, name: &str, tree: Vec<String>, extra: Value) -> Account {
    let db = account_db(id);
    couch.ensure_db(&db).await;
    let (secret, user_id, user_secret) = (hex32(), hex32(), hex32());
    let mut doc = json!({
        "_id": id, "name": name, "realm": format!("{}.example.com", &id[..8]), "timezone": "America/New_York",
        "pvt_type": "account", "pvt_account_id": id, "pvt_account_db": db, "pvt_tree": tree,
        "pvt_enabled": true, "pvt_signature_secret": secret, "pvt_api_key": format!("{}{}", hex32(), hex32()),
        "pvt_created": now_gregorian(), "test_admin_user": user_id,
    });
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    assert_eq!(couch.put(&db, &doc).await["ok"], true);
    couch.put("accounts", &doc).await;
    let user = json!({
        "_id": user_id, "pvt_type": "user", "first_name": "Admin", "last_name": name,
        "username": format!("admin@{}", &id[..8]), "email": format!("admin@{}.example.com", &id[..8]),
        "priv_level": "admin", "pvt_signature_secret": user_secret,
    });
    assert_eq!(couch.put(&db, &user).await["ok"], true);
    Account { id: id.to_owned(), name: name.to_owned(), tree, secret, user_id, user_secret }
}

/// A random NANP number that no other test uses (well, with odds of one in 8e10).
pub fn random_number() -> String {
    let mut r = rand::thread_rng();
    let mut digit = |lo: u32, hi: u32| -> u32 { lo + (r.next_u32() % (hi - lo + 1)) };
    let npa = format!("{}{}{}", digit(2, 9), digit(0, 9), digit(0, 9));
    let nxx = format!("{}{}{}", digit(2, 9), digit(0, 9), digit(0, 9));
    let line: String = (0..4).map(|_| char::from_digit(digit(0, 9), 10).unwrap()).collect();
    format!("+1{npa}{nxx}{line}")
}
