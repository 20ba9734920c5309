//! `scripts/bench.sh [section ...]`: the service's latency next to the raw CouchDB requests
//! that return the same data, measured in the same run against the same server. Prints
//! markdown tables (copied into `docs/benchmarks.md`).
//!
//! Sections: `core`, `deliveries`, `cluster` (core and deliveries on a 3-node cluster, when
//! scripts/bench.sh started one), `bus` (Kazoo's AMQP bus: publish latency with two instances,
//! stored ErlyDTL mails against handlebars, `core` again with `AMQP_URL` set), `listings`,
//! `desk` (the port authority's desk at 1,000 and 100,000 requests), `loa`, `fuzz`.

use kazoo_port_requests::bootstrap;
use kazoo_port_requests::configuration::CouchSettings;
use kazoo_port_requests::domain::ids::new_doc_id;
use kazoo_port_requests::domain::time::now_gregorian;
use kazoo_port_requests::store::Couch;
use rand::Rng;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/desk.rs"]
mod desk;
#[path = "support/fuzz.rs"]
mod fuzz;

const SAMPLES: usize = 200;
const WARMUP: usize = 20;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/bench.sh"))
}

struct Service {
    child: Child,
    base: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_service(couch_url: &str) -> Service {
    start_service_with(couch_url, &[]).await
}

/// Every background job off: they would compete with the measured calls for CouchDB.
const JOBS_OFF: &[(&str, &str)] = &[
    ("DELIVERY_WORKER", "false"),
    ("CONFLICT_RESOLUTION", "false"),
    ("CLAIM_ADOPTION", "false"),
    ("COMPLETION_REPAIR", "false"),
    ("REMINDERS", "false"),
    ("CLEANUP", "false"),
    ("DIGEST", "false"),
    ("DESK_METRICS_INTERVAL", "0"),
];

async fn start_service_with(couch_url: &str, extra: &[(&str, &str)]) -> Service {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // `core` run again by the `bus` section: the same calls, with Kazoo's bus on
    let bus: Vec<(&str, String)> =
        std::env::var("KPR_BENCH_WITH_BUS").ok().map(|url| vec![("AMQP_URL", url)]).unwrap_or_default();
    let child = Command::new(env("KPR_BIN"))
        .arg("serve")
        .env("COUCHDB_URL", couch_url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG", "warn")
        .envs(bus)
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .expect("the service starts");
    let base = format!("http://127.0.0.1:{port}");
    let service = Service { child, base };
    for _ in 0..300 {
        if reqwest::get(format!("{}/healthz", service.base)).await.is_ok_and(|r| r.status().is_success()) {
            return service;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the service did not start");
}

/// A bare nginx reverse proxy in front of CouchDB (kept-alive upstream connections, no logs):
/// what one more HTTP hop costs on this machine, with next to no work in it. `None` without
/// nginx.
fn start_bare_proxy(couch_url: &str) -> Option<(Service, tempfile::TempDir)> {
    let nginx = ["/usr/sbin/nginx", "nginx"].into_iter().find(|n| Command::new(n).arg("-v").output().is_ok())?;
    let dir = tempfile::tempdir().ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let couch = url::Url::parse(couch_url).ok()?;
    let upstream = format!("{}:{}", couch.host_str()?, couch.port()?);
    let conf = format!(
        "worker_processes 1; daemon off; error_log {d}/error.log warn; pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};
  upstream couch {{ server {upstream}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://couch; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}",
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).ok()?;
    let child = Command::new(nginx)
        .args(["-c", &dir.path().join("nginx.conf").display().to_string(), "-p", &dir.path().display().to_string()])
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    Some((Service { child, base: format!("http://127.0.0.1:{port}") }, dir))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Times `a` and `b` alternately, `SAMPLES` times each after a warm-up; returns the medians.
async fn compare<A, B, FA, FB>(mut a: A, mut b: B) -> (Duration, Duration)
where
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: std::future::Future<Output = usize>,
    FB: std::future::Future<Output = usize>,
{
    for _ in 0..WARMUP {
        a().await;
        b().await;
    }
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let t = Instant::now();
        a().await;
        ta.push(t.elapsed());
        let t = Instant::now();
        b().await;
        tb.push(t.elapsed());
    }
    (median(ta), median(tb))
}

struct Ctx {
    couch: Couch,
    couch_url: String,
    http: reqwest::Client,
}

impl Ctx {
    async fn new() -> Ctx {
        Self::on(&env("COUCHDB_URL")).await
    }

    async fn on(couch_url: &str) -> Ctx {
        let couch_url = couch_url.to_owned();
        let settings = CouchSettings::parse(&couch_url, Duration::from_secs(120)).unwrap();
        let couch = Couch::new(&settings).unwrap();
        bootstrap::ensure_databases(&couch).await.unwrap();
        Ctx { couch, couch_url, http: reqwest::Client::new() }
    }

    /// Writes an account (and an admin user) the way Kazoo lays them out; `with_db` also
    /// creates its account database (only needed for accounts that call or are called).
    async fn account(&self, id: &str, name: &str, tree: &[String], with_db: bool) -> Option<String> {
        let doc = json!({"_id": id, "name": name, "pvt_type": "account", "pvt_tree": tree,
                         "pvt_signature_secret": new_doc_id(), "timezone": "UTC"});
        if !with_db {
            self.couch.bulk_save("accounts", &[doc]).await.unwrap();
            return None;
        }
        let typed = serde_json::from_value(doc).unwrap();
        bootstrap::create_account_docs(&self.couch, &typed).await.unwrap();
        let user = new_doc_id();
        let db = kazoo_port_requests::domain::ids::AccountId::parse(id).unwrap().db_name();
        let mut user_doc = json!({"_id": user, "pvt_type": "user", "first_name": "Bench", "last_name": name,
                                  "pvt_signature_secret": new_doc_id()});
        self.couch.save(&db, &mut user_doc).await.unwrap();
        Some(user)
    }

    /// The demo master (created if missing) and a new account right under it, with an admin
    /// user: (master id, account id, user id).
    async fn account_under_master(&self, name: &str) -> (String, String, String) {
        let demo = bootstrap::demo(&self.couch).await.unwrap();
        let master = demo.master_account_id.to_string();
        let id = new_doc_id();
        let user = self.account(&id, name, std::slice::from_ref(&master), true).await.unwrap();
        (master, id, user)
    }

    async fn view_rows(&self, view: &str, body: &Value) -> usize {
        let url = format!("{}/port_requests/_design/{view}", self.couch_url);
        let r: Value = self.http.post(url).json(body).send().await.unwrap().json().await.unwrap();
        r["rows"].as_array().map_or(0, Vec::len)
    }

    async fn service_count(&self, url: &str, token: &str) -> usize {
        let r: Value = self.http.get(url).header("X-Auth-Token", token).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["status"], "success", "{r}");
        r["data"]
            .as_array()
            .map_or(0, |groups| groups.iter().map(|g| g["port_requests"].as_array().map_or(1, Vec::len)).sum())
    }
}

const STATES: [&str; 7] = ["unconfirmed", "submitted", "pending", "scheduled", "completed", "rejected", "canceled"];
const YEAR: i64 = 365 * 86_400;

fn request_doc(
    account: &str,
    account_name: &str,
    tree: &[String],
    authority: &str,
    state: &str,
    modified: i64,
) -> Value {
    let mut rng = rand::thread_rng();
    let number = format!("+1{}{:09}", rng.gen_range(2..10), rng.gen_range(0..1_000_000_000u64));
    let created = modified - rng.gen_range(0..30 * 86_400);
    let mut doc = json!({
        "_id": new_doc_id(), "pvt_type": "port_request", "pvt_vsn": "1", "pvt_account_db": "port_requests",
        "name": format!("Bench port {number}"), "numbers": {number.clone(): {}},
        "bill": {"name": "Bench Customer", "carrier": "Bench Telco", "street_address": "Main", "locality": "Springfield"},
        "pvt_port_state": state, "pvt_account_id": account, "pvt_account_name": account_name,
        "pvt_port_authority": authority, "pvt_port_authority_name": "Bench Authority", "pvt_tree": tree,
        "pvt_created": created, "pvt_modified": modified,
        "pvt_transitions": [{"timestamp": created, "type": "transition", "transition": {"new": "unconfirmed"},
                             "authorization": {"account": {"id": account}}}],
    });
    if state == "completed" {
        doc["pvt_ported_numbers"] = doc["numbers"].clone();
        doc["numbers"] = json!({});
    }
    doc
}

async fn insert(ctx: &Ctx, docs: Vec<Value>) {
    for chunk in docs.chunks(2000) {
        for r in ctx.couch.bulk_save("port_requests", chunk).await.unwrap() {
            r.unwrap();
        }
    }
}

async fn warm_views(ctx: &Ctx) -> Duration {
    let t = Instant::now();
    for view in [
        "kazoo_port_requests/_view/listing_by_group",
        "port_requests/_view/listing_by_state",
        "port_requests/_view/agent_listing_by_state",
    ] {
        ctx.view_rows(view, &json!({"limit": 1})).await;
    }
    t.elapsed()
}

/// The authority's first page of `completed` and an account's `active` list, each next to
/// the raw view query (with `include_docs`) that returns the same rows.
async fn measure_listings(
    ctx: &Ctx,
    token: &str,
    agent_url: &str,
    account_url: &str,
    authority: &str,
    target: &str,
) -> [(Duration, Duration); 2] {
    let now = now_gregorian();
    let window = json!({
        "start_key": ["authority", authority, "completed", now - 2_682_000],
        "end_key": ["authority", authority, "completed", now, {}],
        "limit": 51, "include_docs": true });
    let active = json!({ "start_key": ["account", target, "active"], "end_key": ["account", target, "active", {}],
                         "include_docs": true });
    let view = "kazoo_port_requests/_view/listing_by_group";
    let agent = compare(|| ctx.service_count(agent_url, token), || ctx.view_rows(view, &window)).await;
    let account = compare(|| ctx.service_count(account_url, token), || ctx.view_rows(view, &active)).await;
    assert_eq!(ctx.service_count(agent_url, token).await, 50);
    assert_eq!(ctx.service_count(account_url, token).await, 60);
    [agent, account]
}

async fn listings() {
    let ctx = Ctx::new().await;
    let (master, authority, user) = ctx.account_under_master("Bench Authority").await;
    let mut wl = json!({"_id": "whitelabel", "port": {"authority": authority}});
    let authority_db = kazoo_port_requests::domain::ids::AccountId::parse(&authority).unwrap().db_name();
    ctx.couch.save(&authority_db, &mut wl).await.unwrap();
    let token = bootstrap::token(&ctx.couch, &authority, Some(&user), 24 * 3600).await.unwrap();
    let tree = vec![master.clone(), authority.clone()];
    let accounts: Vec<String> = (0..1000).map(|_| new_doc_id()).collect();
    let target = accounts[0].clone();
    ctx.account(&target, "Bench Target", &tree, true).await;
    for (i, a) in accounts.iter().enumerate().skip(1) {
        ctx.account(a, &format!("Bench Account {i}"), &tree, false).await;
    }

    let now = now_gregorian();
    let mut rng = rand::thread_rng();
    let random_doc = |rng: &mut rand::rngs::ThreadRng| {
        let a = &accounts[rng.gen_range(1..accounts.len())];
        request_doc(a, "Bench Account", &tree, &authority, STATES[rng.gen_range(0..7)], now - rng.gen_range(0..YEAR))
    };
    // phase 1: 1,000 requests; the target account has 100 (60 open), the authority 60
    // completed inside the default 31-day window
    let mut docs = Vec::new();
    for i in 0..100 {
        let state = if i < 60 { STATES[[0, 1, 2, 3, 5][i % 5]] } else { ["completed", "canceled"][i % 2] };
        docs.push(request_doc(&target, "Bench Target", &tree, &authority, state, now - rng.gen_range(0..YEAR)));
    }
    for _ in 0..60 {
        let a = &accounts[rng.gen_range(1..accounts.len())];
        docs.push(request_doc(a, "Bench Account", &tree, &authority, "completed", now - rng.gen_range(0..25 * 86_400)));
    }
    while docs.len() < 1000 {
        docs.push(random_doc(&mut rng));
    }
    insert(&ctx, docs).await;
    let warm1 = warm_views(&ctx).await;

    let service = start_service(&ctx.couch_url).await;
    let agent_url = format!("{}/v2/port_requests?by_types=completed", service.base);
    let account_url = format!("{}/v2/accounts/{target}/port_requests", service.base);
    let small = measure_listings(&ctx, &token, &agent_url, &account_url, &authority, &target).await;

    // phase 2: 99,000 more
    let t = Instant::now();
    let docs: Vec<Value> = (0..99_000).map(|_| random_doc(&mut rng)).collect();
    insert(&ctx, docs).await;
    let loaded = t.elapsed();
    // at once, while CouchDB's indexer catches up: the service's listing (which waits at most
    // LISTING_WAIT_MS, then answers from the view as it stands, and reads it as it stands until
    // the view has caught up), next to the raw read of the view as it stands, 20 times; then
    // the raw read that waits for the view to catch up
    let now = now_gregorian();
    let window = |lazy: bool| {
        let mut q = json!({
            "start_key": ["authority", authority, "completed", now - 2_682_000],
            "end_key": ["authority", authority, "completed", now, {}],
            "limit": 51, "include_docs": true });
        if lazy {
            q["update"] = json!("lazy");
        }
        q
    };
    let view = "kazoo_port_requests/_view/listing_by_group";
    let mut behind = Vec::new();
    let mut behind_count = 0;
    for _ in 0..20 {
        let t = Instant::now();
        behind_count = ctx.service_count(&agent_url, &token).await;
        let svc = t.elapsed();
        let t = Instant::now();
        ctx.view_rows(view, &window(true)).await;
        behind.push((svc, t.elapsed()));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let t = Instant::now();
    ctx.view_rows(view, &window(false)).await;
    let behind_raw = t.elapsed();
    let warm2 = warm_views(&ctx).await;
    let large = measure_listings(&ctx, &token, &agent_url, &account_url, &authority, &target).await;
    let export = measure_export(&ctx, &service, &token, &authority).await;

    let kind = std::env::var("COUCHDB_KIND").unwrap_or_else(|_| "CouchDB".into());
    println!("\n### Listings ({kind}, {SAMPLES} samples each, medians)\n");
    println!("| query | requests | service | raw CouchDB view + include_docs | ratio (target ≤ 1.5) |");
    println!("|---|---|---|---|---|");
    let names = ["authority's first page (50) of `completed`, default window", "an account's `active` list (60)"];
    for (set, label) in [(&small, "1,000"), (&large, "100,000")] {
        for (i, (svc, raw)) in set.iter().enumerate() {
            let ratio = svc.as_secs_f64() / raw.as_secs_f64();
            println!("| {} | {label} | {} | {} | {ratio:.2} |", names[i], ms(*svc), ms(*raw));
        }
    }
    println!("\n| query | 1,000 → 100,000 requests (target < 1.3) |\n|---|---|");
    for i in 0..2 {
        println!("| {} | {:.2} |", names[i], large[i].0.as_secs_f64() / small[i].0.as_secs_f64());
    }
    let ratios: Vec<f64> = behind.iter().map(|(s, l)| s.as_secs_f64() / l.as_secs_f64()).collect();
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "\n| right after the 99,000 were loaded, while the views catch up: authority's first page of `completed` ({behind_count} rows), 20 times, 250 ms apart | service | raw view read as it stands (`update=lazy`) | ratio |\n|---|---|---|---|"
    );
    println!("| the first | {} | {} | {:.2} |", ms(behind[0].0), ms(behind[0].1), ratios[0]);
    let svc_median = median(behind.iter().map(|b| b.0).collect());
    let lazy_median = median(behind.iter().map(|b| b.1).collect());
    println!(
        "| median | {} | {} | {:.2} (of the ratios: {:.2}) |",
        ms(svc_median),
        ms(lazy_median),
        svc_median.as_secs_f64() / lazy_median.as_secs_f64(),
        sorted[sorted.len() / 2]
    );
    println!(
        "| the slowest but the first (highest ratio of the 19) | | | {:.2} |",
        ratios[1..].iter().copied().fold(0.0, f64::max)
    );
    println!("\n| raw view read brought up to date (CouchDB's default), right after | {} |\n|---|---|", ms(behind_raw));
    println!(
        "\n(load of 99,000 requests: {:.1} s; view indexing: {:.1} s then {:.1} s)",
        loaded.as_secs_f64(),
        warm1.as_secs_f64(),
        warm2.as_secs_f64()
    );
    println!("\n### Export ({kind}: every request of the authority, `by_types=all`, all time)\n");
    println!(
        "| format | requests | rows | bytes | time | raw view read of the same rows (pages of 500, include_docs) |"
    );
    println!("|---|---|---|---|---|---|");
    for (format, requests, rows, bytes, took) in &export.runs {
        println!(
            "| {format} | {requests} | {rows} | {bytes} | {:.1} s | {:.1} s |",
            took.as_secs_f64(),
            export.raw.as_secs_f64()
        );
    }
    println!(
        "\npeak resident memory of the service: {:.1} MB before the exports, {:.1} MB after",
        export.rss_before, export.rss_after
    );
    drop(service);
}

struct ExportRuns {
    /// (format, requests, rows, bytes, time)
    runs: Vec<(&'static str, usize, usize, usize, Duration)>,
    raw: Duration,
    rss_before: f64,
    rss_after: f64,
}

/// The authority's whole listing exported as CSV and as JSON lines, streamed, next to reading
/// the same view rows with their documents straight from CouchDB, a page of 500 at a time.
async fn measure_export(ctx: &Ctx, service: &Service, token: &str, authority: &str) -> ExportRuns {
    use futures_util::StreamExt;
    let rss_before = peak_rss_mb(service.child.id());
    let mut runs = Vec::new();
    for (format, accept) in [("CSV", "csv"), ("JSON lines", "jsonl")] {
        let url = format!("{}/v2/port_requests?by_types=all&accept={accept}", service.base);
        let t = Instant::now();
        let resp = ctx.http.get(&url).header("X-Auth-Token", token).send().await.unwrap();
        assert!(resp.status().is_success(), "export: {}", resp.status());
        let (mut bytes, mut lines) = (0usize, 0usize);
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            bytes += chunk.len();
            lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        let took = t.elapsed();
        let (requests, rows) = if accept == "csv" { (0, lines - 1) } else { (lines, lines) };
        runs.push((format, requests, rows, bytes, took));
    }
    // the raw reads: the authority's rows of Kazoo's agent view, state by state, 500 at a time
    let t = Instant::now();
    let mut raw_requests = 0;
    for state in STATES {
        let mut start = json!([authority, state]);
        let mut start_id: Option<String> = None;
        loop {
            let mut q =
                json!({"start_key": start, "end_key": [authority, state, {}], "limit": 501, "include_docs": true});
            if let Some(id) = &start_id {
                q["start_key_doc_id"] = json!(id);
            }
            let body: Value = ctx
                .http
                .post(format!("{}/port_requests/_design/port_requests/_view/agent_listing_by_state", ctx.couch_url))
                .json(&q)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let rows = body["rows"].as_array().cloned().unwrap_or_default();
            raw_requests += rows.len().min(500);
            match rows.get(500) {
                Some(next) => {
                    start = next["key"].clone();
                    start_id = next["id"].as_str().map(str::to_owned);
                }
                None => break,
            }
        }
    }
    let raw = t.elapsed();
    // CSV has a row per number; the JSON lines count the requests
    for run in &mut runs {
        if run.1 == 0 {
            run.1 = raw_requests;
        }
    }
    ExportRuns { runs, raw, rss_before, rss_after: peak_rss_mb(service.child.id()) }
}

/// A CSV import of 10,000 rows (2,500 requests of 4 numbers): a dry run, the import, and the
/// same file again (nothing twice); time and the service's peak memory.
async fn import_run() {
    let ctx = Ctx::new().await;
    let (_master, reseller, reseller_user) = ctx.account_under_master("Import Reseller").await;
    let token = bootstrap::token(&ctx.couch, &reseller, Some(&reseller_user), 24 * 3600).await.unwrap();
    let service = start_service_with(&ctx.couch_url, JOBS_OFF).await;
    let first = rand::thread_rng().gen_range(0..1_000_000u64);
    let mut csv = String::from("request,number,name,bill.name,bill.carrier,bill.account_number,number.state\n");
    for r in 0..2_500u64 {
        for k in 0..4u64 {
            let n = format!("+1646{}", 2_000_000 + (first + r * 4 + k) % 8_000_000);
            if k == 0 {
                csv.push_str(&format!("req-{r},{n},Import {r},Customer {r},Telco,ACCT-{r},NY\n"));
            } else {
                csv.push_str(&format!("req-{r},{n},,,,,NY\n"));
            }
        }
    }
    let url = format!("{}/v2/accounts/{reseller}/port_requests/import", service.base);
    let pid = service.child.id();
    let rss_before = peak_rss_mb(pid);
    let mut runs = Vec::new();
    for (label, query) in [("dry run", "?dry_run=true"), ("import", ""), ("the same file again", "")] {
        let t = Instant::now();
        let r: Value = ctx
            .http
            .post(format!("{url}{query}"))
            .header("X-Auth-Token", &token)
            .header("content-type", "text/csv")
            .body(csv.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let took = t.elapsed();
        assert_eq!(r["status"], "success", "{}", &r.to_string()[..r.to_string().len().min(2000)]);
        runs.push((label, took, r["data"]["counts"].clone(), peak_rss_mb(pid)));
    }
    let kind = std::env::var("COUCHDB_KIND").unwrap_or_else(|_| "CouchDB".into());
    println!("\n### Import ({kind}: 10,000 rows, 2,500 requests of 4 numbers, {} KB)\n", csv.len() / 1024);
    println!(
        "| run | time | rows per second | outcomes | peak resident memory of the service |\n|---|---|---|---|---|"
    );
    for (label, took, counts, rss) in runs {
        let counts: Vec<String> = counts
            .as_object()
            .map(|c| c.iter().filter(|(_, v)| v.as_u64() != Some(0)).map(|(k, v)| format!("{k}: {v}")).collect())
            .unwrap_or_default();
        println!(
            "| {label} | {:.1} s | {:.0} | {} | {rss:.1} MB |",
            took.as_secs_f64(),
            10_000.0 / took.as_secs_f64(),
            counts.join(", ")
        );
    }
    println!("\n(peak resident memory before the runs: {rss_before:.1} MB)");
}

/// Sets up a superduper demo install and one customer account under it; returns the
/// customer id and an admin token.
async fn demo_customer(ctx: &Ctx) -> (String, String) {
    let (_, customer, user) = ctx.account_under_master("Bench Customer Inc").await;
    let token = bootstrap::token(&ctx.couch, &customer, Some(&user), 24 * 3600).await.unwrap();
    (customer, token)
}

async fn loa() {
    let ctx = Ctx::new().await;
    let (customer, token) = demo_customer(&ctx).await;
    let service = start_service(&ctx.couch_url).await;
    let base = format!("{}/v2/accounts/{customer}/port_requests", service.base);
    let body = json!({"data": {"name": "LOA bench", "signee_name": "Jane Signer",
        "numbers": {"+14155550101": {}, "+14155550102": {}, "+14155550103": {}},
        "bill": {"name": "Jane Customer", "carrier": "Pacific Bell", "account_number": "A-1", "pin": "1234",
                 "street_number": "1", "street_address": "Market", "street_type": "St", "locality": "San Francisco",
                 "region": "CA", "postal_code": "94105"}}});
    let created: Value =
        ctx.http.put(&base).header("X-Auth-Token", &token).json(&body).send().await.unwrap().json().await.unwrap();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let loa_url = format!("{base}/{id}/loa");
    let get_loa = || async {
        let r = ctx
            .http
            .get(&loa_url)
            .header("X-Auth-Token", &token)
            .header("Accept", "application/pdf")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap().len()
    };
    // the LOA itself, stored as an attachment, is what the raw CouchDB GET reads
    let pdf = ctx.http.get(&loa_url).header("X-Auth-Token", &token).send().await.unwrap().bytes().await.unwrap();
    let up = ctx
        .http
        .put(format!("{base}/{id}/attachments?filename=loa.pdf"))
        .header("X-Auth-Token", &token)
        .header("Content-Type", "application/pdf")
        .body(pdf.clone())
        .send()
        .await
        .unwrap();
    assert!(up.status().is_success());
    let raw_url = format!("{}/port_requests/{id}/loa.pdf", ctx.couch_url);
    let raw = || async { ctx.http.get(&raw_url).send().await.unwrap().bytes().await.unwrap().len() };
    let (cached, raw_get) = compare(get_loa, raw).await;

    // uncached: every GET follows a change, so every GET renders
    let mut service_times = Vec::new();
    let mut bare_times = Vec::new();
    let html_dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        let patch = json!({"data": {"signee_name": format!("Jane Signer {i}")}});
        ctx.http.patch(format!("{base}/{id}")).header("X-Auth-Token", &token).json(&patch).send().await.unwrap();
        let t = Instant::now();
        get_loa().await;
        service_times.push(t.elapsed());
        // the same HTML, rendered by wkhtmltopdf alone with the same options
        let html = service_html(&ctx, &id).await;
        let input = html_dir.path().join("loa.html");
        std::fs::write(&input, html).unwrap();
        let t = Instant::now();
        let status = Command::new("wkhtmltopdf")
            .args([
                "--quiet",
                "--encoding",
                "utf-8",
                "--page-size",
                "Letter",
                "--disable-javascript",
                "--disable-local-file-access",
            ])
            .args([
                "--margin-top",
                "14mm",
                "--margin-bottom",
                "14mm",
                "--margin-left",
                "16mm",
                "--margin-right",
                "16mm",
            ])
            .arg(&input)
            .arg(html_dir.path().join("loa.pdf"))
            .env("QT_QPA_PLATFORM", "offscreen")
            .env("XDG_RUNTIME_DIR", html_dir.path())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        bare_times.push(t.elapsed());
        assert!(status.code().is_some());
    }
    let (uncached, bare) = (median(service_times), median(bare_times));
    println!("\n### LOA ({}, medians)\n", std::env::var("COUCHDB_KIND").unwrap_or_else(|_| "CouchDB".into()));
    println!("| measure | service | reference | result |\n|---|---|---|---|");
    println!(
        "| cached LOA GET vs raw CouchDB attachment GET ({} KB) | {} | {} | ratio {:.2} (target ≤ 1.5) |",
        pdf.len() / 1024,
        ms(cached),
        ms(raw_get),
        cached.as_secs_f64() / raw_get.as_secs_f64()
    );
    println!(
        "| uncached LOA GET vs bare wkhtmltopdf on the same HTML | {} | {} | +{:.1} ms (target ≤ +50 ms) |",
        ms(uncached),
        ms(bare),
        (uncached.as_secs_f64() - bare.as_secs_f64()) * 1000.0
    );
    drop(service);
}

/// The HTML the service renders for a request, built with the service's own functions.
async fn service_html(ctx: &Ctx, id: &str) -> String {
    use kazoo_port_requests::domain::loa::template_data;
    let doc: Value = ctx.couch.get("port_requests", id).await.unwrap().unwrap();
    let account_id = doc["pvt_account_id"].as_str().unwrap();
    let db = kazoo_port_requests::domain::ids::AccountId::parse(account_id).unwrap().db_name();
    let account = ctx.couch.get(&db, account_id).await.unwrap().unwrap();
    let master = doc["pvt_tree"][0].as_str().unwrap().to_owned();
    let master_db = kazoo_port_requests::domain::ids::AccountId::parse(&master).unwrap().db_name();
    let reseller = ctx.couch.get(&master_db, &master).await.unwrap().unwrap();
    let (doc, account, reseller) = (
        kazoo_port_requests::domain::port_request::PortRequest::from_stored(doc).unwrap(),
        serde_json::from_value(account).unwrap(),
        serde_json::from_value(reseller).unwrap(),
    );
    let data = template_data(&doc, &account, &reseller, chrono_tz::UTC, now_gregorian());
    let source = std::fs::read_to_string("templates/loa/loa.hbs").unwrap();
    handlebars::Handlebars::new().render_template(&source, &data).unwrap()
}

/// What `wrk` measured: requests per second and the median latency.
struct Load {
    rps: f64,
    median: Duration,
}

/// Requests per second that `wrk` reaches with 32 connections on `url`, and next to it on
/// `raw_url` (without a token): three 5 s runs each, taking turns (CouchDB's own throughput
/// drifts by 10% from one run to the next); the medians.
fn throughput(url: &str, token: Option<&str>, raw_url: &str) -> (f64, f64) {
    let (mut svc, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        svc.push(wrk_with(url, token, 32, 5).rps);
        raw.push(wrk_with(raw_url, None, 32, 5).rps);
    }
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    (mid(svc), mid(raw))
}

/// `wrk` on `url` with `connections` connections for `secs` seconds.
fn wrk_with(url: &str, token: Option<&str>, connections: u32, secs: u32) -> Load {
    let mut cmd = Command::new("wrk");
    let threads = connections.min(2);
    cmd.args([format!("-t{threads}"), format!("-c{connections}"), format!("-d{secs}s"), "--latency".into()]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("X-Auth-Token: {t}")]);
    }
    // wrk does not read credentials from the URL
    let mut target = url::Url::parse(url).unwrap();
    if !target.username().is_empty() {
        use base64::Engine;
        let creds = format!("{}:{}", target.username(), target.password().unwrap_or_default());
        let basic = base64::engine::general_purpose::STANDARD.encode(creds);
        cmd.args(["-H", &format!("Authorization: Basic {basic}")]);
        let _ = target.set_username("");
        let _ = target.set_password(None);
    }
    let out = cmd.arg(target.as_str()).output().expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let non2xx: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .map_or(0, |n| n.trim().parse().unwrap_or(0));
    assert_eq!(non2xx, 0, "wrk saw errors:\n{text}");
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    // the latency distribution's "50%" line, in us, ms or s
    let median = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("50%"))
        .and_then(|v| {
            let v = v.trim();
            let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
            let n: f64 = num.parse().ok()?;
            Some(match unit {
                "us" => n / 1e6,
                "ms" => n / 1e3,
                "s" => n,
                _ => return None,
            })
        })
        .map(Duration::from_secs_f64)
        .unwrap_or_else(|| panic!("no median latency in wrk output:\n{text}"));
    Load { rps, median }
}

/// GET latency under a steady load of one connection (each side in its own 5 s run, three
/// runs each, taking turns): the medians of the service's and of the raw runs' medians.
fn steady_latency(service_url: &str, token: Option<&str>, raw_url: &str) -> (Duration, Duration) {
    let (mut svc, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        svc.push(wrk_with(service_url, token, 1, 5).median);
        raw.push(wrk_with(raw_url, None, 1, 5).median);
    }
    (median(svc), median(raw))
}

/// CPU seconds (user and system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // the fields after the command name (which may hold spaces): utime and stime are 14 and 15
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The raw CouchDB requests one port request operation makes, replayed without the service,
/// with the service's write quorum (every copy).
struct Raw<'a> {
    ctx: &'a Ctx,
    /// `w` = the database's copies (1 on a single node, 3 on the cluster)
    w: String,
}

impl Raw<'_> {
    async fn post(&self, path: &str, body: &Value) {
        let r = self.ctx.http.post(format!("{}{path}", self.ctx.couch_url)).json(body).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.bytes().await.unwrap();
    }

    async fn get(&self, path: &str) -> Value {
        self.ctx.http.get(format!("{}{path}", self.ctx.couch_url)).send().await.unwrap().json().await.unwrap()
    }

    /// A new document of the size of a port request in a scratch database, written as the
    /// service writes (`w` = every copy), or as a plain PUT (`plain`: CouchDB's default quorum).
    async fn put_new(&self, doc: &Value, plain: bool) {
        let mut d = doc.clone();
        d["_id"] = json!(new_doc_id());
        if let Some(o) = d.as_object_mut() {
            o.remove("_rev");
        }
        let mut url = format!("{}/bench_scratch/{}", self.ctx.couch_url, d["_id"].as_str().unwrap());
        if !plain {
            url.push_str(&format!("?w={}", self.w));
        }
        let r = self.ctx.http.put(url).json(&d).send().await.unwrap();
        assert!(r.status().is_success());
    }

    /// The request's own read.
    async fn get_request(&self, id: &str) {
        let r = self.ctx.http.get(format!("{}/port_requests/{id}", self.ctx.couch_url)).send().await.unwrap();
        r.bytes().await.unwrap();
    }

    /// A read of the numbers database (is the number in service?).
    async fn numbers_read(&self, number: &str) {
        let db = kazoo_port_requests::store::couch::encode(&format!("numbers/{}", &number[..5]));
        let r = self
            .ctx
            .http
            .post(format!("{}/{db}/_all_docs?include_docs=true", self.ctx.couch_url))
            .json(&json!({"keys": [number]}))
            .send()
            .await
            .unwrap();
        r.bytes().await.unwrap();
    }

    /// A new number claim (create) or a read of it by key (a stored request's own).
    async fn claim(&self, number: &str, write: bool) {
        let id = format!("number_claim:{number}:{}", new_doc_id());
        if write {
            let claim =
                json!({"_id": id, "pvt_type": "number_claim", "number": number, "port_request_id": new_doc_id()});
            self.post(&format!("/bench_scratch/_bulk_docs?w={}", self.w), &json!({"docs": [claim]})).await;
        } else {
            self.post("/kazoo_port_requests/_all_docs?include_docs=true", &json!({"keys": [id]})).await;
        }
    }

    /// The turn a change of a stored request takes first on a cluster (a small creation at
    /// every copy); none on a single node.
    async fn turn(&self) {
        if self.w != "1" {
            let turn = json!({"_id": format!("turn:{}:2", new_doc_id()), "pvt_type": "turn", "until": 0});
            let url = format!("{}/bench_scratch/{}?w={}", self.ctx.couch_url, turn["_id"].as_str().unwrap(), self.w);
            let r = self.ctx.http.put(url).json(&turn).send().await.unwrap();
            assert!(r.status().is_success());
        }
    }

    /// The number documents of a completion (its numbers database and the account's), with the
    /// attempt's journal, at once.
    async fn completion_writes(&self, number: &str) {
        let db = kazoo_port_requests::store::couch::encode(&format!("numbers/{}", &number[..5]));
        let doc = |t: &str| json!({"docs": [{"_id": new_doc_id(), "pvt_type": t}]});
        let path = format!("/{db}/_bulk_docs?w={}", self.w);
        let scratch = format!("/bench_scratch/_bulk_docs?w={}", self.w);
        futures_util::future::join3(
            self.post(&scratch, &doc("completion")),
            self.post(&path, &doc("number")),
            self.post(&scratch, &doc("number")),
        )
        .await;
    }
}

/// The copies of a database (`n`; 1 where the server has no cluster).
async fn copies(ctx: &Ctx, db: &str) -> String {
    let info: Value = ctx.http.get(format!("{}/{db}", ctx.couch_url)).send().await.unwrap().json().await.unwrap();
    info["cluster"]["n"].as_u64().unwrap_or(1).to_string()
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn core(ctx: &Ctx, label: &str) {
    ctx.http.put(format!("{}/bench_scratch", ctx.couch_url)).send().await.unwrap();
    let (master, reseller, reseller_user) = ctx.account_under_master("Bench Reseller").await;
    let mut wl = json!({"_id": "whitelabel", "port": {"authority": reseller}});
    let reseller_db = kazoo_port_requests::domain::ids::AccountId::parse(&reseller).unwrap().db_name();
    ctx.couch.save(&reseller_db, &mut wl).await.unwrap();
    let customer = new_doc_id();
    let customer_user =
        ctx.account(&customer, "Bench Customer", &[master.clone(), reseller.clone()], true).await.unwrap();
    let member = bootstrap::token(&ctx.couch, &customer, Some(&customer_user), 24 * 3600).await.unwrap();
    let authority = bootstrap::token(&ctx.couch, &reseller, Some(&reseller_user), 24 * 3600).await.unwrap();
    // the API alone: deliveries would compete for the same CouchDB
    let service = start_service_with(&ctx.couch_url, JOBS_OFF).await;
    let base = format!("{}/v2/accounts/{customer}/port_requests", service.base);
    let raw = Raw { ctx, w: copies(ctx, "port_requests").await };
    // numbers of one range, whose numbers database exists (as in any Kazoo install): a first
    // number of a range would time the creation of its database
    // never the same number twice in a run
    let next = std::sync::atomic::AtomicU64::new(rand::thread_rng().gen_range(0..1_000_000));
    let number = || {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 8_000_000;
        format!("+1415{}", 2_000_000 + n)
    };
    ctx.http.put(format!("{}/numbers%2F%2B1415", ctx.couch_url)).send().await.unwrap();
    let create = |n: String| {
        let (http, base, member) = (ctx.http.clone(), base.clone(), member.clone());
        async move {
            let body = json!({"data": {"name": format!("Bench {n}"), "numbers": {n: {}}, "bill": {"name": "Bench", "carrier": "Telco"}}});
            let r: Value =
                http.put(&base).header("X-Auth-Token", &member).json(&body).send().await.unwrap().json().await.unwrap();
            assert_eq!(r["status"], "success", "{r}");
            r["data"]["id"].as_str().unwrap().to_owned()
        }
    };

    // GET one request, next to the raw GET of the same document
    let id = create(number()).await;
    let one = format!("{base}/{id}");
    let raw_one = format!("{}/port_requests/{id}", ctx.couch_url);
    let get_service = |url: String| {
        let (http, member) = (ctx.http.clone(), member.clone());
        async move { http.get(&url).header("X-Auth-Token", &member).send().await.unwrap().bytes().await.unwrap().len() }
    };
    let get_raw = || async { ctx.http.get(&raw_one).send().await.unwrap().bytes().await.unwrap().len() };
    let (get_svc, get_raw_t) = compare(|| get_service(one.clone()), get_raw).await;
    // the same with the document cache off: every GET is sent the whole document
    let uncached = start_service_with(&ctx.couch_url, &[JOBS_OFF, &[("DOC_CACHE", "0")]].concat()).await;
    let one_uncached = format!("{}/v2/accounts/{customer}/port_requests/{id}", uncached.base);
    let (get_uncached, get_raw2) = compare(|| get_service(one_uncached.clone()), get_raw).await;
    let sample_doc = raw.get(&format!("/port_requests/{id}")).await;

    // Each sample of an operation is followed at once by its raw replay and by one raw PUT,
    // so that the server's drift over the run weighs on all three alike.
    const N: usize = 60;
    let (mut create_svc, mut create_raw, mut create_put) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..N {
        let t = Instant::now();
        create(number()).await;
        create_svc.push(t.elapsed());
        // the claim and the numbers read at once, then the request
        let t = Instant::now();
        let n = number();
        futures_util::future::join(raw.claim(&n, true), raw.numbers_read(&n)).await;
        raw.put_new(&sample_doc, false).await;
        create_raw.push(t.elapsed());
        let t = Instant::now();
        raw.put_new(&sample_doc, true).await;
        create_put.push(t.elapsed());
    }
    let mut rows = vec![("create", median(create_svc), median(create_raw), median(create_put))];

    // each transition on fresh requests; the raw side replays its CouchDB calls
    let moves: [(&str, &[&str]); 6] = [
        ("move to submitted", &[]),
        ("move to pending", &["submitted"]),
        ("move to scheduled", &["submitted", "pending"]),
        ("move to rejected", &["submitted"]),
        ("move to canceled", &[]),
        ("move to completed", &["submitted", "pending"]),
    ];
    for (label, before) in moves {
        let to = label.trim_start_matches("move to ");
        let (mut svc, mut raw_times, mut puts) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..N {
            let id = create(number()).await;
            for st in before {
                let tok = if *st == "submitted" { &member } else { &authority };
                ctx.http.patch(format!("{base}/{id}/{st}")).header("X-Auth-Token", tok).send().await.unwrap();
            }
            let tok = if to == "submitted" || to == "canceled" { &member } else { &authority };
            let body = if to == "scheduled" {
                json!({"data": {"schedule_on": {"date_time": "2031-01-01 10:00", "timezone": "UTC"}}})
            } else {
                json!({"data": {}})
            };
            let t = Instant::now();
            let r = ctx
                .http
                .patch(format!("{base}/{id}/{to}"))
                .header("X-Auth-Token", tok)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{to}: {}", r.text().await.unwrap());
            svc.push(t.elapsed());

            // the request's read, what the move checks or writes besides, and its write
            let t = Instant::now();
            let n = number();
            raw.get_request(&id).await;
            match to {
                "submitted" => {
                    futures_util::future::join(raw.claim(&n, false), raw.numbers_read(&n)).await;
                }
                "completed" => raw.completion_writes(&n).await,
                _ => {}
            }
            raw.turn().await;
            raw.put_new(&sample_doc, false).await;
            raw_times.push(t.elapsed());

            let t = Instant::now();
            raw.put_new(&sample_doc, true).await;
            puts.push(t.elapsed());
        }
        rows.push((label, median(svc), median(raw_times), median(puts)));
    }

    // latency under a steady load of one connection, then throughput and memory under 32
    let (steady_svc, steady_raw) = steady_latency(&one, Some(&member), &raw_one);
    let (steady_uncached, steady_raw2) = steady_latency(&one_uncached, Some(&member), &raw_one);
    // the same through a bare nginx proxy: what the hop alone costs here
    let proxy = start_bare_proxy(&ctx.couch_url).map(|(proxy, dir)| {
        let mut via = url::Url::parse(&raw_one).unwrap();
        let base = url::Url::parse(&proxy.base).unwrap();
        via.set_port(base.port()).unwrap();
        let (lat, lat_raw) = steady_latency(via.as_str(), None, &raw_one);
        let (rps, rps_raw) = throughput(via.as_str(), None, &raw_one);
        drop((proxy, dir));
        (lat, lat_raw, rps, rps_raw)
    });
    let pid = service.child.id();
    let cpu_before = cpu_seconds(pid);
    let (svc_rps, raw_rps) = throughput(&one, Some(&member), &raw_one);
    // the service's own CPU per GET under that load (user and system; its three 5 s runs)
    let svc_cpu_per_get = (cpu_seconds(pid) - cpu_before) / (svc_rps * 15.0);
    let rss = peak_rss_mb(pid);
    let (uncached_rps, raw_rps2) = throughput(&one_uncached, Some(&member), &raw_one);
    let uncached_rss = peak_rss_mb(uncached.child.id());

    println!("\n### Core operations ({label}; medians of {N} samples, {SAMPLES} for GET; background jobs off)\n");
    println!("| operation | service | raw CouchDB | ratio | target |\n|---|---|---|---|---|");
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    if let Some((lat, lat_raw, _, _)) = proxy {
        println!(
            "| reference: GET through a bare nginx proxy, one connection, steady | {} | {} | {:.2} | |",
            ms(lat),
            ms(lat_raw),
            r(lat, lat_raw)
        );
    }
    for (label, svc, raw_t) in [
        ("GET one request, one connection, steady (wrk)", steady_svc, steady_raw),
        ("GET one request, `DOC_CACHE=0`, one connection, steady (wrk)", steady_uncached, steady_raw2),
        ("GET one request, single requests taking turns with raw ones", get_svc, get_raw_t),
        ("GET one request, `DOC_CACHE=0`, single requests taking turns", get_uncached, get_raw2),
    ] {
        println!("| {label} | {} | {} (GET of the document) | {:.2} | ≤ 1.1 |", ms(svc), ms(raw_t), r(svc, raw_t));
    }
    for (label, svc, raw_t, put) in &rows {
        let (needs, target) = match *label {
            "create" => ("the claim and numbers read at once, then the write", "2.5"),
            "move to submitted" => ("the read, the claims and numbers reads at once, the write", "1.5"),
            "move to completed" => ("the read, the number documents and journal at once, the write", "3"),
            _ => ("the read and the write", "1.5"),
        };
        println!("| {label} | {} | {} ({needs}) | {:.2} | ≤ 1.2 |", ms(*svc), ms(*raw_t), r(*svc, *raw_t));
        println!("| {label} | {} | {} (one document PUT) | {:.2} | ≤ {target} |", ms(*svc), ms(*put), r(*svc, *put));
    }
    println!(
        "\n| load (wrk, 32 connections, GET one request; medians of three 5 s runs each, taking turns) | service | raw CouchDB | ratio | target |\n|---|---|---|---|---|"
    );
    println!("| throughput | {svc_rps:.0} req/s | {raw_rps:.0} req/s | {:.2} | ≥ 0.9 |", svc_rps / raw_rps);
    if let Some((_, _, rps, rps_raw)) = proxy {
        println!(
            "| reference: throughput through a bare nginx proxy | {rps:.0} req/s | {rps_raw:.0} req/s | {:.2} | |",
            rps / rps_raw
        );
    }
    println!("| peak resident memory of the service | {rss:.1} MB | | | ≤ 64 MB |");
    println!("| the service's CPU per GET under that load | {:.3} ms | | | |", svc_cpu_per_get * 1000.0);
    println!(
        "| throughput, `DOC_CACHE=0` | {uncached_rps:.0} req/s | {raw_rps2:.0} req/s | {:.2} | |",
        uncached_rps / raw_rps2
    );
    println!("| peak resident memory, `DOC_CACHE=0` | {uncached_rss:.1} MB | | | ≤ 64 MB |");
    drop(service);
    drop(uncached);
}

/// How long a notification takes to leave after the change was acknowledged: a webhook
/// receiver in this process notes when each submission's call arrives.
async fn deliveries(ctx: &Ctx, label: &str) {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let arrived: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
    let seen = arrived.clone();
    let server = actix_web::HttpServer::new(move || {
        let seen = seen.clone();
        actix_web::App::new().default_service(actix_web::web::to(move |body: actix_web::web::Bytes| {
            let seen = seen.clone();
            async move {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    let key = format!("{}:{}", v["port_request_id"].as_str().unwrap_or_default(), v["port_state"]);
                    seen.lock().unwrap().entry(key).or_insert_with(Instant::now);
                }
                actix_web::HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let (_, customer, user) = ctx.account_under_master("Bench Delivery").await;
    let token = bootstrap::token(&ctx.couch, &customer, Some(&user), 24 * 3600).await.unwrap();
    let service = start_service_with(&ctx.couch_url, &[("WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let base = format!("{}/v2/accounts/{customer}/port_requests", service.base);
    let mut acked = Vec::new();
    for i in 0..100 {
        let n = format!(
            "+1{}{:09}",
            rand::thread_rng().gen_range(2..10),
            rand::thread_rng().gen_range(0..1_000_000_000u64)
        );
        let body = json!({"data": {"name": format!("Delivery {i}"), "numbers": {n: {}},
            "notifications": {"webhook": {"url": hook}, "email": {"send_to": format!("bench-{i}@example.com")}}}});
        let r: Value =
            ctx.http.put(&base).header("X-Auth-Token", &token).json(&body).send().await.unwrap().json().await.unwrap();
        let id = r["data"]["id"].as_str().unwrap().to_owned();
        let resp =
            ctx.http.patch(format!("{base}/{id}/submitted")).header("X-Auth-Token", &token).send().await.unwrap();
        assert!(resp.status().is_success());
        acked.push((format!("{id}:\"submitted\""), Instant::now()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = arrived.clone();
    latency_table(
        &format!("Delivery latency ({label}; webhook of a submission, from the acknowledgement to its arrival)"),
        &acked,
        move || seen.lock().unwrap().clone(),
    )
    .await;
    drop(service);
}

/// Kazoo's bus: from a change's acknowledgement to its message on the broker, with two
/// instances sharing the deliveries (changes made through both), 100 submissions; and what a
/// stored ErlyDTL mail costs to render next to this service's handlebars one.
async fn bus(ctx: &Ctx, label: &str) {
    use futures_util::StreamExt;
    use lapin::options::{BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let url = env("KPR_AMQP_URL");
    let properties = lapin::ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let connection = lapin::Connection::connect(&url, properties).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let kazoo = ExchangeDeclareOptions { durable: false, auto_delete: false, ..Default::default() };
    channel.exchange_declare("notifications", lapin::ExchangeKind::Topic, kazoo, FieldTable::default()).await.unwrap();
    let queue = format!("bench-{}", new_doc_id());
    let exclusive = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    channel.queue_declare(&queue, exclusive, FieldTable::default()).await.unwrap();
    let key = "notifications.number.port_request";
    channel.queue_bind(&queue, "notifications", key, QueueBindOptions::default(), FieldTable::default()).await.unwrap();
    let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
    let mut consumer = channel.basic_consume(&queue, "", no_ack, FieldTable::default()).await.unwrap();
    let heard: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let h = heard.clone();
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            if let Ok(v) = serde_json::from_slice::<Value>(&d.data) {
                let id = v["Port-Request-ID"].as_str().unwrap_or_default().to_owned();
                h.lock().unwrap().entry(id).or_insert_with(Instant::now);
            }
        }
    });
    let (_, customer, user) = ctx.account_under_master("Bench Bus").await;
    let token = bootstrap::token(&ctx.couch, &customer, Some(&user), 24 * 3600).await.unwrap();
    let queue = new_doc_id();
    let with_bus = [("AMQP_URL", url.as_str()), ("DELIVERY_QUEUE", queue.as_str()), ("REMINDERS", "false")];
    let services =
        [start_service_with(&ctx.couch_url, &with_bus).await, start_service_with(&ctx.couch_url, &with_bus).await];
    let mut acked = Vec::new();
    for i in 0..100 {
        let base = format!("{}/v2/accounts/{customer}/port_requests", services[i % 2].base);
        let n = format!(
            "+1{}{:09}",
            rand::thread_rng().gen_range(2..10),
            rand::thread_rng().gen_range(0..1_000_000_000u64)
        );
        let body = json!({"data": {"name": format!("Bus {i}"), "numbers": {n: {}}}});
        let r: Value =
            ctx.http.put(&base).header("X-Auth-Token", &token).json(&body).send().await.unwrap().json().await.unwrap();
        let id = r["data"]["id"].as_str().unwrap().to_owned();
        let resp =
            ctx.http.patch(format!("{base}/{id}/submitted")).header("X-Auth-Token", &token).send().await.unwrap();
        assert!(resp.status().is_success());
        acked.push((id, Instant::now()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = heard.clone();
    let title = format!(
        "Publish latency ({label}; two instances, 100 submissions, from the acknowledgement to the message on RabbitMQ)"
    );
    latency_table(&title, &acked, move || seen.lock().unwrap().clone()).await;
    drop(services);
    render_cost();
}

/// One port mail's text rendered 20,000 times: this service's handlebars template (with its
/// partials) next to the same mail as a stored ErlyDTL template (`benches/support/`).
fn render_cost() {
    use kazoo_port_requests::domain::documents::account::AccountDoc;
    use kazoo_port_requests::domain::documents::port_request::PortRequest;
    use kazoo_port_requests::domain::notifications::{Happening, email_data};
    use kazoo_port_requests::domain::teletype::{self, Accounts, System};
    let doc = PortRequest::from_stored(
        json!({"_id": "p1", "name": "Main office move", "numbers": {"+14155550100": {}, "+14155550101": {}, "+14155550102": {}},
               "bill": {"name": "Jo Doe", "carrier": "Pacific Bell", "street_number": "1", "street_address": "Main",
                        "street_type": "St", "locality": "San Francisco", "region": "CA", "postal_code": "94105",
                        "account_number": "778899", "pin": "4321", "btn": "+14155550199"},
               "notifications": {"email": {"send_to": "jo@example.com"}}, "signee_name": "Jo Doe",
               "transfer_date": now_gregorian() + 86_400 * 10,
               "pvt_port_state": "submitted", "pvt_created": now_gregorian(), "pvt_account_id": new_doc_id()}),
    )
    .unwrap();
    let account: AccountDoc = serde_json::from_value(json!({"name": "Acme", "realm": "acme.example.com"})).unwrap();
    let happening = Happening { reason: Some("ready".into()), at: Some(now_gregorian()), ..Default::default() };
    let ours = email_data(&doc, &account, &account, &happening, chrono_tz::UTC);
    let accounts = Accounts { account: &account, parent: None, authority: &account, authority_parent: None };
    let system = System { hostname: "bench".into(), node: "bench@bench".into() };
    let kazoos = teletype::data(&doc, &accounts, &happening, chrono_tz::UTC, &system);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/email");
    let mut hb = handlebars::Handlebars::new();
    hb.register_escape_fn(handlebars::no_escape);
    for (name, file) in
        [("_reason", "_reason.text.hbs"), ("_summary", "_summary.text.hbs"), ("mail", "port_request_admin.text.hbs")]
    {
        hb.register_template_file(name, dir.join(file)).unwrap();
    }
    let source = include_str!("support/port_request_admin.text.dtl");
    let dtl = kazoo_port_requests::dtl::Template::parse(source).unwrap();
    const N: u32 = 20_000;
    let time = |f: &dyn Fn() -> usize| {
        let started = Instant::now();
        let mut bytes = 0;
        for _ in 0..N {
            bytes += f();
        }
        (started.elapsed() / N, bytes / N as usize)
    };
    let (hb_each, hb_bytes) = time(&|| hb.render("mail", &ours).unwrap().len());
    let (dtl_each, dtl_bytes) = time(&|| dtl.render(&kazoos, true).unwrap().len());
    let (parse_each, _) = time(&|| kazoo_port_requests::dtl::Template::parse(source).map(|_| 1).unwrap());
    println!("\n### Rendering one port mail's text (20,000 times, in process)\n");
    println!("| template | per render | output |\n|---|---|---|");
    println!(
        "| this service's handlebars (`port_request_admin.text.hbs` and partials) | {:.1} µs | {hb_bytes} B |",
        hb_each.as_secs_f64() * 1e6
    );
    println!(
        "| the same mail stored in Kazoo's syntax (parsed once) | {:.1} µs | {dtl_bytes} B |",
        dtl_each.as_secs_f64() * 1e6
    );
    println!("| parsing that stored template | {:.1} µs | |", parse_each.as_secs_f64() * 1e6);
}

/// Waits up to 60 s for every acknowledged key to arrive (`arrived` reads what did, and when),
/// then prints p50, p95 and max from acknowledgement to arrival.
async fn latency_table(
    title: &str,
    acked: &[(String, Instant)],
    arrived: impl Fn() -> std::collections::HashMap<String, Instant>,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while arrived().len() < acked.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = arrived();
    let mut latencies: Vec<Duration> =
        acked.iter().filter_map(|(k, at)| seen.get(k).map(|t| t.saturating_duration_since(*at))).collect();
    let missing = acked.len() - latencies.len();
    println!("\n### {title}\n");
    println!("| submissions | p50 | p95 | max | missing | target |\n|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {missing} | p95 ≤ 1 s |",
        acked.len(),
        ms(percentile(&mut latencies, 0.5)),
        ms(percentile(&mut latencies, 0.95)),
        ms(percentile(&mut latencies, 1.0))
    );
}

/// At least 100,000 random, mostly hostile requests over the whole API (`FUZZ_REQUESTS`
/// changes the count): no 5xx, every error in the envelope, the target request still
/// readable, and the process still healthy and small.
async fn fuzz_run() {
    use rand::SeedableRng;
    use std::collections::BTreeMap;
    let ctx = Ctx::new().await;
    let (_, account, user) = ctx.account_under_master("Fuzz Customer").await;
    let token = bootstrap::token(&ctx.couch, &account, Some(&user), 24 * 3600).await.unwrap();
    let service = start_service(&ctx.couch_url).await;
    let body = json!({"data": {"name": "Fuzz target", "numbers": {"+14155550100": {}}}});
    let created: Value = ctx
        .http
        .put(format!("{}/v2/accounts/{account}/port_requests", service.base))
        .header("X-Auth-Token", &token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let target = fuzz::Target { account: account.clone(), port_request: id.clone(), token };
    let runs: usize = std::env::var("FUZZ_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261201);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let started = Instant::now();
    let mut done = 0;
    while done < runs {
        let batch: Vec<fuzz::FuzzRequest> =
            (0..(runs - done).min(64)).map(|_| fuzz::request(&mut rng, &target)).collect();
        done += batch.len();
        let calls = batch.iter().map(|r| fuzz::send(&ctx.http, &service.base, r));
        for result in futures_util::future::join_all(calls).await {
            match result {
                Ok(status) => *statuses.entry(status).or_default() += 1,
                Err(e) => failures.push(e),
            }
        }
    }
    let elapsed = started.elapsed();
    let healthy = reqwest::get(format!("{}/healthz", service.base)).await.is_ok_and(|r| r.status().is_success());
    let stored: Value =
        ctx.http.get(format!("{}/port_requests/{id}", ctx.couch_url)).send().await.unwrap().json().await.unwrap();
    let rss = peak_rss_mb(service.child.id());
    println!("\n### Fuzz (`scripts/bench.sh fuzz`)\n");
    println!("| measure | result |\n|---|---|");
    println!(
        "| requests | {done} in {:.0} s ({:.0} req/s, 64 at a time) |",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64()
    );
    let by_status: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    println!("| answers by status | {} |", by_status.join(", "));
    println!("| 5xx, errors outside the envelope, broken connections | {} |", failures.len());
    println!("| target request still readable, revision | {} |", stored["_rev"]);
    println!("| healthy afterwards | {healthy} |");
    println!("| peak resident memory of the service | {rss:.1} MB |");
    for f in failures.iter().take(10) {
        println!("failure: {f}");
    }
    assert!(failures.is_empty() && healthy, "the fuzz run found problems");
}

#[tokio::main]
async fn main() {
    let sections: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    let kind = std::env::var("COUCHDB_KIND").unwrap_or_else(|_| "CouchDB".into());
    if wanted("core") {
        core(&Ctx::new().await, &kind).await;
    }
    if wanted("deliveries") {
        deliveries(&Ctx::new().await, &kind).await;
    }
    if wanted("bus") {
        bus(&Ctx::new().await, &kind).await;
    }
    if wanted("core-with-bus") {
        core(&Ctx::new().await, &format!("{kind}, with AMQP_URL set")).await;
    }
    if let Ok(cluster) = std::env::var("KPR_BENCH_CLUSTER_URL")
        && wanted("cluster")
    {
        let ctx = Ctx::on(&cluster).await;
        core(&ctx, "Apache CouchDB 3.4.3, 3-node cluster, service and raw requests through node 1").await;
        deliveries(&ctx, "3-node cluster").await;
    }
    if wanted("listings") {
        listings().await;
    }
    if wanted("desk") {
        desk::run().await;
    }
    if wanted("loa") {
        loa().await;
    }
    if wanted("import") {
        import_run().await;
    }
    if wanted("fuzz") {
        fuzz_run().await;
    }
}
