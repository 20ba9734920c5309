//! The end customer's link: made and revoked through the API, and the pages it opens, driven
//! over HTTP as a browser would (the browser itself is in `browser.rs`).

use crate::helpers::{Ports, TestApp, Tree, assert_error, spawn_app, support_email, wait_mails};
use crate::kazoo::{Account, hex32, random_number};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A 1×1 PNG, as a canvas would send a (very small) drawing.
pub const DRAWING: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

/// `helpers::tree`, with the reseller a Kazoo reseller (whose name the customer sees).
pub async fn tree(app: &TestApp) -> Tree {
    let reseller = app.sys.account(None, "Reseller", json!({"pvt_reseller": true})).await;
    app.sys.whitelabel(&reseller, &reseller.id, Some(&support_email(&reseller))).await;
    let customer = app.sys.account(Some(&reseller), "Customer", json!({})).await;
    Tree { reseller, customer }
}

fn maildev() -> String {
    std::env::var("MAILDEV_URL").expect("MAILDEV_URL is set: run the tests with scripts/test.sh")
}

/// The signed letter, as the API serves it.
pub async fn signed_letter(app: &TestApp, account: &Account, id: &str) -> Vec<u8> {
    let path = Ports::new(app, account).path(&format!("/{id}/attachments/signed_loa.pdf"));
    let resp = app.request(Method::GET, &path, Some(&app.token(account))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap().to_vec()
}

/// A request of `account` with a bill and a submitter address.
pub async fn request_for_customer(app: &TestApp, account: &Account, send_to: &str) -> String {
    let data = json!({"name": "Customer port", "numbers": {random_number(): {}},
        "bill": {"name": "Jo Doe", "carrier": "Pacific Bell", "account_number": "A-1", "pin": "PIN-4321"},
        "notifications": {"email": {"send_to": send_to}}});
    let (status, body) =
        app.call(Method::PUT, &Ports::new(app, account).path(""), &app.token(account), Some(data)).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

pub async fn make_link(app: &TestApp, account: &Account, id: &str, data: Value) -> (u16, Value) {
    make_link_as(app, account, &app.token(account), id, data).await
}

/// `make_link` with another caller's token.
async fn make_link_as(app: &TestApp, account: &Account, token: &str, id: &str, data: Value) -> (u16, Value) {
    let path = Ports::new(app, account).path(&format!("/{id}/customer_link"));
    app.call(Method::PUT, &path, token, Some(data)).await
}

/// The page, with its CSRF cookie.
struct Page {
    status: u16,
    html: String,
    headers: reqwest::header::HeaderMap,
    cookie: Option<String>,
}

impl Page {
    fn csrf(&self) -> String {
        let at = self.html.find("name=\"csrf\" value=\"").expect("a form with its CSRF token") + 19;
        self.html[at..].split('"').next().unwrap().to_owned()
    }

    /// The content hash of the letter the page shows.
    fn loa_content(&self) -> String {
        let at = self.html.find("name=\"loa_content\" value=\"").expect("the signature form") + 26;
        self.html[at..].split('"').next().unwrap().to_owned()
    }
}

async fn open(url: &str) -> Page {
    let resp = reqwest::Client::new().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let cookie =
        headers.get("set-cookie").and_then(|v| v.to_str().ok()).map(|c| c.split(';').next().unwrap().to_owned());
    Page { status, html: resp.text().await.unwrap(), headers, cookie }
}

async fn post_form(url: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> reqwest::Response {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let body = form
        .iter()
        .map(|(k, v)| format!("{}={}", crate::kazoo::enc(k), crate::kazoo::enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut req = client.post(url).header("content-type", "application/x-www-form-urlencoded").body(body);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

async fn stored(app: &TestApp, id: &str) -> Value {
    app.sys.couch.get("port_requests", id).await.unwrap()
}

#[tokio::test]
async fn the_customer_corrects_uploads_and_signs_through_the_link() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let submitter = format!("submitter-{}@example.com", &hex32()[..10]);
    let customer = format!("end-customer-{}@example.com", &hex32()[..10]);
    let id = request_for_customer(&app, &t.customer, &submitter).await;

    // the submitter asks for a link, mailed to the end customer
    let (status, body) = make_link(&app, &t.customer, &id, json!({"recipient": customer})).await;
    assert_eq!(status, 201, "{body}");
    let link = body["data"].clone();
    let url = link["url"].as_str().unwrap().to_owned();
    assert_eq!(link["mailed"], true, "{link}");
    assert_eq!(link["active"], true);
    // `<request id>-<secret>`: the id is hex, the secret base64url (it may hold '-' too)
    let token = url.trim_end_matches('/').rsplit('/').next().unwrap();
    let secret = token.split_once('-').unwrap().1.to_owned();
    assert!(secret.len() >= 40, "{url}");
    let mails = wait_mails(&maildev(), &customer, 1).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0]["text"].as_str().unwrap().contains(&url), "the mail carries the link");
    assert!(mails[0]["subject"].as_str().unwrap().starts_with("Reseller"), "{}", mails[0]["subject"]);
    // the secret is stored only hashed, and the API never shows it
    let doc = stored(&app, &id).await;
    assert!(!doc.to_string().contains(&secret));
    let (_, links) = app
        .call(
            Method::GET,
            &Ports::new(&app, &t.customer).path(&format!("/{id}/customer_link")),
            &app.token(&t.customer),
            None,
        )
        .await;
    assert!(!links.to_string().contains(&secret) && !links.to_string().contains("secret_sha256"), "{links}");
    let (_, public) = Ports::new(&app, &t.customer).get(&app.token(&t.customer), &id).await;
    assert!(public["data"].get("pvt_customer_links").is_none());

    // the page: numbers, details, no third-party resource, strict headers
    let page = open(&url).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("Pacific Bell") && page.html.contains("Jo Doe"), "{}", page.html);
    assert!(!page.html.contains("PIN-4"), "the stored PIN is never shown"); // (not its digits alone: a random number may hold them)
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert!(!page.html.contains("http://") && !page.html.contains("https://"), "no absolute URL on the page");
    let cookie = page.cookie.clone().expect("a CSRF cookie");
    let csrf = page.csrf();

    // a correction without the CSRF token changes nothing
    let before = stored(&app, &id).await;
    let resp = post_form(&format!("{url}/details"), Some(&cookie), &[("bill.name", "Mallory")]).await;
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(stored(&app, &id).await["_rev"], before["_rev"]);
    // a bad value: the page again, with the error next to the field, nothing stored
    let resp =
        post_form(&format!("{url}/details"), Some(&cookie), &[("csrf", &csrf), ("bill.btn", "call me maybe")]).await;
    assert_eq!(resp.status().as_u16(), 400);
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"bill-btn-error\"") && html.contains("aria-invalid=\"true\""), "{html}");
    assert_eq!(stored(&app, &id).await["_rev"], before["_rev"]);
    // a good correction
    let resp = post_form(
        &format!("{url}/details"),
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("bill.name", "Jo Q. Doe"),
            ("bill.btn", "4155550100"),
            ("bill.pin", ""),
            ("bill.carrier", "Evil"),
        ],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303);
    let doc = stored(&app, &id).await;
    assert_eq!(doc["bill"]["name"], "Jo Q. Doe");
    assert_eq!(doc["bill"]["btn"], "4155550100");
    assert_eq!(doc["bill"]["pin"], "PIN-4321", "an empty PIN keeps the stored one");
    assert_eq!(doc["bill"]["carrier"], "Pacific Bell", "only the fields a customer may correct");

    // an upload, as the page's script sends it
    let client = reqwest::Client::new();
    let up = |csrf: Option<String>| {
        let mut r = client
            .put(format!("{url}/documents?filename=bill.pdf"))
            .header("content-type", "application/pdf")
            .header("cookie", &cookie)
            .body(b"%PDF-1.4 a bill".to_vec());
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.send()
    };
    assert_eq!(up(None).await.unwrap().status().as_u16(), 403);
    let resp = up(Some(csrf.clone())).await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let wrong_type = client
        .put(format!("{url}/documents?filename=x.html"))
        .header("content-type", "text/html")
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .body("<script>")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status().as_u16(), 415);
    assert!(stored(&app, &id).await["_attachments"].get("bill.pdf").is_some());

    // sign: the form names the content of the letter the page shows
    let page = open(&url).await;
    let shown = reqwest::get(format!("{url}/loa.pdf")).await.unwrap().bytes().await.unwrap();
    assert!(shown.starts_with(b"%PDF"));
    let sign = |name: &'static str, consent: &'static str, sha: String| {
        let (url, cookie, csrf) = (url.clone(), cookie.clone(), csrf.clone());
        async move {
            post_form(
                &format!("{url}/sign"),
                Some(&cookie),
                &[
                    ("csrf", &csrf),
                    ("signer_name", name),
                    ("signature", DRAWING),
                    ("consent", consent),
                    ("loa_content", &sha),
                ],
            )
            .await
        }
    };
    let rev = stored(&app, &id).await["_rev"].clone();
    assert_eq!(sign("Jo Q. Doe", "", page.loa_content()).await.status().as_u16(), 400, "no consent");
    assert_eq!(sign("Jo Q. Doe", "yes", "0".repeat(64)).await.status().as_u16(), 400, "another letter");
    assert_eq!(stored(&app, &id).await["_rev"], rev, "refusals change nothing");
    let resp = sign("Jo Q. Doe", "yes", page.loa_content()).await;
    assert_eq!(resp.status().as_u16(), 303, "{}", resp.text().await.unwrap());
    let doc = stored(&app, &id).await;
    assert_eq!(doc["signee_name"], "Jo Q. Doe");
    assert!(doc["signing_date"].as_i64().is_some());
    let evidence = &doc["pvt_signatures"][0];
    assert_eq!(evidence["signer_name"], "Jo Q. Doe");
    assert_eq!(evidence["link_id"], link["id"]);
    assert_eq!(evidence["ip"], "127.0.0.1");
    assert_eq!(evidence["shown_loa_content_sha256"], page.loa_content());
    assert_eq!(evidence["shown_loa_sha256"].as_str().unwrap().len(), 64);
    assert!(evidence["user_agent"].is_string());
    // the signed letter, as the API serves it: its hash is the evidence's, and it says who signed
    let signed = signed_letter(&app, &t.customer, &id).await;
    assert_eq!(hex::encode(Sha256::digest(&signed)), evidence["signed_loa_sha256"].as_str().unwrap());
    let text = crate::loa::pdf_text(&signed);
    assert!(text.contains("Jo Q. Doe") && text.to_lowercase().contains("electronic signature evidence"), "{text}");
    assert!(text.contains(evidence["shown_loa_sha256"].as_str().unwrap()), "{text}");
    // the timeline, and mail to both sides
    let (_, timeline) = app
        .call(
            Method::GET,
            &Ports::new(&app, &t.customer).path(&format!("/{id}/timeline")),
            &app.token(&t.customer),
            None,
        )
        .await;
    assert!(timeline["data"].as_array().unwrap().iter().any(|e| e["type"] == "signature"), "{timeline}");
    let signed_mail = |m: &Value| m["subject"].as_str().unwrap_or_default().contains("was signed");
    let to_submitter = wait_mails(&maildev(), &submitter, 1).await;
    assert_eq!(to_submitter.iter().filter(|m| signed_mail(m)).count(), 1, "{to_submitter:?}");
    let to_authority = wait_mails(&maildev(), &support_email(&t.reseller), 1).await;
    assert_eq!(to_authority.iter().filter(|m| signed_mail(m)).count(), 1);
    let page = open(&url).await;
    assert!(page.html.contains("id=\"signed-status\""), "{}", page.html);

    // a change of a field the letter shows voids the signature; the page asks for a new one
    let (status, _) = app
        .call(
            Method::PATCH,
            &Ports::new(&app, &t.customer).path(&format!("/{id}")),
            &app.token(&t.customer),
            Some(json!({"bill": {"account_number": "A-2"}})),
        )
        .await;
    assert_eq!(status, 200);
    let doc = stored(&app, &id).await;
    assert!(doc["pvt_signatures"][0]["voided"]["at"].is_i64(), "{}", doc["pvt_signatures"]);
    assert!(doc.get("signing_date").is_none());
    assert!(open(&url).await.html.contains("id=\"voided-status\""));
}

