//! `desk`: the port authority's desk at 1,000 and 100,000 requests: the attention listing's
//! first page and the report per losing carrier (all time, and a 90-day window), each next to
//! the raw view reads it needs; the digest of an authority with 10,000 accounts.

use super::{Ctx, JOBS_OFF, SAMPLES, compare, median, ms, start_service_with};
use futures_util::StreamExt;
use kazoo_port_requests::bootstrap;
use kazoo_port_requests::domain::desk::attention;
use kazoo_port_requests::domain::desk::calendar::Calendar;
use kazoo_port_requests::domain::desk::rejection_codes;
use kazoo_port_requests::domain::ids::new_doc_id;
use kazoo_port_requests::domain::time::now_gregorian;
use rand::Rng;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const DAY: i64 = 86_400;
const CARRIERS: [&str; 12] = [
    "AT&T",
    "Verizon",
    "Lumen",
    "Frontier",
    "Windstream",
    "Bandwidth",
    "Comcast",
    "Spectrum",
    "Cox",
    "Telnyx",
    "Twilio",
    "Pacific Bell",
];

/// A request as Kazoo and this service store it, in a state drawn at random, with the
/// transitions, dates, carrier and rejection codes the desk reads.
fn desk_doc(account: &str, tree: &[String], authority: &str, now: i64, rng: &mut rand::rngs::ThreadRng) -> Value {
    let state = match rng.gen_range(0..10) {
        0 => "unconfirmed",
        1 => "submitted",
        2 => "pending",
        3 => "scheduled",
        4 => "rejected",
        5 => "canceled",
        _ => "completed",
    };
    let created = now - rng.gen_range(DAY..365 * DAY);
    // the first carriers far more frequent than the last
    let carrier = CARRIERS[11 - (rng.gen_range(0.0..144.0f64).sqrt() as usize).min(11)];
    let number = format!("+1{}{:09}", rng.gen_range(2..10), rng.gen_range(0..1_000_000_000u64));
    let mut at = created;
    let mut step = |rng: &mut rand::rngs::ThreadRng, most: i64| {
        at = (at + rng.gen_range(60..most.max(61))).min(now);
        at
    };
    let t = |new: &str, previous: &str, when: i64| json!({"timestamp": when, "type": "transition", "transition": {"new": new, "previous": previous}});
    let mut transitions = vec![t("unconfirmed", "", created)];
    let path: &[&str] = match state {
        "unconfirmed" => &[],
        "submitted" => &["submitted"],
        "pending" => &["submitted", "pending"],
        "scheduled" => &["submitted", "pending", "scheduled"],
        "completed" => &["submitted", "pending", "scheduled", "completed"],
        "rejected" => &["submitted", "rejected"],
        _ => &["canceled"],
    };
    let mut previous = "unconfirmed";
    for s in path {
        let mut entry = t(s, previous, step(rng, 6 * DAY));
        if *s == "rejected" && rng.gen_bool(0.7) {
            let codes = rejection_codes::shipped();
            entry["reason_code"] = json!(codes[rng.gen_range(0..codes.len())].code);
        }
        transitions.insert(0, entry);
        previous = s;
    }
    let mut doc = json!({
        "_id": new_doc_id(), "pvt_type": "port_request", "pvt_vsn": "1", "pvt_account_db": "port_requests",
        "name": format!("Desk port {number}"), "numbers": {number: {}},
        "bill": {"name": "Desk Customer", "carrier": carrier},
        "pvt_port_state": state, "pvt_account_id": account, "pvt_account_name": "Desk Account",
        "pvt_port_authority": authority, "pvt_port_authority_name": "Desk Authority", "pvt_tree": tree,
        "pvt_created": created, "pvt_modified": at, "pvt_transitions": transitions,
    });
    if matches!(state, "submitted" | "pending") && rng.gen_bool(0.5) {
        doc["transfer_date"] = json!(now + rng.gen_range(-5 * DAY..30 * DAY));
    }
    if state == "scheduled" {
        doc["scheduled_date"] = json!(now + rng.gen_range(-10 * DAY..20 * DAY));
    }
    if state == "completed" {
        doc["scheduled_date"] = json!(at - rng.gen_range(-DAY..2 * DAY));
    }
    doc
}

