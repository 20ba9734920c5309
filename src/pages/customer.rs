//! The pages a customer link opens (`/customer/{token}`): server-rendered HTML from
//! `templates/customer/`, a little JavaScript for uploads and the signature pad, a strict
//! Content-Security-Policy, a CSRF cookie checked on every form, and nothing that could carry
//! the token elsewhere (no third-party resource, no Referer). What the customer does there is
//! `app::customer`.

use crate::app::attachments::{self, Upload};
use crate::app::customer::{self as use_case, Closed, Opened, SignForm};
use crate::app::letter;
use crate::domain::customer::{self as cust, CONSENT, current_signature};
use crate::domain::port_request::uploads;
use crate::domain::port_state::PortState;
use crate::domain::time::gregorian_to_datetime;
use crate::http::errors::ApiError;
use crate::http::guesses::Guesses;
use crate::http::request::{read_body, request_id};
use crate::routes::attachments::upload_type;
use crate::state::AppState;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use handlebars::Handlebars;
use serde_json::{Map, Value, json};
use std::net::IpAddr;
use std::path::Path;

pub const PAGES: &str = "/customer/{token}";
const CSRF_COOKIE: &str = "kpr_csrf";
/// Forms (the signature's drawing included) are small; uploads go their own way.
const FORM_LIMIT: usize = 1_000_000;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The customer's pages and their assets.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/customer-assets/{file}").route(web::get().to(asset)))
        .service(web::resource(PAGES).route(web::get().to(page)))
        .service(web::resource(format!("{PAGES}/loa.pdf")).route(web::get().to(loa_preview)))
        .service(web::resource(format!("{PAGES}/details")).route(web::post().to(details)))
        .service(web::resource(format!("{PAGES}/documents")).route(web::put().to(upload)))
        .service(web::resource(format!("{PAGES}/sign")).route(web::post().to(sign)));
}

/// What every page handler works with (extracted together).
type Site = (web::Data<AppState>, web::Data<Pages>, web::Data<Guesses>);

/// The page templates, read once at start.
pub struct Pages {
    registry: Handlebars<'static>,
    script: String,
    style: String,
}

impl Pages {
    pub fn load(templates_dir: &Path) -> anyhow::Result<Self> {
        let dir = templates_dir.join("customer");
        let mut registry = Handlebars::new();
        for name in ["page", "closed"] {
            let path = dir.join(format!("{name}.html.hbs"));
            registry
                .register_template_file(name, &path)
                .map_err(|e| anyhow::anyhow!("customer page template {}: {e}", path.display()))?;
        }
        let read =
            |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| anyhow::anyhow!("customer page asset {f}: {e}"));
        Ok(Self { registry, script: read("page.js")?, style: read("page.css")? })
    }
}

/// The address a request came from: the peer, or, behind a proxy on a private or loopback
/// address, the last address that proxy saw (`X-Forwarded-For`).
fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if crate::domain::notifications::is_private_ip(peer)
        && let Some(forwarded) = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok())
        && let Some(last) = forwarded.rsplit(',').next().and_then(|ip| ip.trim().parse().ok())
    {
        return Some(last);
    }
    Some(peer)
}

fn secure_headers(resp: &mut actix_web::HttpResponseBuilder) -> &mut actix_web::HttpResponseBuilder {
    resp.insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header(("permissions-policy", "camera=(), microphone=(), geolocation=()"))
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    secure_headers(&mut HttpResponse::build(status)).content_type("text/html; charset=utf-8").body(body)
}

fn closed_page(pages: &Pages, status: StatusCode, heading: &str, text: &str) -> HttpResponse {
    let body = pages
        .registry
        .render("closed", &json!({ "heading": heading, "text": text }))
        .unwrap_or_else(|_| heading.to_owned());
    html(status, body)
}

fn closed(pages: &Pages, why: Closed) -> HttpResponse {
    match why {
        Closed::Unknown => closed_page(
            pages,
            StatusCode::NOT_FOUND,
            "This link does not work",
            "Check that you copied the whole address from your email, or ask your provider for a new link.",
        ),
        Closed::Gone => closed_page(
            pages,
            StatusCode::GONE,
            "This link has expired",
            "It is no longer valid. Ask your provider to send you a new one.",
        ),
    }
}

fn unavailable(pages: &Pages, e: &ApiError) -> HttpResponse {
    tracing::warn!(error = %e, "a customer page could not be served");
    closed_page(
        pages,
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again in a moment",
        "This page cannot be shown right now.",
    )
}

