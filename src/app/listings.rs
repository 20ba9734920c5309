//! Listings: the port authority's requests, an account's, an account's descendants', by state
//! (`by_types` or the state in the path), by number, and by last submission; and their exports.
//! Everything is read from design-doc views keyed by scope, state and modified time, so the
//! cost follows the page, not the size of the database.

use super::accounts::authority_as_agent;
use super::error::AppError;
use super::write::Who;
use crate::domain::documents::port_request::PortRequest;
use crate::domain::export::{self, Format};
use crate::domain::ids::AccountId;
use crate::domain::paging::{Cursor, Range, export_range, modified_range};
use crate::domain::phone_number::normalize;
use crate::domain::port_request::{last_transition_to, view_for};
use crate::domain::port_state::PortState;
use crate::domain::time::now_gregorian;
use crate::state::AppState;
use crate::store::directory::Account;
use crate::store::views::{KAZOO_DDOC, OWN_DDOC};
use crate::store::{ViewQuery, ViewRow};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Page sizes above this are refused: the answer has to fit in memory.
const MAX_PAGE_SIZE: usize = 10_000;
pub(crate) const DEFAULT_PAGE_SIZE: usize = 50;
/// How many requests an export reads at a time: its memory stays that of one page.
const EXPORT_PAGE: usize = 500;

/// Whose requests a listing shows.
#[derive(Debug, Clone)]
pub enum Scope {
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
    pub(crate) fn own_prefix(&self) -> Vec<Value> {
        match self {
            Scope::Account(a) => vec![json!("account"), json!(a)],
            Scope::Descendants(a) => vec![json!("ancestor"), json!(a)],
            Scope::Agent { authority, .. } => vec![json!("authority"), json!(authority)],
        }
    }

    /// May a request found by number be shown here? (superduper admins see everything)
    fn reaches(&self, doc: &PortRequest) -> bool {
        match self {
            Scope::Account(a) => doc.is_under(a),
            Scope::Descendants(a) => doc.is_under(a) && doc.owner() != Some(a),
            Scope::Agent { caller, .. } => doc.is_under(caller),
        }
    }
}

/// The caller as a port authority (`cb_port_requests:set_port_authority`, agent type): itself
/// when its whitelabel names it, else the walk from its account. Only port authorities and
/// superduper admins have an agent listing.
pub async fn agent_scope(state: &AppState, who: &Who, caller: &Account) -> Result<Scope, AppError> {
    let authority = authority_as_agent(&state.directory, caller).await?;
    if authority != caller.id && !who.is_superduper_admin() {
        return Err(AppError::Forbidden);
    }
    Ok(Scope::Agent { authority, caller: caller.id.clone() })
}

/// What a listing is asked with: the query string's and the envelope's values, as given.
#[derive(Debug, Clone, Default)]
pub struct ListingAsk {
    /// How many requests a page holds (checked here: 1 to 10,000).
    pub page_size: Option<String>,
    /// Where the page starts: a key this listing handed out as `next_start_key`.
    pub start_key: Option<String>,
    /// `descending`/`ascending` of the query string.
    pub descending: Option<bool>,
    pub of: Of,
    /// `modified_from` and `modified_to` (Gregorian seconds), bounding completed and canceled
    /// requests.
    pub modified: (Option<i64>, Option<i64>),
}

/// Which requests a listing shows.
#[derive(Debug, Clone)]
pub enum Of {
    /// `by_number`: the requests of one number.
    Number(String),
    /// `by_types`: `active` (the default), `progressing`, `suspended`, `completed`, `all`,
    /// `last_submitted`, or states.
    Types(Option<String>),
}

impl Default for Of {
    fn default() -> Self {
        Of::Types(None)
    }
}

impl ListingAsk {
    pub(crate) fn page_size(&self) -> Result<Option<usize>, AppError> {
        match &self.page_size {
            None => Ok(None),
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(Some(n)),
                _ => Err(AppError::field(
                    "page_size",
                    "invalid",
                    json!({ "message": format!("page size must be an integer from 1 to {MAX_PAGE_SIZE}"), "value": raw }),
                )),
            },
        }
    }

    pub(crate) fn cursor(&self, stages: usize) -> Result<Option<Cursor>, AppError> {
        match &self.start_key {
            None => Ok(None),
            Some(raw) => Cursor::decode(raw, stages).map(Some).ok_or_else(|| {
                AppError::field(
                    "start_key",
                    "invalid",
                    json!({ "message": "start_key is not a key this listing handed out", "value": raw }),
                )
            }),
        }
    }

    fn window(&self, export: bool) -> Result<Range, AppError> {
        let range = if export { export_range } else { modified_range };
        range(self.modified.0, self.modified.1, now_gregorian())
            .map_err(|e| AppError::field("modified_from", "date_range", json!({ "message": e.message() })))
    }
}