async fn raw(ctx: &Ctx, view: &str, body: &Value) -> Vec<Value> {
    let url = format!("{}/port_requests/_design/kazoo_port_requests_desk/_view/{view}", ctx.couch_url);
    let r: Value = ctx.http.post(url).json(body).send().await.unwrap().json().await.unwrap();
    r["rows"].as_array().cloned().unwrap_or_default()
}

/// The reads of the attention listing's first page of 50: each rule's key ranges in order,
/// with their documents, until 51 rows are in.
async fn raw_attention(ctx: &Ctx, authority: &str) -> usize {
    let now = now_gregorian();
    let cal = Calendar::office(chrono_tz::UTC);
    let mut rows = 0;
    for rule in attention::in_effect(None).iter().filter(|r| r.who == attention::Actor::Authority) {
        let bound = rule.bound(&cal, now);
        for st in &rule.states {
            let need = 51 - rows;
            let body = json!({
                "start_key": ["authority", authority, st, rule.anchor.as_str(), 0],
                "end_key": ["authority", authority, st, rule.anchor.as_str(), bound, {}],
                "include_docs": true, "reduce": false, "limit": need + 8 });
            rows += raw(ctx, "attention", &body).await.len().min(need);
            if rows > 50 {
                return rows;
            }
        }
    }
    rows
}

/// The reads of a report: the grouped sums and code counts; for a window, a range per carrier
/// and per carrier and code, eight at a time.
async fn raw_report(ctx: &Ctx, scope: &str, window: Option<(i64, i64)>) -> usize {
    let grouped = |level: u32| json!({"start_key": [scope], "end_key": [scope, {}], "group_level": level});
    let (by_carrier, by_code) = (grouped(2), grouped(3));
    let (carriers, codes) =
        tokio::join!(raw(ctx, "report_by_carrier", &by_carrier), raw(ctx, "report_rejections", &by_code));
    let Some((from, to)) = window else { return carriers.len() + codes.len() };
    let ranges: Vec<(&str, Value)> = carriers
        .iter()
        .map(|r| {
            let c = &r["key"][1];
            ("report_by_carrier", json!({"start_key": [scope, c, from], "end_key": [scope, c, to, {}]}))
        })
        .chain(codes.iter().map(|r| {
            let (c, code) = (&r["key"][1], &r["key"][2]);
            ("report_rejections", json!({"start_key": [scope, c, code, from], "end_key": [scope, c, code, to, {}]}))
        }))
        .collect();
    futures_util::stream::iter(ranges.iter().map(|(view, body)| raw(ctx, view, body)))
        .buffered(8)
        .map(|rows| rows.len())
        .fold(0, |a, b| async move { a + b })
        .await
}

async fn service_get(ctx: &Ctx, url: &str, token: &str) -> usize {
    let r: Value = ctx.http.get(url).header("X-Auth-Token", token).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["status"], "success", "{url}: {r}");
    r["data"].as_array().map_or(0, Vec::len)
}

async fn warm(ctx: &Ctx) -> Duration {
    let t = Instant::now();
    raw(ctx, "attention", &json!({"limit": 1, "reduce": false})).await;
    t.elapsed()
}

/// (service, raw) medians of: the attention page, the report of all time, the report of 90 days.
async fn measure(ctx: &Ctx, base: &str, token: &str, authority: &str) -> [(Duration, Duration); 3] {
    let now = now_gregorian();
    let attention_url = format!("{base}/v2/port_requests/attention?page_size=50");
    let report_url = format!("{base}/v2/accounts/{authority}/port_requests/report");
    let window_url = format!("{report_url}?created_from={}&created_to={now}", now - 90 * DAY);
    let page = compare(|| service_get(ctx, &attention_url, token), || raw_attention(ctx, authority)).await;
    let all = compare(|| service_get(ctx, &report_url, token), || raw_report(ctx, authority, None)).await;
    let window =
        compare(|| service_get(ctx, &window_url, token), || raw_report(ctx, authority, Some((now - 90 * DAY, now))))
            .await;
    assert_eq!(service_get(ctx, &attention_url, token).await, 50);
    [page, all, window]
}

