//! The Letter of Authorization: what the PDF says, template overrides, errors, caching.

use crate::helpers::{Ports, TestApp, assert_error, send, spawn_app, spawn_app_with, tree};
use crate::kazoo::{account_db, random_number};
use reqwest::Method;
use serde_json::json;

pub fn pdf_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loa.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn get_loa(app: &TestApp, token: &str, path: &str) -> (u16, String, Vec<u8>) {
    let resp = app.request(Method::GET, path, Some(token)).header("accept", "application/pdf").send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

fn request_body(numbers: &[&str], carrier: &str) -> serde_json::Value {
    let nums: serde_json::Map<String, serde_json::Value> = numbers.iter().map(|n| (n.to_string(), json!({}))).collect();
    json!({
        "name": "Main office move", "numbers": nums, "signee_name": "Jane Q. Signer",
        "bill": {"name": "Jane Q. Customer", "carrier": carrier, "account_number": "ACC-778899", "pin": "PIN-4321",
                 "btn": "2025550199", "street_number": "1600", "street_address": "Pennsylvania", "street_type": "Ave",
                 "locality": "Washington", "region": "DC", "postal_code": "20500"}
    })
}

#[tokio::test]
async fn the_letter_says_what_the_carrier_needs() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let token = app.token(&t.customer);
    let (n1, n2) = (random_number(), random_number());
    let (status, body) =
        app.call(Method::PUT, &ports.path(""), &token, Some(request_body(&[&n1, &n2], "Pacific Bell"))).await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let (status, ct, pdf) = get_loa(&app, &token, &ports.path(&format!("/{id}/loa"))).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(ct, "application/pdf");
    assert!(pdf.starts_with(b"%PDF"));
    let text = pdf_text(&pdf);
    for expected in [
        "LETTER OF AUTHORIZATION",
        "Customer",
        "Jane Q. Customer",
        "1600 Pennsylvania Ave",
        "Washington, DC 20500",
        "Pacific Bell",
        "Jane Q. Signer",
        "ACC-778899",
        &n1,
        &n2,
    ] {
        assert!(text.contains(expected), "the LOA lacks {expected:?}:\n{text}");
    }
    let pretty = format!("({}) {} - {}", &n1[2..5], &n1[5..8], &n1[8..]);
    assert!(text.contains(&pretty), "{pretty} missing:\n{text}");
    // (letters in the PIN: the digits alone can turn up in a random number)
    assert!(!text.contains("PIN-4"), "the PIN is masked");
    // x-pdf is offered too, JSON is not
    let resp = app
        .request(Method::GET, &ports.path(&format!("/{id}/loa")), Some(&token))
        .header("accept", "application/x-pdf")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-pdf");
    let (status, body) = send(
        app.request(Method::GET, &ports.path(&format!("/{id}/loa")), Some(&token)).header("accept", "application/json"),
    )
    .await;
    assert_error(status, &body, 406, "not_acceptable");
}

#[tokio::test]
async fn a_carrier_template_in_couchdb_wins() {
    let app = spawn_app().await;
    let sys = app.sys;
    let reseller = sys.account(None, "Resell Co", json!({"pvt_reseller": true})).await;
    let customer = sys.account(Some(&reseller), "Client", json!({})).await;
    let db = account_db(&reseller.id);
    let created = sys.couch.put(&db, &json!({"_id": "pdf.loa", "pvt_type": "config"})).await;
    sys.couch
        .put_attachment(&db, "pdf.loa", created["rev"].as_str().unwrap(), "acme telco.hbs", "text/html",
                        b"<html><body><h1>ACME TRANSFER FORM for {{account.name}}</h1>{{#each numbers}}<p>{{this.e164}}</p>{{/each}}</body></html>".to_vec())
        .await;
    let ports = Ports::new(&app, &customer);
    let token = app.token(&customer);
    let n = random_number();
    let (_, acme) = app.call(Method::PUT, &ports.path(""), &token, Some(request_body(&[&n], "Acme Telco"))).await;
    let (_, other) =
        app.call(Method::PUT, &ports.path(""), &token, Some(request_body(&[&random_number()], "Other Co"))).await;

    let (status, _, pdf) =
        get_loa(&app, &token, &ports.path(&format!("/{}/loa", acme["data"]["id"].as_str().unwrap()))).await;
    assert_eq!(status, 200);
    let text = pdf_text(&pdf);
    assert!(text.contains("ACME TRANSFER FORM for Client") && text.contains(&n), "{text}");
    let (_, _, pdf) =
        get_loa(&app, &token, &ports.path(&format!("/{}/loa", other["data"]["id"].as_str().unwrap()))).await;
    assert!(pdf_text(&pdf).contains("LETTER OF AUTHORIZATION"), "other carriers get the default letter");
}

