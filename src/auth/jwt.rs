//! Kazoo 4.3 JWTs (`kz_auth_jwt`): RS256/384/512 with the system key, `iss: "kazoo"`, and an
//! `identity_sig` binding the token to the user's (or account's) signature secret.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const ISSUER: &str = "kazoo";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub account_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    pub exp: i64,
    pub iss: String,
    #[serde(default)]
    pub identity_sig: String,
}

impl Claims {
    /// Whose secret signs the identity: the user when there is one, else the account.
    pub fn identity(&self) -> &str {
        self.owner_id.as_deref().filter(|o| !o.is_empty()).unwrap_or(&self.account_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the private key is not a PEM RSA key")]
    NotRsaPem,
}

fn parse_private_pem(pem: &str) -> Result<RsaPrivateKey, KeyError> {
    RsaPrivateKey::from_pkcs1_pem(pem).or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem)).map_err(|_| KeyError::NotRsaPem)
}

/// The verification key, derived from the private key Kazoo keeps in `system_auth`.
pub fn decoding_key_from_private_pem(pem: &str) -> Result<DecodingKey, KeyError> {
    let key = parse_private_pem(pem)?;
    Ok(DecodingKey::from_rsa_raw_components(&key.n().to_bytes_be(), &key.e().to_bytes_be()))
}

/// A new 2048-bit system key, as PKCS#1 PEM (what Kazoo stores as `private_key.pem`).
pub fn generate_private_pem() -> String {
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation");
    key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).expect("PEM encoding").to_string()
}

/// The `kid` of a token, without checking anything else.
pub fn key_id(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid)
}

/// Checks signature, `exp` (no leeway, as Kazoo) and `iss`; returns the claims.
pub fn verify(token: &str, key: &DecodingKey) -> Result<Claims, jsonwebtoken::errors::Error> {
    let header = jsonwebtoken::decode_header(token)?;
    let mut validation = Validation::new(header.alg);
    validation.algorithms = vec![Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];
    validation.leeway = 0;
    validation.validate_aud = false;
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss"]);
    Ok(jsonwebtoken::decode::<Claims>(token, key, &validation)?.claims)
}

fn identity_mac(identity_secret: &str, server_secret: &str, identity: &str) -> Hmac<Sha256> {
    let key = format!("{identity_secret}{server_secret}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(identity.as_bytes());
    mac
}

/// `identity_sig` = base64url(HMAC-SHA256(identity secret ++ server secret, identity)).
pub fn identity_signature(identity_secret: &str, server_secret: &str, identity: &str) -> String {
    URL_SAFE_NO_PAD.encode(identity_mac(identity_secret, server_secret, identity).finalize().into_bytes())
}

/// Constant-time check of a presented `identity_sig` (padded or not).
pub fn identity_signature_matches(sig: &str, identity_secret: &str, server_secret: &str, identity: &str) -> bool {
    let Ok(presented) = URL_SAFE_NO_PAD.decode(sig.trim_end_matches('=')).or_else(|_| URL_SAFE.decode(sig)) else {
        return false;
    };
    identity_mac(identity_secret, server_secret, identity).verify_slice(&presented).is_ok()
}

pub struct TokenRequest<'a> {
    pub kid: &'a str,
    pub private_pem: &'a str,
    pub account_id: &'a str,
    pub owner_id: Option<&'a str>,
    pub ttl_seconds: i64,
    /// `pvt_signature_secret` of the user (or the account when no user).
    pub identity_secret: &'a str,
    /// `system_config/auth` `secret_for_user_signature`.
    pub server_secret: &'a str,
}

/// Signs a token the way crossbar does for a user or API-key login.
pub fn issue(req: &TokenRequest<'_>) -> anyhow::Result<String> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(req.kid.to_owned());
    let mut claims = Claims {
        account_id: req.account_id.to_owned(),
        owner_id: req.owner_id.map(str::to_owned),
        method: Some(if req.owner_id.is_some() { "cb_user_auth" } else { "cb_api_auth" }.to_owned()),
        exp: crate::domain::time::now_unix() + req.ttl_seconds,
        iss: ISSUER.to_owned(),
        identity_sig: String::new(),
    };
    claims.identity_sig = identity_signature(req.identity_secret, req.server_secret, claims.identity());
    let key = EncodingKey::from_rsa_pem(req.private_pem.as_bytes())?;
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    static PEM: LazyLock<String> = LazyLock::new(generate_private_pem);

    fn request<'a>(ttl: i64) -> TokenRequest<'a> {
        TokenRequest {
            kid: "k1",
            private_pem: &PEM,
            account_id: "a",
            owner_id: Some("u"),
            ttl_seconds: ttl,
            identity_secret: "user-secret",
            server_secret: "server-secret",
        }
    }

    #[test]
    fn issued_tokens_verify() {
        let token = issue(&request(60)).unwrap();
        assert_eq!(key_id(&token).as_deref(), Some("k1"));
        let key = decoding_key_from_private_pem(&PEM).unwrap();
        let claims = verify(&token, &key).unwrap();
        assert_eq!(claims.identity(), "u");
        assert!(identity_signature_matches(&claims.identity_sig, "user-secret", "server-secret", "u"));
        assert!(!identity_signature_matches(&claims.identity_sig, "other", "server-secret", "u"));
    }

    #[test]
    fn expired_tokens_fail() {
        let token = issue(&request(-5)).unwrap();
        let key = decoding_key_from_private_pem(&PEM).unwrap();
        assert!(verify(&token, &key).is_err());
    }

    #[test]
    fn other_keys_fail() {
        let token = issue(&request(60)).unwrap();
        let other = decoding_key_from_private_pem(&generate_private_pem()).unwrap();
        assert!(verify(&token, &other).is_err());
    }
}