/// What a listing shows: a `by_types` group, some states, or the last submissions.
#[derive(Debug, Clone)]
pub enum Types {
    /// `active`, `progressing`, `suspended` or `completed`: one range of our group view.
    Group(&'static str),
    States(Vec<PortState>),
    LastSubmitted,
}

impl Types {
    /// What the path says (`/port_requests/{state}`, `/port_requests/last_submitted`): in the
    /// path, `completed` is the state alone, not the `by_types` group.
    pub fn of_path(token: &str) -> Option<Types> {
        match PortState::parse(token) {
            Some(state) => Some(Types::States(vec![state])),
            None if token == "last_submitted" => Some(Types::LastSubmitted),
            None => None,
        }
    }
}

fn parse_types(raw: Option<&str>) -> Result<Types, AppError> {
    let raw = raw.unwrap_or("active");
    match raw {
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
        return Err(AppError::BadRequest(format!(
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

/// One key range of a listing: `prefix` then, within `bounds`, the rest of the key.
pub(crate) struct Segment {
    pub(crate) ddoc: &'static str,
    pub(crate) view: &'static str,
    pub(crate) prefix: Vec<Value>,
    /// Bounds of the key element right after the prefix (the modified time of ranged states).
    pub(crate) bounds: Option<(i64, i64)>,
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
    state: &AppState,
    seg: &Segment,
    cursor: Option<&Cursor>,
    need: Option<usize>,
    descending: bool,
) -> Result<Vec<(ViewRow, PortRequest)>, AppError> {
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
            wait: Some(state.settings.listing_wait),
            ..ViewQuery::default()
        };
        let rows = state.port_requests.view(seg.ddoc, seg.view, &query).await?;
        let got = rows.len() as u64;
        for (row, doc) in rows {
            let before_cursor = after.as_ref().is_some_and(|(key, id)| {
                let rid = row.id.as_deref().unwrap_or_default();
                &row.key == key && if descending { rid > *id } else { rid < *id }
            });
            if let (false, Some(doc)) = (before_cursor, doc) {
                out.push((row, doc));
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

/// A page of requests across the segments of a listing, and the cursor of the next page.
pub(crate) struct Page {
    pub(crate) docs: Vec<PortRequest>,
    /// The segment each request was read from.
    pub(crate) stages: Vec<usize>,
    pub(crate) next: Option<Cursor>,
}

pub(crate) async fn read_page(
    state: &AppState,
    segments: &[Segment],
    page_size: Option<usize>,
    cursor: Option<Cursor>,
    descending: bool,
) -> Result<Page, AppError> {
    let mut rows: Vec<(usize, ViewRow, PortRequest)> = Vec::new();
    let first = cursor.as_ref().map_or(0, |c| c.stage);
    for (stage, seg) in segments.iter().enumerate().skip(first) {
        let here = cursor.as_ref().filter(|c| c.stage == stage);
        let need = page_size.map(|p| p + 1 - rows.len());
        let found = segment_rows(state, seg, here, need, descending).await?;
        rows.extend(found.into_iter().map(|(r, d)| (stage, r, d)));
        if page_size.is_some_and(|p| rows.len() > p) {
            break;
        }
    }
    let next = match page_size {
        Some(p) if rows.len() > p => rows.pop().map(|(stage, row, _)| Cursor {
            stage,
            tail: segments[stage].tail_of(&row.key),
            id: row.id.unwrap_or_default(),
        }),
        _ => None,
    };
    let stages = rows.iter().map(|(stage, _, _)| *stage).collect();
    Ok(Page { docs: rows.into_iter().map(|(_, _, d)| d).collect(), stages, next })
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
                ddoc: OWN_DDOC,
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
                    ddoc: KAZOO_DDOC,
                    view,
                    prefix: vec![json!(id), json!(st)],
                    bounds: range.filter(|_| is_ranged(*st)).map(|r| (r.from, r.to)),
                })
                .collect()
        }
        Types::LastSubmitted => return None,
    })
}

/// A listing's answer: its data, and when it is paged, how many rows it holds, the key it
/// started from (as given) and the key of the next page.
pub struct Listed {
    pub data: Value,
    pub paged: Option<Paged>,
}

pub struct Paged {
    pub count: usize,
    /// The start key as given, or the first page's.
    pub start_key: String,
    pub next_start_key: Option<String>,
}

pub(crate) fn paged(data: Value, count: usize, ask: &ListingAsk, next: Option<Cursor>) -> Listed {
    let start_key =
        ask.start_key.clone().unwrap_or_else(|| Cursor { stage: 0, tail: vec![], id: String::new() }.encode());
    Listed { data, paged: Some(Paged { count, start_key, next_start_key: next.map(|n| n.encode()) }) }
}

/// The public view of a listed request, with its `account_id` on top (`leak_pvt_fields`).
fn listed(who: &Who, doc: &PortRequest) -> Value {
    let mut view = view_for(doc, who.is_authority(doc));
    if let Some(account) = doc.owner() {
        view["account_id"] = json!(account);
    }
    view
}

/// `[{"account_id", "account_name", "port_requests": [...]}]`, names read only for the
/// accounts of this page.
async fn grouped(state: &AppState, who: &Who, docs: Vec<PortRequest>) -> Result<Value, AppError> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<Value>> = HashMap::new();
    for doc in &docs {
        let account = doc.owner().map(|a| a.to_string()).unwrap_or_default();
        if !groups.contains_key(&account) {
            order.push(account.clone());
        }
        groups.entry(account).or_default().push(listed(who, doc));
    }
    let ids: Vec<AccountId> = order.iter().filter_map(|a| AccountId::from_any(a)).collect();
    let names = state.directory.account_names(&ids).await?;
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

/// A listing being answered: whose requests, for whom, as asked.
pub struct Listing<'a> {
    pub state: &'a AppState,
    pub who: &'a Who,
    pub scope: &'a Scope,
    pub ask: &'a ListingAsk,
}

impl Listing<'_> {
    /// Answers the listing: by number, by last submission, or by state. `path_types`: what the
    /// path says (`/port_requests/{state}`), else `by_types`.
    pub async fn answer(&self, path_types: Option<Types>) -> Result<Listed, AppError> {
        match (&self.ask.of, path_types) {
            (Of::Number(number), _) => self.by_number(number).await,
            (Of::Types(_), Some(types)) => self.by_types(types).await,
            (Of::Types(asked), None) => self.by_types(parse_types(asked.as_deref())?).await,
        }
    }

    async fn by_types(&self, types: Types) -> Result<Listed, AppError> {
        let ranged = is_ranged_listing(&types);
        let window = if ranged { Some(self.ask.window(false)?) } else { None };
        let Some(segments) = segments_of(self.scope, &types, window) else {
            return self.last_submitted().await;
        };
        // Kazoo returns everything for the active kinds; ranged listings page by 50
        let page_size = self.ask.page_size()?.or(ranged.then_some(DEFAULT_PAGE_SIZE));
        let cursor = self.ask.cursor(segments.len())?;
        let page = read_page(self.state, &segments, page_size, cursor, self.ask.descending.unwrap_or(false)).await?;
        let count = page.docs.len();
        let data = grouped(self.state, self.who, page.docs).await?;
        Ok(match page_size {
            Some(_) => paged(data, count, self.ask, page.next),
            None => Listed { data, paged: None },
        })
    }

    async fn last_submitted(&self) -> Result<Listed, AppError> {
        let page_size = self.ask.page_size()?.unwrap_or(DEFAULT_PAGE_SIZE);
        let segment = Segment { ddoc: OWN_DDOC, view: "last_submitted", prefix: self.scope.own_prefix(), bounds: None };
        let cursor = self.ask.cursor(1)?;
        let descending = self.ask.descending.unwrap_or(true);
        let page = read_page(self.state, std::slice::from_ref(&segment), Some(page_size), cursor, descending).await?;
        let data: Vec<Value> = page
            .docs
            .iter()
            .filter_map(|doc| {
                last_transition_to(doc, PortState::Submitted).map(|t| json!({ "id": doc.id, "transition": t }))
            })
            .collect();
        let count = data.len();
        Ok(paged(json!(data), count, self.ask, page.next))
    }

    async fn by_number(&self, raw: &str) -> Result<Listed, AppError> {
        let number = normalize(raw);
        let page_size = self.ask.page_size()?.unwrap_or(DEFAULT_PAGE_SIZE);
        let descending = self.ask.descending.unwrap_or(false);
        let cursor = self.ask.cursor(1)?;
        // a number is on a handful of requests at most: read them all, then page
        let query =
            ViewQuery { wait: Some(self.state.settings.listing_wait), ..ViewQuery::key(json!(number)).with_docs() };
        let rows = self.state.port_requests.view(OWN_DDOC, "listing_by_number", &query).await?;
        let superduper = self.who.is_superduper_admin();
        let mut docs: Vec<PortRequest> =
            rows.into_iter().filter_map(|(_, d)| d).filter(|doc| superduper || self.scope.reaches(doc)).collect();
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        if descending {
            docs.reverse();
        }
        if let Some(c) = &cursor {
            docs.retain(|d| if descending { d.id.as_str() <= c.id.as_str() } else { d.id.as_str() >= c.id.as_str() });
        }
        let next = docs.get(page_size).map(|d| Cursor { stage: 0, tail: vec![], id: d.id.to_string() });
        docs.truncate(page_size);
        let data: Vec<Value> = docs.iter().map(|d| listed(self.who, d)).collect();
        let count = data.len();
        Ok(paged(json!(data), count, self.ask, next))
    }
}

/// A `by_types` listing exported: every row of it (no pages; completed and canceled requests of
/// any span of `modified_from`/`modified_to`, all of them by default), as CSV (one row per
/// number) or JSON lines (one request per line), a page of the views at a time. The stream
/// ends early (an error) if CouchDB fails half-way.
pub fn export(
    state: Arc<AppState>,
    who: Who,
    scope: &Scope,
    ask: &ListingAsk,
    format: Format,
) -> Result<impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + use<>, AppError> {
    let types = match &ask.of {
        Of::Types(asked) => parse_types(asked.as_deref())?,
        Of::Number(_) => return Err(AppError::BadRequest("a listing by number cannot be exported".into())),
    };
    let segments = segments_of(scope, &types, Some(ask.window(true)?))
        .ok_or_else(|| AppError::BadRequest("last_submitted cannot be exported: export a by_types listing".into()))?;
    let descending = ask.descending.unwrap_or(false);
    // (segments, where the next page starts, whether the header is written, done)
    let start = (segments, None::<Cursor>, false, false);
    Ok(futures_util::stream::unfold(start, move |(segments, cursor, headed, done)| {
        let (state, who) = (state.clone(), who.clone());
        async move {
            if done {
                return None;
            }
            let page = match read_page(&state, &segments, Some(EXPORT_PAGE), cursor, descending).await {
                Ok(page) => page,
                Err(e) => {
                    // the answer is under way: all that is left is to cut it short
                    tracing::warn!(error = %e, "an export stopped half-way");
                    return Some((Err(std::io::Error::other(e.to_string())), (segments, None, true, true)));
                }
            };
            let mut out = Vec::new();
            if format == Format::Csv && !headed {
                out.extend(export::csv_text(&[], true));
            }
            for doc in &page.docs {
                match format {
                    Format::Csv => out.extend(export::csv_text(&export::csv_rows(doc), false)),
                    Format::JsonLines => out.extend(export::json_line(&listed(&who, doc))),
                }
            }
            let done = page.next.is_none();
            Some((Ok(bytes::Bytes::from(out)), (segments, page.next, true, done)))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_types_values() {
        assert!(matches!(parse_types(None), Ok(Types::Group("active"))));
        assert!(matches!(parse_types(Some("all")), Ok(Types::States(s)) if s.len() == 7));
        assert!(matches!(parse_types(Some("last_submitted")), Ok(Types::LastSubmitted)));
        assert!(matches!(parse_types(Some("pending, scheduled,pending")), Ok(Types::States(s)) if s.len() == 2));
        match parse_types(Some("pending,bogus,prgressing")) {
            Err(AppError::BadRequest(m)) => {
                assert_eq!(m, "query string by_types contained invalid values: bogus, prgressing")
            }
            _ => panic!("expected an error"),
        }
    }
}