/// Opens the link of the path, or answers why not; unknown links count as guesses.
async fn open_link(
    state: &AppState,
    pages: &Pages,
    guesses: &Guesses,
    req: &HttpRequest,
    token: &str,
) -> Result<Opened, HttpResponse> {
    let ip = client_ip(req);
    if ip.is_some_and(|ip| guesses.is_blocked(ip)) {
        return Err(closed_page(
            pages,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Wait a few minutes, then open the link from your email again.",
        ));
    }
    match use_case::open(state, token).await {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(why)) => {
            if why == Closed::Unknown
                && let Some(ip) = ip
            {
                guesses.failed(ip);
            }
            Err(closed(pages, why))
        }
        Err(e) => Err(unavailable(pages, &e.into())),
    }
}

fn cookie_value(req: &HttpRequest, name: &str) -> Option<String> {
    let raw = req.headers().get(header::COOKIE)?.to_str().ok()?;
    raw.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_owned())
}

/// The form's CSRF token matches the cookie the page set, and a browser that says where the
/// form came from says it came from here.
fn csrf_ok(req: &HttpRequest, sent: Option<&str>) -> bool {
    let Some(cookie) = cookie_value(req, CSRF_COOKIE).filter(|c| c.len() >= 32) else { return false };
    let same = sent.is_some_and(|s| s.len() == cookie.len() && s.bytes().zip(cookie.bytes()).all(|(a, b)| a == b));
    let host = req.connection_info().host().to_owned();
    let origin_ok = match req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None | Some("null") => true,
        Some(origin) => url::Url::parse(origin).is_ok_and(|u| {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}{port}", u.host_str().unwrap_or_default()) == host
        }),
    };
    same && origin_ok
}

fn forbidden_form(pages: &Pages) -> HttpResponse {
    closed_page(
        pages,
        StatusCode::FORBIDDEN,
        "This form has expired",
        "Open the link from your email again, then repeat what you were doing.",
    )
}

/// What the page says, and the state it shows.
#[derive(Default)]
struct Shown {
    notice: Option<String>,
    error: Option<String>,
    /// Per field (`bill.name`, ...): its message.
    field_errors: Map<String, Value>,
    /// What the customer typed, shown again after a refusal.
    typed: Map<String, Value>,
}

const FIELDS: [(&str, &str, &str); 12] = [
    ("bill.name", "Name on the bill", "name"),
    ("bill.street_number", "Street number", "off"),
    ("bill.street_pre_dir", "Street direction (N, S, ...)", "off"),
    ("bill.street_address", "Street", "address-line1"),
    ("bill.street_type", "Street type (St, Ave, ...)", "off"),
    ("bill.locality", "City", "address-level2"),
    ("bill.region", "State or region", "address-level1"),
    ("bill.postal_code", "Postal code", "postal-code"),
    ("bill.account_number", "Account number with your current provider", "off"),
    ("bill.pin", "Account PIN or passcode", "off"),
    ("bill.btn", "Billing telephone number", "tel"),
    ("signee_name", "Name of the person who signs", "name"),
];

fn field_value(doc: &Value, name: &str) -> String {
    let pointer = format!("/{}", name.replace('.', "/"));
    match doc.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn state_label(state: Option<PortState>) -> &'static str {
    match state {
        Some(PortState::Unconfirmed) => "Waiting for your details and signature",
        Some(PortState::Rejected) => "Needs a correction: see the note from your provider",
        Some(PortState::Submitted | PortState::Pending) | None => "With your provider and the current carrier",
        Some(PortState::Scheduled) => "Scheduled",
        Some(PortState::Completed) => "Completed",
        Some(PortState::Canceled) => "Canceled",
    }
}

fn date_text(gregorian: i64) -> String {
    gregorian_to_datetime(gregorian).map(|d| d.format("%B %-d, %Y %H:%M UTC").to_string()).unwrap_or_default()
}