pub async fn run() {
    let ctx = Ctx::new().await;
    let (master, authority, user) = ctx.account_under_master("Desk Authority").await;
    let mut wl = json!({"_id": "whitelabel", "port": {"authority": authority, "support_email": "desk@bench.example"}});
    let authority_db = kazoo_port_requests::domain::ids::AccountId::parse(&authority).unwrap().db_name();
    ctx.couch.save(&authority_db, &mut wl).await.unwrap();
    let token = bootstrap::token(&ctx.couch, &authority, Some(&user), 24 * 3600).await.unwrap();
    let tree = vec![master.clone(), authority.clone()];
    // 10,000 accounts under the authority
    let accounts: Vec<String> = (0..10_000).map(|_| new_doc_id()).collect();
    for chunk in accounts.chunks(1000) {
        let docs: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({"_id": id, "name": format!("Desk Account {i}"), "pvt_type": "account",
                                  "pvt_tree": tree, "timezone": "UTC"})
            })
            .collect();
        ctx.couch.bulk_save("accounts", &docs).await.unwrap();
    }
    let now = now_gregorian();
    let mut rng = rand::thread_rng();
    let mut make = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|_| desk_doc(&accounts[rng.gen_range(0..accounts.len())], &tree, &authority, now, &mut rng))
            .collect()
    };
    super::insert(&ctx, make(1000)).await;
    let warm1 = warm(&ctx).await;
    let service = start_service_with(&ctx.couch_url, JOBS_OFF).await;
    let small = measure(&ctx, &service.base, &token, &authority).await;

    let t = Instant::now();
    super::insert(&ctx, make(99_000)).await;
    let loaded = t.elapsed();
    let warm2 = warm(&ctx).await;
    let large = measure(&ctx, &service.base, &token, &authority).await;

    // the digest of the authority (10,000 accounts, 100,000 requests), as the CLI makes it
    let bin = std::env::var("KPR_BIN").unwrap_or_else(|_| "target/release/kazoo-port-requests".into());
    let mut digest_runs = Vec::new();
    let mut printed = String::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = std::process::Command::new(&bin)
            .args(["digest", "--account", &authority, "--dry-run"])
            .env("COUCHDB_URL", &ctx.couch_url)
            .env("LOG", "error")
            .output()
            .unwrap();
        digest_runs.push(t.elapsed());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        printed = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    let raw_digest = median(
        futures_util::stream::iter(0..5)
            .then(|_| async {
                let t = Instant::now();
                raw_attention(&ctx, &authority).await;
                t.elapsed()
            })
            .collect()
            .await,
    );

    let kind = std::env::var("COUCHDB_KIND").unwrap_or_else(|_| "CouchDB".into());
    println!("\n### The port authority's desk ({kind}, {SAMPLES} samples each, medians)\n");
    println!("| query | requests | service | raw view reads it needs | ratio (target ≤ 1.5) |");
    println!("|---|---|---|---|---|");
    let names = [
        "`/v2/port_requests/attention`, first page (50)",
        "`.../report`, all time",
        "`.../report`, created in the last 90 days",
    ];
    for (set, label) in [(&small, "1,000"), (&large, "100,000")] {
        for (i, (svc, rawd)) in set.iter().enumerate() {
            println!(
                "| {} | {label} | {} | {} | {:.2} |",
                names[i],
                ms(*svc),
                ms(*rawd),
                svc.as_secs_f64() / rawd.as_secs_f64()
            );
        }
    }
    println!("\n| query | service, 1,000 → 100,000 requests (target ≤ 1.3) | raw reads, same |\n|---|---|---|");
    for i in 0..3 {
        println!(
            "| {} | {:.2} | {:.2} |",
            names[i],
            large[i].0.as_secs_f64() / small[i].0.as_secs_f64(),
            large[i].1.as_secs_f64() / small[i].1.as_secs_f64()
        );
    }
    let first_line = printed.lines().next().unwrap_or_default().to_owned();
    println!(
        "\nthe digest of an authority with 10,000 accounts and 100,000 requests (`kazoo-port-requests digest --dry-run`, a whole process: start, read, render; 5 runs): median {} (its attention reads alone, raw: {}); it said: {first_line}",
        ms(median(digest_runs)),
        ms(raw_digest)
    );
    println!(
        "\n(load of 99,000 requests: {:.1} s; view indexing: {:.1} s then {:.1} s)",
        loaded.as_secs_f64(),
        warm1.as_secs_f64(),
        warm2.as_secs_f64()
    );
    drop(service);
}
