//! The binary itself: settings errors, bootstrap, demo data, tokens, --help.

use crate::helpers::{OwnCouch, default_settings, free_port, start};
use crate::kazoo::Couch;
use serde_json::{Value, json};
use std::process::{Command, Output};

fn bin(envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kazoo-port-requests"));
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("LOG", "warn");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("the binary runs")
}

fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(stderr.trim_end().lines().count(), 1, "expected one line, got: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_settings_give_one_clear_line() {
    let out = bin(&[("LISTEN_ADDR", "not-an-address")], &["serve"]);
    assert!(one_error_line(&out).contains("LISTEN_ADDR"));
    let out = bin(&[("COUCHDB_URL", "ftp://x")], &[]);
    assert!(one_error_line(&out).contains("COUCHDB_URL"));
    let out = bin(&[("LOG", "[[[")], &[]);
    assert!(one_error_line(&out).contains("LOG"));
    let out = bin(&[("SMTP_URL", "http://mail")], &[]);
    assert!(one_error_line(&out).contains("SMTP_URL"));
}

#[test]
fn unreachable_couchdb_fails_without_leaking_credentials() {
    let url = format!("http://admin:supersecret@127.0.0.1:{}", free_port());
    let out = bin(&[("COUCHDB_URL", &url), ("LISTEN_ADDR", "127.0.0.1:0")], &["serve"]);
    let line = one_error_line(&out);
    assert!(line.contains("unreachable"), "{line}");
    assert!(!line.contains("supersecret"), "{line}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("supersecret"));
}

#[test]
fn help_documents_subcommands_and_settings() {
    let out = bin(&[], &["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "serve",
        "bootstrap",
        "token",
        "COUCHDB_URL",
        "LISTEN_ADDR",
        "SMTP_URL",
        "EMAIL_FROM",
        "WKHTMLTOPDF",
        "TEMPLATES_DIR",
        "LOG",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    let out = bin(&[], &["token", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--account-id"));
}

#[tokio::test]
async fn bootstrap_is_idempotent_and_keeps_kazoo_views() {
    let own = OwnCouch::start().await;
    let couch = Couch::new(&own.url());
    // a Kazoo install already has its design doc: it must stay as it is
    couch.ensure_db("port_requests").await;
    let kazoo_ddoc = json!({"_id": "_design/port_requests", "language": "javascript",
                            "views": {"crossbar_listing": {"map": "function(doc) { emit(doc._id, null); }"}}});
    couch.put("port_requests", &kazoo_ddoc).await;
    let before = couch.get("port_requests", "_design/port_requests").await.unwrap();

    let out = bin(&[("COUCHDB_URL", &own.url())], &["bootstrap"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(couch.get("port_requests", "_design/port_requests").await.unwrap(), before);
    let ours = couch.get("port_requests", "_design/kazoo_port_requests").await.expect("our design doc");
    let out = bin(&[("COUCHDB_URL", &own.url())], &["bootstrap"]);
    assert!(out.status.success());
    assert_eq!(couch.get("port_requests", "_design/kazoo_port_requests").await.unwrap()["_rev"], ours["_rev"]);
}

#[tokio::test]
async fn fresh_bootstrap_installs_the_eleven_kazoo_views() {
    let own = OwnCouch::start().await;
    let out = bin(&[("COUCHDB_URL", &own.url())], &["bootstrap"]);
    assert!(out.status.success());
    let ddoc = Couch::new(&own.url()).get("port_requests", "_design/port_requests").await.unwrap();
    assert_eq!(ddoc["views"].as_object().unwrap().len(), 11);
}

#[tokio::test]
async fn demo_bootstrap_and_token_command_give_working_tokens() {
    let own = OwnCouch::start().await;
    let env = [("COUCHDB_URL", own.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = bin(&env, &["bootstrap", "--demo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| stdout.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).unwrap().to_owned();
    let (master, token) = (field("master_account_id"), field("token"));

    let again = bin(&env, &["bootstrap", "--demo"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains(&format!("master_account_id={master}")));

    let address = start(default_settings(&own.url())).await;
    let http = reqwest::Client::new();
    let list = format!("{address}/v2/accounts/{master}/port_requests");
    let resp = http.get(&list).header("X-Auth-Token", &token).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    let out = bin(&env, &["token", "--account-id", &master, "--ttl", "60"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let account_token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let resp = http.get(&list).header("X-Auth-Token", &account_token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["auth_token"], account_token);
}
