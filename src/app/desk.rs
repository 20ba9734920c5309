//! The port authority's desk: its configuration (`configs_port_authority_desk` in the
//! authority's account database over the shipped defaults), the rejection catalogue in effect,
//! what needs attention, and the report per losing carrier.

use super::accounts::{authority_as_agent, find_authority, kazoos_timezone};
use super::error::AppError;
use super::listings::{DEFAULT_PAGE_SIZE, Listed, ListingAsk, Scope, Segment, paged, read_page};
use crate::domain::desk::DeskConfig;
use crate::domain::desk::attention::{self, Actor, Rule};
use crate::domain::desk::calendar::Calendar;
use crate::domain::desk::rejection_codes::{self, RejectionCode};
use crate::domain::desk::report::{self, Figures};
use crate::domain::documents::port_request::PortRequest;
use crate::domain::ids::AccountId;
use crate::domain::port_state::PortState;
use crate::domain::time::now_gregorian;
use crate::state::AppState;
use crate::store::directory::Account;
use crate::store::views::DESK_DDOC;
use crate::store::{ViewQuery, ViewRow};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// An authority's desk configuration (none: the defaults).
pub async fn config(state: &AppState, authority: &AccountId) -> Result<DeskConfig, AppError> {
    let doc = state.directory.doc(&authority.db_name(), crate::domain::desk::CONFIG_ID).await?;
    Ok(DeskConfig::of(doc.as_deref()))
}

/// The rejection catalogue of an authority.
pub async fn catalogue_of(state: &AppState, authority: &AccountId) -> Result<Vec<RejectionCode>, AppError> {
    Ok(rejection_codes::in_effect(config(state, authority).await?.rejection_codes.as_ref()))
}

/// `GET .../rejection_codes`: the catalogue in effect for an account's requests (its port
/// authority's).
pub async fn rejection_codes(state: &AppState, account: &Account) -> Result<Vec<RejectionCode>, AppError> {
    let authority = find_authority(&state.directory, account).await?;
    catalogue_of(state, &authority).await
}

/// The catalogue entry a move names with `reason_code`: only a rejection names one, and only
/// a code of the catalogue of the request's authority.
pub async fn rejection_named(
    state: &AppState,
    doc: &PortRequest,
    to: PortState,
    code: Option<&str>,
) -> Result<Option<RejectionCode>, AppError> {
    let Some(code) = code else { return Ok(None) };
    if to != PortState::Rejected {
        return Err(AppError::field(
            "reason_code",
            "forbidden",
            json!({ "message": "reason_code is given only with a rejection", "value": code }),
        ));
    }
    let catalogue = match doc.authority.get() {
        Some(authority) => catalogue_of(state, authority).await?,
        None => rejection_codes::shipped().to_vec(),
    };
    match rejection_codes::find(&catalogue, code) {
        Some(entry) => Ok(Some(entry.clone())),
        None => Err(AppError::field(
            "reason_code",
            "enum",
            json!({
                "message": "Value not found in enumerated list of values",
                "value": code,
                "target": catalogue.iter().map(|c| c.code.as_str()).collect::<Vec<_>>(),
            }),
        )),
    }
}

/// What an authority's desk counts with: its rules in effect and its business calendar (the
/// configuration's hours, in its time zone: the configured one, else the authority account's
/// as Kazoo reads it).
pub struct Desk {
    pub config: DeskConfig,
    pub rules: Vec<Rule>,
    pub calendar: Calendar,
}

pub async fn desk_of(state: &AppState, authority: &AccountId) -> Result<Desk, AppError> {
    let config = config(state, authority).await?;
    let tz = match state.directory.account(authority).await? {
        Some(account) => kazoos_timezone(&state.directory, &account).await,
        None => chrono_tz::UTC,
    };
    let rules = attention::in_effect(config.attention_rules.as_ref());
    let calendar = Calendar::configured(tz, config.business_hours.as_ref());
    Ok(Desk { config, rules, calendar })
}

/// The desk of the authority of a listing's scope.
pub async fn desk_for_scope(state: &AppState, scope: &Scope, account: &Account) -> Result<Desk, AppError> {
    match scope {
        Scope::Agent { authority, .. } => desk_of(state, authority).await,
        Scope::Account(_) => desk_of(state, &find_authority(&state.directory, account).await?).await,
        // an account whose whitelabel names itself is its descendants' port authority
        Scope::Descendants(_) => desk_of(state, &authority_as_agent(&state.directory, account).await?).await,
    }
}

