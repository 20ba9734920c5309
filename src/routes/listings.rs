//! Listings: the port authority's requests (`/v2/port_requests`), an account's, an account's
//! descendants', by state (`by_types` or the state in the path), by number, and by last
//! submission. Everything is read from design-doc views keyed by scope, state and modified
//! time, so the cost follows the page, not the size of the database.

use super::resource;
use crate::couch::{ViewQuery, ViewRow, dbs, design};
use crate::directory::Account;
use crate::domain::export::{self, Format};
use crate::domain::ids::AccountId;
use crate::domain::paging::{Cursor, Range, export_range, modified_range};
use crate::domain::phone_number::normalize;
use crate::domain::port_request::{last_transition_to, view_for};
use crate::domain::port_state::PortState;
use crate::domain::time::now_gregorian;
use crate::error::ApiError;
use crate::http::envelope::Reply;
use crate::http::request::Ctx;
use crate::port_requests::{self as store, in_scope, is_authority};
use actix_web::{Either, HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v2/port_requests").route(web::get().to(agent_list)).route(web::put().to(agent_forbidden)))
        .service(
            resource("/v2/accounts/{account_id}/descendants/port_requests").route(web::get().to(descendants_list)),
        );
}

/// Page sizes above this are refused: the answer has to fit in memory.
const MAX_PAGE_SIZE: usize = 10_000;
const DEFAULT_PAGE_SIZE: usize = 50;

/// Whose requests a listing shows.
#[derive(Debug, Clone)]
enum Scope {
    /// One account's own requests.
    Account(AccountId),
    /// The requests of an account's descendants.
    Descendants(AccountId),
    /// The requests a port authority manages.
    Agent { authority: AccountId, caller: AccountId },
}

impl Scope {
    /// The Kazoo view keyed `[scope id, state, modified]`, and that scope id.
    fn state_view(&self) -> (&'static str, &AccountId) {
        match self {
            Scope::Account(a) => ("listing_by_state", a),
            Scope::Descendants(a) => ("listing_by_descendant_state", a),
            Scope::Agent { authority, .. } => ("agent_listing_by_state", authority),
        }
    }

    /// The key prefix of our views (`listing_by_group`, `last_submitted`).
    fn own_prefix(&self) -> Vec<Value> {
        match self {
            Scope::Account(a) => vec![json!("account"), json!(a)],
            Scope::Descendants(a) => vec![json!("ancestor"), json!(a)],
            Scope::Agent { authority, .. } => vec![json!("authority"), json!(authority)],
        }
    }

    /// May a request found by number be shown here? (superduper admins see everything)
    fn reaches(&self, doc: &Value) -> bool {
        match self {
            Scope::Account(a) => in_scope(doc, a),
            Scope::Descendants(a) => {
                in_scope(doc, a) && doc.get("pvt_account_id").and_then(Value::as_str) != Some(a.as_str())
            }
            Scope::Agent { caller, .. } => in_scope(doc, caller),
        }
    }
}

/// `page_size`, `start_key` and the direction, as the request gives them.
struct Paging {
    page_size: Option<usize>,
    start_key: Option<String>,
    descending: Option<bool>,
}

fn paging(ctx: &Ctx) -> Result<Paging, ApiError> {
    let page_size = match ctx.req_str("page_size") {
        None => None,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Some(n),
            _ => {
                return Err(ApiError::validation(
                    "page_size",
                    "invalid",
                    json!({ "message": format!("page size must be an integer from 1 to {MAX_PAGE_SIZE}"), "value": raw }),
                ));
            }
        },
    };
    // direction comes from the query string only, as in crossbar_view
    let flag = |k: &str| ctx.query.get(k).map(|v| v == &json!(true) || v == &json!("true"));
    let descending = match (flag("descending"), flag("ascending")) {
        (Some(d), _) => Some(d),
        (None, Some(a)) => Some(!a),
        (None, None) => None,
    };
    Ok(Paging { page_size, start_key: ctx.req_str("start_key"), descending })
}

