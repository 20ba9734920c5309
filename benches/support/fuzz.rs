//! Random, mostly hostile requests against the whole API: used by the `fuzz` test (a short
//! run) and the `fuzz` benchmark section (at least 100,000 requests).

use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::{Map, Value, json};

/// What valid values the generator mixes in.
pub struct Target {
    pub account: String,
    pub port_request: String,
    pub token: String,
}

pub struct FuzzRequest {
    pub method: reqwest::Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

const STATES: [&str; 9] = [
    "submitted",
    "pending",
    "scheduled",
    "completed",
    "rejected",
    "canceled",
    "unconfirmed",
    "last_submitted",
    "bogus",
];

fn garbage<R: Rng>(rng: &mut R) -> String {
    let choices = [
        "..".to_owned(),
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_owned(),
        "A".repeat(rng.gen_range(1..600)),
        "%00".to_owned(),
        "%C3%28".to_owned(),
        "%F0%9F%92%A9".to_owned(),
        "null".to_owned(),
        "-1".to_owned(),
        format!("{:032x}", rng.r#gen::<u128>()),
        "_design%2Fport_requests".to_owned(),
        "%20%0d%0aX-Injected:%201".to_owned(),
    ];
    choices.choose(rng).unwrap().clone()
}

fn segment<R: Rng>(rng: &mut R, valid: &str) -> String {
    if rng.gen_bool(0.6) { valid.to_owned() } else { garbage(rng) }
}

fn random_json<R: Rng>(rng: &mut R, depth: u32) -> Value {
    match rng.gen_range(0..if depth > 3 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.r#gen::<bool>()),
        2 => json!(rng.r#gen::<i64>()),
        3 => json!(rng.r#gen::<f64>()),
        4 => json!(["", "x", "+12025550123", "2025550123", "💩", "\u{0}", "a@b.c", "<script>"].choose(rng).unwrap()),
        5 => Value::Array((0..rng.gen_range(0..4)).map(|_| random_json(rng, depth + 1)).collect()),
        _ => {
            let keys = [
                "name",
                "numbers",
                "bill",
                "comments",
                "notifications",
                "schedule_on",
                "data",
                "id",
                "_rev",
                "pvt_port_state",
                "port_state",
                "PortingNumbers",
                "Number",
                "+12025550123",
                "reason",
                "content",
            ];
            let mut m = Map::new();
            for _ in 0..rng.gen_range(0..5) {
                m.insert(keys.choose(rng).unwrap().to_string(), random_json(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

fn body<R: Rng>(rng: &mut R) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0 => Vec::new(),
        1 => (0..rng.gen_range(1..300)).map(|_| rng.r#gen::<u8>()).collect(),
        2 => format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        3 => b"{\"data\": {\"name\": \"x".to_vec(),
        4 => json!({"data": {"name": "x".repeat(rng.gen_range(100..50_000)), "numbers": {"+12025550123": {}}}})
            .to_string()
            .into_bytes(),
        5 => random_json(rng, 0).to_string().into_bytes(),
        6 => vec![0xff, 0xfe, b'{', b'}'],
        _ => json!({"data": random_json(rng, 0)}).to_string().into_bytes(),
    }
}

pub fn request<R: Rng>(rng: &mut R, t: &Target) -> FuzzRequest {
    let a = segment(rng, &t.account);
    let id = segment(rng, &t.port_request);
    let base = format!("/v2/accounts/{a}/port_requests");
    let templates = [
        base.clone(),
        format!("{base}/{id}"),
        format!("{base}/{id}/{}", STATES.choose(rng).unwrap()),
        format!("{base}/{id}/timeline"),
        format!("{base}/{id}/comments"),
        format!("{base}/{id}/comments/{}", rng.gen_range(0..5)),
        format!("{base}/{id}/notifications"),
        format!("{base}/{id}/attachments"),
        format!("{base}/{id}/attachments/{}", segment(rng, "bill.pdf")),
        format!("{base}/{id}/loa"),
        format!("/v2/accounts/{a}/descendants/port_requests"),
        "/v2/port_requests".to_owned(),
        format!("/v2/Properties/{a}/Porting"),
        format!("/v2/Properties/{a}/Porting/Status"),
        format!("/v2/Accounts/{a}/Porting/Status"),
        format!("/v2/{}", garbage(rng)),
        "/healthz".to_owned(),
    ];
    let mut path = templates.choose(rng).unwrap().clone();
    let queries = [
        "by_types=completed",
        "by_types=a,b",
        "page_size=0",
        "page_size=999999",
        "start_key=WzBd",
        "descending=true",
        "modified_from=1&modified_to=99999999999",
        "by_number=abc",
        "filename=..%2Fx",
        "From=1&To=2",
        "Results_Count=-1",
        "NextPageToken=zzz",
        "reason=%00",
        "accept_charges=true",
        "auth_token=garbage",
    ];
    if rng.gen_bool(0.4) {
        path.push('?');
        path.push_str(queries.choose(rng).unwrap());
    }
    let methods = [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::POST,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
        reqwest::Method::OPTIONS,
        reqwest::Method::HEAD,
    ];
    let mut headers = Vec::new();
    match rng.gen_range(0..10) {
        0 => {}
        1 => headers.push(("X-Auth-Token".into(), garbage(rng))),
        2 => headers.push(("Authorization".into(), format!("Basic {}", garbage(rng)))),
        _ => headers.push(("X-Auth-Token".into(), t.token.clone())),
    }
    let types = [
        "application/json",
        "application/x-www-form-urlencoded",
        "application/pdf",
        "text/plain",
        "multipart/form-data",
        "image/png",
        "garbage/type",
        "",
    ];
    let ct = types.choose(rng).unwrap();
    if !ct.is_empty() {
        headers.push(("Content-Type".into(), ct.to_string()));
    }
    if rng.gen_bool(0.1) {
        headers.push(("If-Match".into(), garbage(rng)));
    }
    FuzzRequest { method: methods.choose(rng).unwrap().clone(), path, headers, body: body(rng) }
}

/// Sends `r` to the service at `base` and checks the answer; the status when it passes.
pub async fn send(http: &reqwest::Client, base: &str, r: &FuzzRequest) -> Result<u16, String> {
    let mut req = http.request(r.method.clone(), format!("{base}{}", r.path)).body(r.body.clone());
    for (k, v) in &r.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let failed = |e: String| format!("{} {}: {e}", r.method, r.path);
    let resp = req.send().await.map_err(|e| failed(e.to_string()))?;
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = resp.bytes().await.map_err(|e| failed(e.to_string()))?;
    check(status, &ct, &body).map(|_| status).map_err(failed)
}

/// What a response must be: never a 5xx (503 only if CouchDB failed), errors in the envelope.
pub fn check(status: u16, content_type: &str, body: &[u8]) -> Result<(), String> {
    if status >= 500 {
        return Err(format!("server error {status}: {}", String::from_utf8_lossy(body)));
    }
    if status >= 400 && !body.is_empty() {
        if !content_type.starts_with("application/json") {
            return Err(format!("{status} without a JSON envelope ({content_type})"));
        }
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("{status} body is not JSON: {e}"))?;
        if v["status"] != "error" || v["error"].as_str() != Some(status.to_string().as_str()) {
            return Err(format!("{status} not in the envelope: {v}"));
        }
    }
    Ok(())
}