/// `GET .../attention`: the requests of a scope that need attention now, the most urgent rule
/// first and within it the longest waiting; each with the rule, who acts, since when and what
/// to do. Paged like the listings; `who` keeps the rules of one actor.
pub async fn attention(
    state: &AppState,
    scope: &Scope,
    desk: &Desk,
    ask: &ListingAsk,
    who: Option<&str>,
) -> Result<Listed, AppError> {
    let actor = match who {
        None => None,
        Some(w) => Some(Actor::parse(w).ok_or_else(|| {
            AppError::field(
                "who",
                "enum",
                json!({
                    "message": "Value not found in enumerated list of values",
                    "value": w,
                    "target": ["authority", "submitter", "customer"],
                }),
            )
        })?),
    };
    let now = now_gregorian();
    let mut segments = Vec::new();
    let mut rule_of = Vec::new();
    for (i, rule) in desk.rules.iter().enumerate() {
        if actor.is_some_and(|a| a != rule.who) {
            continue;
        }
        let bound = rule.bound(&desk.calendar, now);
        for st in &rule.states {
            let mut prefix = scope.own_prefix();
            prefix.extend([json!(st), json!(rule.anchor.as_str())]);
            segments.push(Segment { ddoc: DESK_DDOC, view: "attention", prefix, bounds: Some((0, bound)) });
            rule_of.push(i);
        }
    }
    let page_size = ask.page_size()?.unwrap_or(DEFAULT_PAGE_SIZE);
    let cursor = ask.cursor(segments.len().max(1))?;
    let page = read_page(state, &segments, Some(page_size), cursor, false).await?;
    let mut rows = Vec::new();
    for (doc, stage) in page.docs.iter().zip(&page.stages) {
        let rule = &desk.rules[rule_of[*stage]];
        // a request shows once, under the most urgent rule holding it (of those asked for)
        let first = desk
            .rules
            .iter()
            .filter(|r| actor.is_none_or(|a| a == r.who))
            .find_map(|r| r.holds(doc, &desk.calendar, now).map(|at| (r, at)));
        if let Some((r, at)) = first.filter(|(r, _)| r.id == rule.id) {
            rows.push(attention_row(doc, r, at, &desk.calendar));
        }
    }
    let names = state.directory.account_names(&rows.iter().filter_map(|(a, _)| a.clone()).collect::<Vec<_>>()).await?;
    let data: Vec<Value> = rows
        .into_iter()
        .map(|(account, mut row)| {
            row["account_name"] = json!(account.and_then(|a| names.get(&a).map(|n| n.to_string())));
            row
        })
        .collect();
    let count = data.len();
    Ok(paged(json!(data), count, ask, page.next))
}

/// One request needing attention, as the listing shows it (and the account to name).
fn attention_row(doc: &PortRequest, rule: &Rule, at: i64, cal: &Calendar) -> (Option<AccountId>, Value) {
    let numbers: Vec<String> = doc.numbers.get().map(|n| n.keys().map(|k| k.to_string()).collect()).unwrap_or_default();
    let account = doc.owner().cloned();
    let mut row = json!({
        "id": doc.id,
        "name": doc.name.get(),
        "account_id": account,
        "port_state": doc.shown_state(),
        "numbers": numbers,
        "carrier": doc.carrier(),
        "rule": rule.id,
        "title": rule.title,
        "who": rule.who,
        "action": rule.action,
        "since": at,
        "attention_since": rule.due_at(cal, at),
        "transfer_date": doc.transfer_date.get(),
        "scheduled_date": doc.scheduled_date.get(),
    });
    if rule.who == Actor::Customer
        && let Some(owner) = &account
    {
        row["customer_link"] = json!(format!("/v2/accounts/{owner}/port_requests/{}/customer_link", doc.id));
    }
    (account, row)
}