fn decode_cursor(raw: &Option<String>, stages: usize) -> Result<Option<Cursor>, ApiError> {
    match raw {
        None => Ok(None),
        Some(raw) => Cursor::decode(raw, stages).map(Some).ok_or_else(|| {
            ApiError::validation(
                "start_key",
                "invalid",
                json!({ "message": "start_key is not a key this listing handed out", "value": raw }),
            )
        }),
    }
}

fn int_value(ctx: &Ctx, key: &str) -> Option<i64> {
    ctx.req_str(key).and_then(|v| v.parse::<i64>().ok())
}

fn modified_window(ctx: &Ctx) -> Result<Range, ApiError> {
    modified_range(int_value(ctx, "modified_from"), int_value(ctx, "modified_to"), now_gregorian())
        .map_err(|e| ApiError::validation("modified_from", "date_range", json!({ "message": e.message() })))
}

/// An export's window: any span, from the beginning unless `modified_from` says otherwise.
fn export_window(ctx: &Ctx) -> Result<Range, ApiError> {
    export_range(int_value(ctx, "modified_from"), int_value(ctx, "modified_to"), now_gregorian())
        .map_err(|e| ApiError::validation("modified_from", "date_range", json!({ "message": e.message() })))
}

/// One key range of a listing: `prefix` then, within `bounds`, the rest of the key.
struct Segment {
    ddoc: &'static str,
    view: &'static str,
    prefix: Vec<Value>,
    /// Bounds of the key element right after the prefix (the modified time of ranged states).
    bounds: Option<(i64, i64)>,
}

impl Segment {
    fn key(&self, tail: impl IntoIterator<Item = Value>) -> Value {
        Value::Array(self.prefix.iter().cloned().chain(tail).collect())
    }

    fn range(&self, descending: bool) -> (Value, Value) {
        let (lo, hi) = match self.bounds {
            Some((from, to)) => (self.key([json!(from)]), self.key([json!(to), json!({})])),
            None => (self.key([]), self.key([json!({})])),
        };
        if descending { (hi, lo) } else { (lo, hi) }
    }

    /// The key a cursor points at, kept inside the bounds.
    fn cursor_key(&self, tail: &[i64]) -> Value {
        let mut tail = tail.to_vec();
        if let (Some((from, to)), Some(first)) = (self.bounds, tail.first_mut()) {
            *first = (*first).clamp(from, to);
        }
        self.key(tail.into_iter().map(|t| json!(t)))
    }

    /// The part of a row's key after the prefix.
    fn tail_of(&self, key: &Value) -> Vec<i64> {
        key.as_array().map(|k| k.iter().skip(self.prefix.len()).filter_map(Value::as_i64).collect()).unwrap_or_default()
    }
}

/// Reads up to `need` rows of a segment from `start` on, skipping the rows of the start key
/// that come before the cursor's document (CouchDB does that with `start_key_doc_id`; PouchDB
/// ignores it, so the rows are skipped here as well).
async fn segment_rows(
    ctx: &Ctx,
    seg: &Segment,
    cursor: Option<&Cursor>,
    need: Option<usize>,
    descending: bool,
) -> Result<Vec<ViewRow>, ApiError> {
    let (mut start, end) = seg.range(descending);
    if let Some(c) = cursor {
        start = seg.cursor_key(&c.tail);
    }
    let after = cursor.map(|c| (start.clone(), c.id.as_str()));
    let mut out = Vec::new();
    let mut skip = 0u64;
    loop {
        let batch = need.map(|n| (n - out.len() + 8) as u64);
        let query = ViewQuery {
            start_key: Some(start.clone()),
            end_key: Some(end.clone()),
            start_key_doc_id: cursor.map(|c| c.id.clone()).filter(|id| !id.is_empty()),
            limit: batch,
            skip: Some(skip),
            descending,
            include_docs: true,
            wait: Some(ctx.state.settings.listing_wait),
            ..ViewQuery::default()
        };
        let rows = ctx.state.couch.view(dbs::PORT_REQUESTS, seg.ddoc, seg.view, &query).await?;
        let got = rows.len() as u64;
        for row in rows {
            let before_cursor = after.as_ref().is_some_and(|(key, id)| {
                let rid = row.id.as_deref().unwrap_or_default();
                &row.key == key && if descending { rid > *id } else { rid < *id }
            });
            if !before_cursor && row.doc.is_some() {
                out.push(row);
            }
        }
        match (need, batch) {
            (Some(n), Some(b)) if out.len() < n && got == b => skip += got,
            _ => break,
        }
    }
    if let Some(n) = need {
        out.truncate(n);
    }
    Ok(out)
}