#[tokio::test]
async fn links_open_only_while_the_customer_can_act_and_die_when_replaced_revoked_or_expired() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let ports = Ports::new(&app, &t.customer);
    let id = request_for_customer(&app, &t.customer, "someone@example.com").await;
    let (status, body) = make_link(&app, &t.customer, &id, json!({"expires_in_days": 31})).await;
    assert_error(status, &body, 400, "validation error");
    let (status, body) = make_link(&app, &t.customer, &id, json!({"recipient": "not an address"})).await;
    assert_error(status, &body, 400, "validation error");
    let (_, first) = make_link(&app, &t.customer, &id, json!({})).await;
    let first = first["data"]["url"].as_str().unwrap().to_owned();
    assert_eq!(open(&first).await.status, 200);
    // the port authority may make one too; it replaces the first
    let authority = app.token(&t.reseller);
    let (status, second) = make_link_as(&app, &t.customer, &authority, &id, json!({"expires_in_days": 1})).await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["data"]["created_by"]["account_id"], t.reseller.id.as_str());
    let second = second["data"]["url"].as_str().unwrap().to_owned();
    let gone = open(&first).await;
    assert_eq!(gone.status, 410);
    assert!(!gone.html.contains("Pacific Bell") && !gone.html.contains("Jo Doe"), "reveals nothing");
    assert_eq!(open(&second).await.status, 200);
    // expired
    let mut doc = stored(&app, &id).await;
    let n = doc["pvt_customer_links"].as_array().unwrap().len();
    doc["pvt_customer_links"][n - 1]["expires"] = json!(1);
    app.sys.couch.put("port_requests", &doc).await;
    assert_eq!(open(&second).await.status, 410);
    // revoked
    let (_, third) = make_link(&app, &t.customer, &id, json!({})).await;
    let third = third["data"]["url"].as_str().unwrap().to_owned();
    let (status, _) =
        app.call(Method::DELETE, &ports.path(&format!("/{id}/customer_link")), &app.token(&t.customer), None).await;
    assert_eq!(status, 200);
    assert_eq!(open(&third).await.status, 410);
    // unknown
    let unknown = format!("{}/customer/{id}-{}", app.address, "A".repeat(43));
    assert_eq!(open(&unknown).await.status, 404);
    assert_eq!(open(&format!("{}/customer/nothing", app.address)).await.status, 404);
    // once submitted, no new link
    let (status, _) = ports.to(&app.token(&t.customer), &id, "submitted", None).await;
    assert_eq!(status, 200);
    let (status, body) = make_link(&app, &t.customer, &id, json!({})).await;
    assert_error(status, &body, 400, "validation error");
    // another account's request is not reachable
    let other = app.sys.account(None, "Other", json!({})).await;
    let (status, _) = make_link(&app, &other, &id, json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn signing_can_submit_the_request_for_whoever_made_the_link() {
    let app = spawn_app().await;
    let t = tree(&app).await;
    let id = request_for_customer(&app, &t.customer, "someone@example.com").await;
    let (_, body) = make_link(&app, &t.customer, &id, json!({"submit_when_signed": true})).await;
    let url = body["data"]["url"].as_str().unwrap().to_owned();
    let page = open(&url).await;
    let cookie = page.cookie.clone().unwrap();
    let resp = post_form(
        &format!("{url}/sign"),
        Some(&cookie),
        &[
            ("csrf", &page.csrf()),
            ("signer_name", "Jo Doe"),
            ("signature", DRAWING),
            ("consent", "yes"),
            ("loa_content", &page.loa_content()),
        ],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303);
    assert!(resp.headers()["location"].to_str().unwrap().ends_with("done=submitted"));
    let doc = stored(&app, &id).await;
    assert_eq!(doc["pvt_port_state"], "submitted");
    assert_eq!(doc["signee_name"], "Jo Doe");
    // submitted: the page shows the request, and changes nothing any more
    let page = open(&url).await;
    assert_eq!(page.status, 200);
    assert!(!page.html.contains("id=\"sign-form\""));
    let resp =
        post_form(&format!("{url}/details"), Some(&cookie), &[("csrf", &page_csrf_of(&cookie)), ("bill.name", "X")])
            .await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(stored(&app, &id).await["_rev"], doc["_rev"]);
}

/// The CSRF token is the cookie's value (double submit).
fn page_csrf_of(cookie: &str) -> String {
    cookie.split_once('=').unwrap().1.to_owned()
}

#[tokio::test]
async fn guessing_links_is_rate_limited() {
    let app = spawn_app().await;
    let id = hex32();
    for i in 0..20 {
        let page = open(&format!("{}/customer/{id}-{:0>43}", app.address, i)).await;
        assert_eq!(page.status, 404);
    }
    let page = open(&format!("{}/customer/{id}-{:0>43}", app.address, 99)).await;
    assert_eq!(page.status, 429);
    assert!(page.html.contains("Too many attempts"));
}