/// The request's times in attention, as timeline entries (`attention` entries that say
/// whether it entered or left, under which rule).
pub async fn attention_timeline(state: &AppState, doc: &PortRequest) -> Result<Vec<Value>, AppError> {
    let Some(authority) = doc.authority.get() else { return Ok(vec![]) };
    let desk = desk_of(state, authority).await?;
    let mut out = Vec::new();
    for ep in attention::episodes(&desk.rules, doc, &desk.calendar, now_gregorian()) {
        let shown = |event: &str, at: i64| {
            json!({
                "timestamp": at,
                "type": "attention",
                "attention": {
                    "event": event, "rule": ep.rule.id, "title": ep.rule.title,
                    "who": ep.rule.who, "action": ep.rule.action,
                },
            })
        };
        out.push(shown("entered", ep.entered));
        if let Some(left) = ep.left {
            out.push(shown("left", left));
        }
    }
    Ok(out)
}

/// What a report is asked: `created_from` and `created_to` as given (Gregorian seconds).
#[derive(Debug, Clone, Default)]
pub struct ReportAsk {
    pub created_from: Option<String>,
    pub created_to: Option<String>,
}

/// The window of a report: every request when neither end is given.
fn report_window(ask: &ReportAsk) -> Result<Option<(i64, i64)>, AppError> {
    let read = |name: &str, raw: &Option<String>| -> Result<Option<i64>, AppError> {
        match raw.as_deref() {
            None | Some("") => Ok(None),
            Some(v) => v.trim().parse::<i64>().ok().filter(|n| *n >= 0).map(Some).ok_or_else(|| {
                AppError::field(
                    name,
                    "type",
                    json!({ "message": "Value must be a time in Gregorian seconds", "value": v, "target": "integer" }),
                )
            }),
        }
    };
    let (from, to) = (read("created_from", &ask.created_from)?, read("created_to", &ask.created_to)?);
    if from.is_none() && to.is_none() {
        return Ok(None);
    }
    let (from, to) = (from.unwrap_or(0), to.unwrap_or_else(now_gregorian));
    if from > to {
        return Err(AppError::field(
            "created_from",
            "date_range",
            json!({ "message": format!("created_to {to} is prior to created_from {from}") }),
        ));
    }
    Ok(Some((from, to)))
}

/// How many range queries of a report run at once.
const REPORT_CONCURRENCY: usize = 8;

/// `GET .../report`: per losing carrier, the figures of the requests of an account and its
/// descendants created in the window. Read from two reduced views: one grouped query each for
/// the carriers (and the codes) ever seen, then, for a window, one range query per carrier
/// (and per carrier and code): the cost follows the number of carriers and codes, not of
/// requests (`docs/desk.md`).
pub async fn report(state: &AppState, account: &Account, ask: &ReportAsk) -> Result<Vec<Figures>, AppError> {
    use futures_util::{StreamExt, TryStreamExt};
    let window = report_window(ask)?;
    let scope = json!(account.id);
    let grouped = |view: &'static str, level: u32| {
        let query = ViewQuery {
            group_level: Some(level),
            wait: Some(state.settings.listing_wait),
            ..ViewQuery::range(json!([scope]), json!([scope, {}]))
        };
        async move { state.port_requests.reduce(DESK_DDOC, view, &query).await }
    };
    let (carriers, codes) = futures_util::try_join!(grouped("report_by_carrier", 2), grouped("report_rejections", 3))?;
    let in_range = |view: &'static str, prefix: Vec<Value>| {
        let (from, to) = window.unwrap_or((0, 0));
        let mut lo = prefix.clone();
        lo.push(json!(from));
        let mut hi = prefix;
        hi.extend([json!(to), json!({})]);
        let query = ViewQuery {
            group_level: Some(0),
            wait: Some(state.settings.listing_wait),
            ..ViewQuery::range(json!(lo), json!(hi))
        };
        async move {
            state
                .port_requests
                .reduce(DESK_DDOC, view, &query)
                .await
                .map(|rows| rows.into_iter().next().map(|r| r.value))
        }
    };
    let key_part = |row: &ViewRow, i: usize| row.key.get(i).and_then(Value::as_str).unwrap_or_default().to_owned();
    // (carrier, sums), then ((carrier, code), count)
    let sums: Vec<(String, Vec<u64>)> = match window {
        None => carriers.iter().map(|r| (key_part(r, 1), report::sums(&r.value))).collect(),
        Some(_) => {
            futures_util::stream::iter(carriers.iter().map(|r| {
                let carrier = key_part(r, 1);
                let read = in_range("report_by_carrier", vec![scope.clone(), json!(carrier)]);
                async move { read.await.map(|v| (carrier, v.map(|v| report::sums(&v)).unwrap_or_default())) }
            }))
            .buffered(REPORT_CONCURRENCY)
            .try_collect()
            .await?
        }
    };
    let counts: Vec<((String, String), u64)> = match window {
        None => codes.iter().map(|r| ((key_part(r, 1), key_part(r, 2)), r.value.as_u64().unwrap_or(0))).collect(),
        Some(_) => {
            futures_util::stream::iter(codes.iter().map(|r| {
                let (carrier, code) = (key_part(r, 1), key_part(r, 2));
                let read = in_range("report_rejections", vec![scope.clone(), json!(carrier), json!(code)]);
                async move { read.await.map(|v| ((carrier, code), v.and_then(|v| v.as_u64()).unwrap_or(0))) }
            }))
            .buffered(REPORT_CONCURRENCY)
            .try_collect()
            .await?
        }
    };
    let mut by_code: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
    for ((carrier, code), n) in counts.into_iter().filter(|(_, n)| *n > 0) {
        by_code.entry(carrier).or_default().insert(code, n);
    }
    let mut out: Vec<Figures> = sums
        .into_iter()
        .map(|(carrier, s)| {
            let codes = by_code.remove(&carrier).unwrap_or_default();
            report::figures(&carrier, &s, codes)
        })
        .filter(|f| f.requests > 0)
        .collect();
    out.sort_by(|a, b| b.submitted.cmp(&a.submitted).then_with(|| a.carrier.cmp(&b.carrier)));
    Ok(out)
}