async fn render_page(
    state: &AppState,
    pages: &Pages,
    opened: &Opened,
    token: &str,
    csrf: &str,
    shown: Shown,
    status: StatusCode,
) -> HttpResponse {
    let doc = &opened.doc;
    let loa = match letter::render(state, &opened.owner, doc, None).await {
        Ok(pdf) => pdf,
        Err(e) => return unavailable(pages, &e.into()),
    };
    let brand = match use_case::brand(state, &opened.owner).await {
        Ok(name) => name.unwrap_or_else(|| "Your service provider".into()),
        Err(e) => return unavailable(pages, &e.into()),
    };
    let port_state = doc.state().ok();
    let stored = doc.to_value();
    // a rejection with a code names the fields to correct: the page highlights them
    let rejection = (port_state == Some(PortState::Rejected))
        .then(|| crate::domain::port_request::last_transition_to(doc, PortState::Rejected))
        .flatten()
        .and_then(|t| t.rejection.get().cloned());
    let to_correct = |name: &str| rejection.as_ref().is_some_and(|r| r.fields.iter().any(|f| f == name));
    let fields: Vec<Value> = FIELDS
        .iter()
        .map(|(name, label, autocomplete)| {
            let value = match shown.typed.get(*name).and_then(Value::as_str) {
                Some(typed) if *name != "bill.pin" => typed.to_owned(),
                _ if *name == "bill.pin" => String::new(),
                _ => field_value(&stored, name),
            };
            let pin_stored = *name == "bill.pin" && !field_value(&stored, name).is_empty();
            json!({
                "id": name.replace('.', "-"),
                "name": name,
                "label": label,
                "value": value,
                "autocomplete": autocomplete,
                "type": if *name == "bill.pin" { "password" } else if *name == "bill.btn" { "tel" } else { "text" },
                "placeholder": if pin_stored { "stored; type a new one to change it" } else { "" },
                "error": shown.field_errors.get(*name),
                "to_correct": to_correct(name),
            })
        })
        .collect();
    let numbers: Vec<Value> = doc.numbers_shown().keys().map(|e| json!({ "e164": e, "pretty": e.pretty() })).collect();
    let files: Vec<String> = uploads(doc).as_object().map(|u| u.keys().cloned().collect()).unwrap_or_default();
    let signature = current_signature(doc);
    let voided = signature.is_none() && doc.signature_list().next_back().is_some_and(|s| s.voided.is_some());
    let data = json!({
        "brand": brand,
        "base": format!("/customer/{token}"),
        "csrf": csrf,
        "request_name": doc.name.get(),
        "numbers": numbers,
        "carrier": doc.carrier().unwrap_or("your current provider"),
        "state_label": state_label(port_state),
        "rejection": rejection,
        "bill_to_correct": to_correct("attachments.bill"),
        "editable": port_state.is_some_and(cust::open_to_customer),
        "fields": fields,
        "uploads": files,
        "accepted": crate::domain::attachments::accepted_list(),
        "loa_content": loa.content_sha256,
        "signed": signature.as_ref().map(|s| json!({ "name": s.signer_name, "date": date_text(s.signed_at) })),
        "voided": voided,
        "consent": CONSENT,
        "expires": date_text(opened.link.expires),
        "submit_when_signed": opened.link.submit_when_signed,
        "notice": shown.notice,
        "error": shown.error,
    });
    match pages.registry.render("page", &data) {
        Ok(body) => {
            let mut resp = html(status, body);
            set_csrf_cookie(&mut resp, state, csrf);
            resp
        }
        Err(e) => unavailable(pages, &ApiError::Unavailable(format!("the customer page cannot be rendered: {e}"))),
    }
}

fn set_csrf_cookie(resp: &mut HttpResponse, state: &AppState, csrf: &str) {
    let secure = if state.settings.public_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!("{CSRF_COOKIE}={csrf}; Path=/customer/; HttpOnly; SameSite=Strict; Max-Age=86400{secure}");
    if let Ok(v) = header::HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
}