/// A page of rows across the segments of a listing, and the cursor of the next page.
struct Page {
    rows: Vec<ViewRow>,
    next: Option<Cursor>,
}

async fn read_page(
    ctx: &Ctx,
    segments: &[Segment],
    page_size: Option<usize>,
    cursor: Option<Cursor>,
    descending: bool,
) -> Result<Page, ApiError> {
    let mut rows: Vec<(usize, ViewRow)> = Vec::new();
    let first = cursor.as_ref().map_or(0, |c| c.stage);
    for (stage, seg) in segments.iter().enumerate().skip(first) {
        let here = cursor.as_ref().filter(|c| c.stage == stage);
        let need = page_size.map(|p| p + 1 - rows.len());
        let found = segment_rows(ctx, seg, here, need, descending).await?;
        rows.extend(found.into_iter().map(|r| (stage, r)));
        if page_size.is_some_and(|p| rows.len() > p) {
            break;
        }
    }
    let next = match page_size {
        Some(p) if rows.len() > p => rows.pop().map(|(stage, row)| Cursor {
            stage,
            tail: segments[stage].tail_of(&row.key),
            id: row.id.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(Page { rows: rows.into_iter().map(|(_, r)| r).collect(), next })
}

/// The envelope keys of a paged answer.
fn paged(reply: Reply, count: usize, start: &Option<String>, next: Option<Cursor>) -> Reply {
    let start = start.clone().unwrap_or_else(|| Cursor { stage: 0, tail: vec![], id: String::new() }.encode());
    let mut reply = reply.with_envelope("page_size", json!(count)).with_envelope("start_key", json!(start));
    if let Some(n) = next {
        reply = reply.with_envelope("next_start_key", json!(n.encode()));
    }
    reply
}

/// The public view of a listed request, with its `account_id` on top (`leak_pvt_fields`).
fn listed(ctx: &Ctx, doc: &Value) -> Value {
    let mut view = view_for(doc, is_authority(&ctx.caller, doc));
    if let Some(account) = doc.get("pvt_account_id") {
        view["account_id"] = account.clone();
    }
    view
}

/// `[{"account_id", "account_name", "port_requests": [...]}]`, names read only for the
/// accounts of this page.
async fn grouped(ctx: &Ctx, docs: Vec<Value>) -> Result<Value, ApiError> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<Value>> = HashMap::new();
    for doc in &docs {
        let account = doc.get("pvt_account_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        if !groups.contains_key(&account) {
            order.push(account.clone());
        }
        groups.entry(account).or_default().push(listed(ctx, doc));
    }
    let ids: Vec<AccountId> = order.iter().filter_map(|a| AccountId::from_any(a)).collect();
    let names = ctx.state.directory.account_names(&ids).await?;
    Ok(Value::Array(
        order
            .into_iter()
            .map(|account| {
                let name = AccountId::from_any(&account)
                    .and_then(|id| names.get(&id).map(|n| n.to_string()))
                    .unwrap_or_else(|| "unknown".to_owned());
                let requests = groups.remove(&account).unwrap_or_default();
                json!({ "account_id": account, "account_name": name, "port_requests": requests })
            })
            .collect(),
    ))
}

/// What a listing shows: a `by_types` group, some states, or the last submissions.
enum Types {
    /// `active`, `progressing`, `suspended` or `completed`: one range of our group view.
    Group(&'static str),
    States(Vec<PortState>),
    LastSubmitted,
}

fn parse_types(raw: Option<String>) -> Result<Types, ApiError> {
    let raw = raw.unwrap_or_else(|| "active".to_owned());
    match raw.as_str() {
        "last_submitted" => return Ok(Types::LastSubmitted),
        "all" => return Ok(Types::States(PortState::ALL.to_vec())),
        "active" => return Ok(Types::Group("active")),
        "progressing" => return Ok(Types::Group("progressing")),
        "suspended" => return Ok(Types::Group("suspended")),
        "completed" => return Ok(Types::Group("completed")),
        _ => {}
    }
    let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
    let bad: Vec<&str> = parts.iter().copied().filter(|p| PortState::parse(p).is_none()).collect();
    if !bad.is_empty() {
        return Err(ApiError::InvalidRequest(format!(
            "query string by_types contained invalid values: {}",
            bad.join(", ")
        )));
    }
    let mut states: Vec<PortState> = Vec::new();
    for st in parts.into_iter().filter_map(PortState::parse) {
        if !states.contains(&st) {
            states.push(st);
        }
    }
    Ok(Types::States(states))
}

fn is_ranged(state: PortState) -> bool {
    matches!(state, PortState::Completed | PortState::Canceled)
}

fn is_ranged_listing(types: &Types) -> bool {
    match types {
        Types::Group(g) => *g == "completed",
        Types::States(states) => states.iter().any(|s| is_ranged(*s)),
        Types::LastSubmitted => false,
    }
}

/// The key ranges of a `by_types` listing (`None` for `last_submitted`, which has its own);
/// `window` bounds the modified time of completed and canceled requests.
fn segments_of(scope: &Scope, types: &Types, window: Option<Range>) -> Option<Vec<Segment>> {
    let range = window.filter(|_| is_ranged_listing(types));
    Some(match types {
        Types::Group(group) => {
            let mut prefix = scope.own_prefix();
            prefix.push(json!(group));
            vec![Segment {
                ddoc: design::OWN_DDOC,
                view: "listing_by_group",
                prefix,
                bounds: range.filter(|_| *group == "completed").map(|r| (r.from, r.to)),
            }]
        }
        Types::States(states) => {
            let (view, id) = scope.state_view();
            states
                .iter()
                .map(|st| Segment {
                    ddoc: design::KAZOO_DDOC,
                    view,
                    prefix: vec![json!(id), json!(st)],
                    bounds: range.filter(|_| is_ranged(*st)).map(|r| (r.from, r.to)),
                })
                .collect()
        }
        Types::LastSubmitted => return None,
    })
}

async fn type_listing(ctx: &Ctx, scope: &Scope, types: Types, paging: Paging) -> Result<Reply, ApiError> {
    let ranged = is_ranged_listing(&types);
    let window = if ranged { Some(modified_window(ctx)?) } else { None };
    let Some(segments) = segments_of(scope, &types, window) else {
        return last_submitted_listing(ctx, scope, paging).await;
    };
    // Kazoo returns everything for the active kinds; ranged listings page by 50
    let page_size = paging.page_size.or(ranged.then_some(DEFAULT_PAGE_SIZE));
    let cursor = decode_cursor(&paging.start_key, segments.len())?;
    let page = read_page(ctx, &segments, page_size, cursor, paging.descending.unwrap_or(false)).await?;
    let count = page.rows.len();
    let docs = page.rows.into_iter().filter_map(|r| r.doc).collect();
    let reply = Reply::ok(grouped(ctx, docs).await?).with_automatic_revision();
    Ok(match page_size {
        Some(_) => paged(reply, count, &paging.start_key, page.next),
        None => reply,
    })
}

async fn last_submitted_listing(ctx: &Ctx, scope: &Scope, paging: Paging) -> Result<Reply, ApiError> {
    let page_size = paging.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    let segment = Segment { ddoc: design::OWN_DDOC, view: "last_submitted", prefix: scope.own_prefix(), bounds: None };
    let cursor = decode_cursor(&paging.start_key, 1)?;
    let page =
        read_page(ctx, std::slice::from_ref(&segment), Some(page_size), cursor, paging.descending.unwrap_or(true))
            .await?;
    let data: Vec<Value> = page
        .rows
        .iter()
        .filter_map(|r| r.doc.as_ref())
        .filter_map(|doc| {
            last_transition_to(doc, PortState::Submitted).map(|t| json!({ "id": doc["_id"], "transition": t }))
        })
        .collect();
    let count = data.len();
    Ok(paged(Reply::ok(json!(data)).with_automatic_revision(), count, &paging.start_key, page.next))
}

async fn number_listing(ctx: &Ctx, scope: &Scope, raw: &str, paging: Paging) -> Result<Reply, ApiError> {
    let number = normalize(raw);
    let page_size = paging.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    let descending = paging.descending.unwrap_or(false);
    let cursor = decode_cursor(&paging.start_key, 1)?;
    // a number is on a handful of requests at most: read them all, then page
    let query = ViewQuery { wait: Some(ctx.state.settings.listing_wait), ..ViewQuery::key(json!(number)).with_docs() };
    let rows = ctx.state.couch.view(dbs::PORT_REQUESTS, design::OWN_DDOC, "listing_by_number", &query).await?;
    let superduper = ctx.caller.is_superduper_admin();
    let mut docs: Vec<Value> =
        rows.into_iter().filter_map(|r| r.doc).filter(|doc| superduper || scope.reaches(doc)).collect();
    let id_of = |d: &Value| d.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    docs.sort_by_key(id_of);
    if descending {
        docs.reverse();
    }
    if let Some(c) = &cursor {
        docs.retain(|d| if descending { id_of(d) <= c.id } else { id_of(d) >= c.id });
    }
    let next = docs.get(page_size).map(|d| Cursor { stage: 0, tail: vec![], id: id_of(d) });
    docs.truncate(page_size);
    let data: Vec<Value> = docs.iter().map(|d| listed(ctx, d)).collect();
    let count = data.len();
    Ok(paged(Reply::ok(json!(data)).with_automatic_revision(), count, &paging.start_key, next))
}

/// How many requests an export reads at a time: its memory stays that of one page.
const EXPORT_PAGE: usize = 500;

/// A `by_types` listing exported: every row of it (no pages; completed and canceled requests of
/// any span of `modified_from`/`modified_to`, all of them by default), streamed as CSV (one row
/// per number) or JSON lines (one request per line), a page of the views at a time.
fn export_listing(ctx: Ctx, scope: &Scope, format: Format) -> Result<HttpResponse, ApiError> {
    let types = parse_types(ctx.req_str("by_types"))?;
    let segments = segments_of(scope, &types, Some(export_window(&ctx)?)).ok_or_else(|| {
        ApiError::InvalidRequest("last_submitted cannot be exported: export a by_types listing".into())
    })?;
    let descending = paging(&ctx)?.descending.unwrap_or(false);
    // (context, segments, where the next page starts, whether the header is written, done)
    let start = (ctx, segments, None::<Cursor>, false, false);
    let pages = futures_util::stream::unfold(start, move |(ctx, segments, cursor, headed, done)| async move {
        if done {
            return None;
        }
        let page = match read_page(&ctx, &segments, Some(EXPORT_PAGE), cursor, descending).await {
            Ok(page) => page,
            Err(e) => {
                // the answer is under way: all that is left is to cut it short
                tracing::warn!(error = %e, "an export stopped half-way");
                let cut = std::io::Error::other(e.to_string());
                return Some((Err(cut), (ctx, segments, None, true, true)));
            }
        };
        let mut out = Vec::new();
        if format == Format::Csv && !headed {
            out.extend(export::csv_text(&[], true));
        }
        for doc in page.rows.iter().filter_map(|r| r.doc.as_ref()) {
            match format {
                Format::Csv => out.extend(export::csv_text(&export::csv_rows(doc), false)),
                Format::JsonLines => out.extend(export::json_line(&listed(&ctx, doc))),
            }
        }
        let done = page.next.is_none();
        Some((Ok(bytes::Bytes::from(out)), (ctx, segments, page.next, true, done)))
    });
    Ok(HttpResponse::Ok().content_type(format.content_type()).streaming(pages))
}

/// A listing, or its export when CSV or JSON lines are asked for (`accept=csv|jsonl`, or the
/// `Accept` header).
async fn listing_or_export(ctx: Ctx, req: &HttpRequest, scope: Scope) -> Result<Either<Reply, HttpResponse>, ApiError> {
    let header = req.headers().get(actix_web::http::header::ACCEPT).and_then(|v| v.to_str().ok());
    match Format::asked(ctx.req_str("accept").as_deref(), header) {
        Some(format) if ctx.req_str("by_number").is_none() => Ok(Either::Right(export_listing(ctx, &scope, format)?)),
        _ => Ok(Either::Left(list(&ctx, scope, None).await?)),
    }
}

/// Answers a listing request for `scope`: by number, by last submission, or by state.
/// `path_types`: what the path says (`/port_requests/{state}`), else `by_types`.
async fn list(ctx: &Ctx, scope: Scope, path_types: Option<Types>) -> Result<Reply, ApiError> {
    let paging = paging(ctx)?;
    if let Some(number) = ctx.req_str("by_number") {
        return number_listing(ctx, &scope, &number, paging).await;
    }
    let types = match path_types {
        Some(t) => t,
        None => parse_types(ctx.req_str("by_types"))?,
    };
    type_listing(ctx, &scope, types, paging).await
}

/// `GET /v2/accounts/{A}/port_requests`
pub async fn account_list(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<Either<Reply, HttpResponse>, ApiError> {
    let account = ctx.account(&path).await?;
    let scope = Scope::Account(account.id.clone());
    listing_or_export(ctx, &req, scope).await
}

/// `GET /v2/accounts/{A}/port_requests/{state}` and `.../last_submitted` (seed 002).
pub async fn account_list_by_path(ctx: Ctx, account_id: String, token: String) -> Result<Reply, ApiError> {
    let account = ctx.account(&account_id).await?;
    // in the path, `completed` is the state alone, not the by_types group
    let types = match PortState::parse(&token) {
        Some(state) => Types::States(vec![state]),
        None => Types::LastSubmitted,
    };
    list(&ctx, Scope::Account(account.id.clone()), Some(types)).await
}

/// `GET /v2/accounts/{A}/descendants/port_requests`
pub async fn descendants_list(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<Either<Reply, HttpResponse>, ApiError> {
    let account = ctx.account(&path).await?;
    let scope = Scope::Descendants(account.id.clone());
    listing_or_export(ctx, &req, scope).await
}

/// The caller as a port authority (`cb_port_requests:set_port_authority`, agent type): itself
/// when its whitelabel names it, else the walk from its account.
async fn agent_authority(ctx: &Ctx, caller: &Account) -> Result<AccountId, ApiError> {
    let names_itself = ctx
        .state
        .directory
        .whitelabel(&caller.id)
        .await?
        .and_then(|wl| crate::domain::authority::whitelabel_authority(&wl))
        .is_some_and(|a| a == caller.id);
    if names_itself { Ok(caller.id.clone()) } else { store::find_authority(&ctx.state.directory, caller).await }
}

/// `GET /v2/port_requests`: only for port authorities and superduper admins.
pub async fn agent_list(ctx: Ctx, req: HttpRequest) -> Result<Either<Reply, HttpResponse>, ApiError> {
    let caller = ctx.caller.account.clone();
    let authority = agent_authority(&ctx, &caller).await?;
    if authority != caller.id && !ctx.caller.is_superduper_admin() {
        return Err(ApiError::Forbidden(None));
    }
    listing_or_export(ctx, &req, Scope::Agent { authority, caller: caller.id.clone() }).await
}

/// `PUT /v2/port_requests`: requests are created under an account.
pub async fn agent_forbidden(_ctx: Ctx) -> Result<Reply, ApiError> {
    Err(ApiError::Forbidden(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_types_values() {
        assert!(matches!(parse_types(None), Ok(Types::Group("active"))));
        assert!(matches!(parse_types(Some("all".into())), Ok(Types::States(s)) if s.len() == 7));
        assert!(matches!(parse_types(Some("last_submitted".into())), Ok(Types::LastSubmitted)));
        assert!(matches!(parse_types(Some("pending, scheduled,pending".into())), Ok(Types::States(s)) if s.len() == 2));
        match parse_types(Some("pending,bogus,prgressing".into())) {
            Err(ApiError::InvalidRequest(m)) => {
                assert_eq!(m, "query string by_types contained invalid values: bogus, prgressing")
            }
            _ => panic!("expected an error"),
        }
    }
}
