//! The customer page in a real browser: headless Chromium driven by Playwright
//! (`tests/browser/customer_page.mjs`) opens the link, corrects a field, uploads a bill, draws
//! a signature and signs; this test then checks what was stored and mailed. Screenshots of each
//! step are kept in `target/artifacts/customer-page/`.

use crate::customer::{make_link, request_for_customer, signed_letter, tree};
use crate::helpers::{spawn_app, support_email, wait_mails};
use crate::kazoo::hex32;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Where the screenshots are kept.
fn artifacts() -> PathBuf {
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/artifacts/customer-page");
    std::fs::create_dir_all(&out).unwrap();
    out
}

/// Runs a script of `tests/browser/` (Playwright driving headless Chromium); panics with what it
/// printed unless it succeeds.
async fn run_in_browser(script: &str, args: &[&str]) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let run = tokio::process::Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .args(args)
        .env("KPR_NODE_MODULES", root.join("scripts/devstack/node_modules"))
        .output()
        .await
        .expect("node runs");
    assert!(
        run.status.success(),
        "the browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[tokio::test]
async fn a_customer_signs_in_a_real_browser() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let submitter = format!("browser-{}@example.com", &hex32()[..10]);
    let id = request_for_customer(&app, &t.customer, &submitter).await;
    // a link that has expired, for its page
    let other = request_for_customer(&app, &t.customer, &submitter).await;
    let (_, body) = make_link(&app, &t.customer, &other, json!({})).await;
    let expired = body["data"]["url"].as_str().unwrap().to_owned();
    let mut doc = app.sys.couch.get("port_requests", &other).await.unwrap();
    doc["pvt_customer_links"][0]["expires"] = json!(1);
    app.sys.couch.put("port_requests", &doc).await;
    let (status, body) = make_link(&app, &t.customer, &id, json!({})).await;
    assert_eq!(status, 201, "{body}");
    let link = body["data"]["url"].as_str().unwrap().to_owned();

    let out = artifacts();
    let bill = tempfile::Builder::new().prefix("bill").tempdir().unwrap();
    let bill_path = bill.path().join("bill.pdf");
    std::fs::write(&bill_path, b"%PDF-1.4\n% a bill from Pacific Bell\n").unwrap();
    let bill_arg = bill_path.display().to_string();
    let out_arg = out.display().to_string();
    run_in_browser("customer_page.mjs", &[&link, &expired, &bill_arg, &out_arg]).await;
    for shot in ["1-opened", "2-corrected", "3-uploaded", "4-ready-to-sign", "5-signed", "6-expired"] {
        assert!(out.join(format!("{shot}.png")).exists(), "{shot}");
    }

    let doc = app.sys.couch.get("port_requests", &id).await.unwrap();
    assert_eq!(doc["bill"]["name"], "Jo Browser Doe");
    assert_eq!(doc["bill"]["account_number"], "ACC-778");
    assert!(doc["_attachments"].get("bill.pdf").is_some(), "{}", doc["_attachments"]);
    let evidence = &doc["pvt_signatures"][0];
    assert_eq!(evidence["signer_name"], "Jo Browser Doe");
    assert_eq!(evidence["user_agent"], "kpr-browser-test");
    assert!(evidence.get("voided").is_none());
    let signed = signed_letter(&app, &t.customer, &id).await;
    assert_eq!(hex::encode(Sha256::digest(&signed)), evidence["signed_loa_sha256"].as_str().unwrap());
    let text = crate::loa::pdf_text(&signed);
    assert!(text.contains("Jo Browser Doe") && text.contains("ACC-778"), "{text}");
    assert!(text.contains("kpr-browser-test") && text.contains(evidence["link_id"].as_str().unwrap()), "{text}");
    let signed_mail = |m: &serde_json::Value| m["subject"].as_str().unwrap_or_default().contains("was signed");
    let maildev = std::env::var("MAILDEV_URL").unwrap();
    assert_eq!(wait_mails(&maildev, &submitter, 1).await.iter().filter(|m| signed_mail(m)).count(), 1);
    let to_authority = wait_mails(&maildev, &support_email(&t.reseller), 1).await;
    assert_eq!(to_authority.iter().filter(|m| signed_mail(m)).count(), 1);
}

#[tokio::test]
async fn a_rejected_customer_sees_the_fix_and_the_fields_to_correct_highlighted() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let submitter = format!("browser-{}@example.com", &hex32()[..10]);
    let id = request_for_customer(&app, &t.customer, &submitter).await;
    let ports = crate::helpers::Ports::new(&app, &t.customer);
    let (status, body) = ports.to(&app.token(&t.customer), &id, "submitted", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        ports.to(&app.token(&t.reseller), &id, "rejected", Some(json!({"reason_code": "wrong_pin"}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = make_link(&app, &t.customer, &id, json!({})).await;
    assert_eq!(status, 201, "{body}");
    let link = body["data"]["url"].as_str().unwrap().to_owned();
    let out = artifacts();
    run_in_browser("rejected_page.mjs", &[&link, &out.display().to_string()]).await;
    assert!(out.join("7-rejected.png").exists());
}