/// How many requests a digest lists at most (the rest: "and more", with the listing's link).
const DIGEST_ROWS: usize = 200;

/// What an authority's digest says: what needs its attention and what its customers (and
/// their submitters) still owe, each request with a link.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Digest {
    pub authority_id: AccountId,
    pub authority_name: Option<String>,
    pub day: String,
    pub attention: Vec<Value>,
    pub owed: Vec<Value>,
    /// More requests need attention than are listed.
    pub more: bool,
    /// The authority's attention listing.
    pub listing: String,
}

impl Digest {
    /// Nothing to say: no mail.
    pub fn is_empty(&self) -> bool {
        self.attention.is_empty() && self.owed.is_empty()
    }
}

/// The digest of an authority for a day, as things stand now.
pub async fn digest(state: &AppState, authority: &AccountId, day: &str) -> Result<Digest, AppError> {
    let desk = desk_of(state, authority).await?;
    let scope = Scope::Agent { authority: authority.clone(), caller: authority.clone() };
    let ask = ListingAsk { page_size: Some(DIGEST_ROWS.to_string()), ..ListingAsk::default() };
    let listed = attention(state, &scope, &desk, &ask, None).await?;
    let base = &state.settings.public_url;
    let link_template = desk.config.digest.as_ref().and_then(|d| d.get("link")).and_then(Value::as_str);
    let (mut mine, mut owed) = (Vec::new(), Vec::new());
    for mut row in listed.data.as_array().cloned().unwrap_or_default() {
        let (account, id) = (row["account_id"].as_str().unwrap_or_default(), row["id"].as_str().unwrap_or_default());
        row["link"] = json!(match link_template {
            // an operator's own console (Monster UI, say): `{account_id}` and `{id}` filled in
            Some(t) => t.replace("{account_id}", account).replace("{id}", id),
            None => format!("{base}/v2/accounts/{account}/port_requests/{id}"),
        });
        if row["who"] == "authority" { mine.push(row) } else { owed.push(row) }
    }
    let name = state.directory.account(authority).await?.and_then(|a| a.name().map(str::to_owned));
    Ok(Digest {
        authority_id: authority.clone(),
        authority_name: name,
        day: day.to_owned(),
        attention: mine,
        owed,
        more: listed.paged.is_some_and(|p| p.next_start_key.is_some()),
        listing: format!("{base}/v2/port_requests/attention"),
    })
}

/// The authorities with open requests (those a digest may have something to say about).
pub async fn authorities(state: &AppState) -> Result<Vec<AccountId>, AppError> {
    let query = ViewQuery { group_level: Some(2), ..ViewQuery::range(json!(["authority"]), json!(["authority", {}])) };
    let rows = state.port_requests.reduce(DESK_DDOC, "attention", &query).await?;
    Ok(rows.iter().filter_map(|r| r.key.get(1).and_then(Value::as_str).and_then(AccountId::from_any)).collect())
}