fn csrf_of(req: &HttpRequest) -> String {
    cookie_value(req, CSRF_COOKIE)
        .filter(|c| c.len() >= 32 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .unwrap_or_else(cust::new_secret)
}

fn notice_of(req: &HttpRequest) -> Option<String> {
    let done = req.query_string().split('&').find_map(|kv| kv.strip_prefix("done="))?;
    Some(
        match done {
            "details" => "Your details are saved.",
            "upload" => "Your document is uploaded.",
            "signed" => "Thank you: the letter is signed, and your provider has been told.",
            "submitted" => "Thank you: the letter is signed and your transfer has been submitted.",
            _ => return None,
        }
        .to_owned(),
    )
}

/// `GET /customer/{token}`
pub async fn page(site: Site, req: HttpRequest, token: web::Path<String>) -> HttpResponse {
    let (state, pages, guesses) = &site;
    let opened = match open_link(state, pages, guesses, &req, &token).await {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    let shown = Shown { notice: notice_of(&req), ..Shown::default() };
    render_page(state, pages, &opened, &token, &csrf_of(&req), shown, StatusCode::OK).await
}

/// `GET /customer/{token}/loa.pdf`: the letter the page shows (and whose hash the signature
/// form carries).
pub async fn loa_preview(site: Site, req: HttpRequest, token: web::Path<String>) -> HttpResponse {
    let (state, pages, guesses) = &site;
    let opened = match open_link(state, pages, guesses, &req, &token).await {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    match letter::render(state, &opened.owner, &opened.doc, None).await {
        Ok(letter) => secure_headers(&mut HttpResponse::Ok())
            .insert_header((header::X_FRAME_OPTIONS, "SAMEORIGIN"))
            .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'self'"))
            .content_type("application/pdf")
            .body(letter.pdf),
        Err(e) => unavailable(pages, &e.into()),
    }
}

fn see_page(token: &str, done: &str) -> HttpResponse {
    secure_headers(&mut HttpResponse::SeeOther())
        .insert_header((header::LOCATION, format!("/customer/{token}?done={done}")))
        .finish()
}

async fn read_form(req: &HttpRequest, payload: web::Payload) -> Result<Map<String, Value>, ApiError> {
    let body = read_body(req, &mut payload.into_inner(), FORM_LIMIT).await?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ApiError::InvalidRequest(format!("the form cannot be read: {e}")))?;
    Ok(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

/// Field errors of a refused change, by the form's field names, and a message for the rest.
fn explain(e: &ApiError) -> (Map<String, Value>, String) {
    let mut fields = Map::new();
    let mut general = Vec::new();
    if let ApiError::Validation(errors) = e
        && let Some(map) = errors.to_value().as_object()
    {
        for (path, codes) in map {
            let message = codes
                .as_object()
                .and_then(|c| c.values().find_map(|d| d.get("message").and_then(Value::as_str)))
                .unwrap_or("This value is not accepted")
                .to_owned();
            if FIELDS.iter().any(|(f, _, _)| f == path) {
                fields.insert(path.clone(), json!(message));
            } else {
                general.push(message);
            }
        }
    } else {
        general.push(match e {
            ApiError::Conflict => "Someone else changed this request at the same moment: try again.".to_owned(),
            ApiError::DatastoreUnreachable | ApiError::DatastoreFault | ApiError::Unavailable(_) => {
                "This cannot be saved right now: try again in a moment.".to_owned()
            }
            other => other.parts().1,
        });
    }
    let summary =
        if general.is_empty() { "Please correct the fields marked below.".to_owned() } else { general.join(" ") };
    (fields, summary)
}

/// The link of a form's page, and the form.
async fn open_form(
    state: &AppState,
    pages: &Pages,
    guesses: &Guesses,
    req: &HttpRequest,
    payload: web::Payload,
    token: &str,
) -> Result<(Opened, Map<String, Value>), HttpResponse> {
    let opened = open_link(state, pages, guesses, req, token).await?;
    match read_form(req, payload).await {
        Ok(form) => Ok((opened, form)),
        Err(e) => Err(page_with_error(state, pages, &opened, token, req, &e, Map::new()).await),
    }
}

/// `POST /customer/{token}/details`: the customer's corrections.
pub async fn details(site: Site, req: HttpRequest, payload: web::Payload, token: web::Path<String>) -> HttpResponse {
    let (state, pages, guesses) = &site;
    let (opened, form) = match open_form(state, pages, guesses, &req, payload, &token).await {
        Ok(both) => both,
        Err(resp) => return resp,
    };
    if !csrf_ok(&req, form.get("csrf").and_then(Value::as_str)) {
        return forbidden_form(pages);
    }
    match use_case::correct(state, &opened, &form, &request_id(&req)).await {
        Ok(_) => see_page(&token, "details"),
        Err(e) => page_with_error(state, pages, &opened, &token, &req, &e.into(), form).await,
    }
}

async fn page_with_error(
    state: &AppState,
    pages: &Pages,
    opened: &Opened,
    token: &str,
    req: &HttpRequest,
    e: &ApiError,
    typed: Map<String, Value>,
) -> HttpResponse {
    let (field_errors, summary) = explain(e);
    let status = match e.parts().0 {
        s if s.is_client_error() => s,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    // the change was refused: show CouchDB's current revision, with what was typed
    let fresh = match use_case::reload(state, opened).await {
        Ok(fresh) => fresh,
        Err(e) => return unavailable(pages, &e.into()),
    };
    let shown = Shown { error: Some(summary), field_errors, typed, ..Shown::default() };
    render_page(state, pages, &fresh, token, &csrf_of(req), shown, status).await
}

/// `PUT /customer/{token}/documents?filename=NAME`: the raw file (the page's script sends it,
/// with the CSRF token in `X-CSRF-Token`); answers JSON for the script.
pub async fn upload(site: Site, req: HttpRequest, payload: web::Payload, token: web::Path<String>) -> HttpResponse {
    let (state, pages, guesses) = &site;
    let json_answer = |status: StatusCode, message: &str| {
        secure_headers(&mut HttpResponse::build(status)).json(json!({ "message": message }))
    };
    let opened = match open_link(state, pages, guesses, &req, &token).await {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    let sent = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok());
    if !csrf_ok(&req, sent) {
        return json_answer(StatusCode::FORBIDDEN, "This page has expired: open the link again.");
    }
    if !opened.doc.state().is_ok_and(cust::open_to_customer) {
        return json_answer(StatusCode::BAD_REQUEST, "This request can no longer be changed here.");
    }
    let query = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string()).ok();
    let given = query.as_ref().and_then(|q| q.get("filename")).map(String::as_str);
    match customer_upload(state, &opened, &req, payload, given).await {
        Ok(name) => secure_headers(&mut HttpResponse::Created()).json(json!({ "name": name })),
        Err(e) => {
            let (_, summary) = explain(&e);
            let status = e.parts().0;
            json_answer(if status.is_client_error() { status } else { StatusCode::SERVICE_UNAVAILABLE }, &summary)
        }
    }
}

/// Reads a customer's upload (of an accepted type and size) and stores it on the request.
async fn customer_upload(
    state: &web::Data<AppState>,
    opened: &Opened,
    req: &HttpRequest,
    payload: web::Payload,
    given: Option<&str>,
) -> Result<String, ApiError> {
    let content_type = upload_type(req)?;
    let name = attachments::name_of(None, given, content_type)?;
    let chunks =
        crate::http::request::read_chunks(req, &mut payload.into_inner(), crate::http::request::MAX_BODY_BYTES).await?;
    let upload = Upload { name, content_type: content_type.to_owned(), chunks };
    Ok(use_case::upload(state, opened, upload, &request_id(req)).await?)
}

/// `POST /customer/{token}/sign`
pub async fn sign(site: Site, req: HttpRequest, payload: web::Payload, token: web::Path<String>) -> HttpResponse {
    let (state, pages, guesses) = &site;
    let (opened, form) = match open_form(state, pages, guesses, &req, payload, &token).await {
        Ok(both) => both,
        Err(resp) => return resp,
    };
    let text = |k: &str| form.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    if !csrf_ok(&req, Some(&text("csrf"))) {
        return forbidden_form(pages);
    }
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let signing = SignForm {
        signer_name: text("signer_name"),
        drawing: text("signature"),
        consent: matches!(text("consent").as_str(), "yes" | "on" | "true"),
        shown_loa_content: text("loa_content"),
        ip: client_ip(&req).map(|ip| ip.to_string()).unwrap_or_default(),
        user_agent: user_agent.chars().take(512).collect(),
    };
    match use_case::sign(state, &opened, &signing, &request_id(&req)).await {
        Ok(signed) => match signed.submitted {
            Some(Ok(())) => see_page(&token, "submitted"),
            Some(Err(e)) => {
                tracing::info!(error = %e, "signed, but the submission was refused");
                see_page(&token, "signed")
            }
            None => see_page(&token, "signed"),
        },
        Err(e) => page_with_error(state, pages, &opened, &token, &req, &e.into(), Map::new()).await,
    }
}

/// `GET /customer-assets/{file}`: the page's script and style (no token in their URL).
pub async fn asset(pages: web::Data<Pages>, file: web::Path<String>) -> HttpResponse {
    let (body, kind) = match file.as_str() {
        "page.js" => (pages.script.clone(), "text/javascript; charset=utf-8"),
        "page.css" => (pages.style.clone(), "text/css; charset=utf-8"),
        _ => return closed_page(&pages, StatusCode::NOT_FOUND, "Not found", ""),
    };
    secure_headers(&mut HttpResponse::Ok())
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .content_type(kind)
        .body(body)
}