#[tokio::test]
async fn a_missing_renderer_is_a_clear_503() {
    let app = spawn_app_with(|s| s.wkhtmltopdf = "/nonexistent/wkhtmltopdf".into()).await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let token = app.token(&t.customer);
    let id = ports.create(&token, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let (status, body) = send(app.request(Method::GET, &ports.path(&format!("/{id}/loa")), Some(&token))).await;
    let data = assert_error(status, &body, 503, "service_unavailable");
    assert!(data["message"].as_str().unwrap().contains("wkhtmltopdf"), "{data}");
}

#[tokio::test]
async fn the_pdf_of_a_revision_is_rendered_once() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let wrapper = dir.path().join("wkhtmltopdf");
    std::fs::write(&wrapper, format!("#!/bin/sh\necho run >> '{}'\nexec wkhtmltopdf \"$@\"\n", counter.display()))
        .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&wrapper).status().unwrap();
    let program = wrapper.display().to_string();
    let app = spawn_app_with(move |s| s.wkhtmltopdf = program).await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let token = app.token(&t.customer);
    let id = ports.create(&token, &[&random_number()]).await["id"].as_str().unwrap().to_owned();
    let runs = || std::fs::read_to_string(&counter).map(|s| s.lines().count()).unwrap_or(0);
    let loa = ports.path(&format!("/{id}/loa"));
    let (status, _, first) = get_loa(&app, &token, &loa).await;
    assert_eq!(status, 200);
    let (_, _, second) = get_loa(&app, &token, &loa).await;
    assert_eq!(first, second);
    assert_eq!(runs(), 1);
    app.call(Method::PATCH, &ports.path(&format!("/{id}")), &token, Some(json!({"signee_name": "Someone Else"}))).await;
    get_loa(&app, &token, &loa).await;
    assert_eq!(runs(), 2, "a new revision renders again");
}

#[tokio::test]
async fn kazoos_own_tmpl_overrides_are_honoured() {
    let app = spawn_app().await;
    let sys = app.sys;
    let reseller = sys.account(None, "Resell <Co>", json!({"pvt_reseller": true})).await;
    let customer = sys.account(Some(&reseller), "Client & Sons", json!({})).await;
    let db = account_db(&reseller.id);
    let created = sys.couch.put(&db, &json!({"_id": "pdf.loa", "pvt_type": "config"})).await;
    // Kazoo's syntax, as its shipped loa.tmpl writes it; the carrier's named as Kazoo names it
    let loa = r#"<html><body><h1>KAZOO LOA by {{reseller.name|default:""}} for {{account.name|default:""}}</h1>
{% for n in numbers %}<p>N{{ forloop.counter }}: {{n|default:""}}</p>{% endfor %}
<p>Bill: {{bill.name|default:""}}</p>{% if qr_code %}<img src="data:image/png;base64,{{qr_code.image}}" width="100" height="100"/>{% endif %}
<p>{{ request.id }} {{ account.pvt_api_key }}{{ type }}</p></body></html>"#;
    let r = sys
        .couch
        .put_attachment(
            &db,
            "pdf.loa",
            created["rev"].as_str().unwrap(),
            "loa.tmpl",
            "text/html",
            loa.as_bytes().to_vec(),
        )
        .await;
    let carrier = "<html><body><h1>{{ request.bill.carrier|upper }} FORM</h1></body></html>";
    let r = sys
        .couch
        .put_attachment(&db, "pdf.loa", r["rev"].as_str().unwrap(), "pacific%20bell.tmpl", "text/html", carrier.into())
        .await;
    sys.couch
        .put_attachment(
            &db,
            "pdf.loa",
            r["rev"].as_str().unwrap(),
            "broken%20co.tmpl",
            "text/html",
            b"{% if %}".to_vec(),
        )
        .await;
    let ports = Ports::new(&app, &customer);
    let token = app.token(&customer);
    let n = random_number();
    let created = async |numbers: &[&str], carrier: &str| {
        let (_, r) = app.call(Method::PUT, &ports.path(""), &token, Some(request_body(numbers, carrier))).await;
        r["data"]["id"].as_str().unwrap().to_owned()
    };
    let other = created(&[&n], "Other Co").await;
    let (status, _, pdf) = get_loa(&app, &token, &ports.path(&format!("/{other}/loa"))).await;
    assert_eq!(status, 200);
    let text = pdf_text(&pdf);
    let pretty = format!("({}) {} - {}", &n[2..5], &n[5..8], &n[8..]);
    for expected in ["KAZOO LOA by Resell <Co> for Client & Sons", &format!("N1: {pretty}"), &other, "loa"] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    assert!(!text.contains("pvt") && !text.contains("api_key"), "no private key reaches a template:\n{text}");

    let pacific = created(&[&random_number()], "Pacific Bell").await;
    let (_, _, pdf) = get_loa(&app, &token, &ports.path(&format!("/{pacific}/loa"))).await;
    assert!(pdf_text(&pdf).contains("PACIFIC BELL FORM"), "the carrier's own template");

    // a carrier template that does not parse is passed over for the next: loa.tmpl
    let broken = created(&[&random_number()], "Broken Co").await;
    let (status, _, pdf) = get_loa(&app, &token, &ports.path(&format!("/{broken}/loa"))).await;
    assert_eq!(status, 200);
    assert!(pdf_text(&pdf).contains("KAZOO LOA by"), "{}", pdf_text(&pdf));
}
