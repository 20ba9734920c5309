//! CSV import: a request per run of rows with one `request` value, a row per number (rules in
//! `domain::import`).
//!
//! The file is read twice, a request (a run of adjacent rows) at a time, so memory holds the
//! file (at most the largest body accepted), one request and one line of outcome per row:
//! 1. every row is read and every request checked as its creation would be (schema, numbers,
//!    numbers in service or held elsewhere, numbers twice in the file), writing nothing;
//! 2. only when no row was refused, and not for a dry run, each request is created, with an id
//!    that follows from the account and its `request` value: one made by an earlier import of
//!    that key is left as it is (`exists`), so the same file imported again makes nothing twice.

use super::error::{AppError, NumberTaken};
use super::requests::{self, check_new};
use super::write::Ask;
use crate::domain::ids::PortRequestId;
use crate::domain::import::{self, Column, Draft, MAX_ROW_BYTES, request_id, rows_of_error};
use crate::domain::phone_number::to_e164;
use crate::state::AppState;
use crate::store::directory::Account;
use std::collections::{HashMap, HashSet};

/// Why a row was not imported.
#[derive(Debug, Clone)]
pub enum RowError {
    /// The row (or its place in the file) is wrong: what to fix.
    Message(String),
    /// A field of the row's request, at its dotted path: the field's errors by code.
    Field { path: String, detail: serde_json::Value },
    /// The row's number.
    Number { raw: String, why: NumberTaken },
    /// The request was refused as a whole.
    Refused(AppError),
}

/// What became of one row.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub line: usize,
    pub request: String,
    pub number: String,
    /// `valid`, `created`, `exists`, `error` or `not_made`.
    pub status: &'static str,
    pub id: Option<String>,
    pub errors: Vec<RowError>,
}

impl Outcome {
    fn of(draft: &Draft, line: usize, number: &str, status: &'static str, id: Option<String>) -> Self {
        Outcome { line, request: draft.key.clone(), number: number.into(), status, id, errors: vec![] }
    }

    fn refused(line: usize, request: &str, number: &str, why: impl Into<String>) -> Self {
        Outcome {
            line,
            request: request.into(),
            number: number.into(),
            status: "error",
            id: None,
            errors: vec![RowError::Message(why.into())],
        }
    }
}

/// An import's report.
pub struct Report {
    pub dry_run: bool,
    /// Whether the requests were made (no row refused, not a dry run).
    pub written: bool,
    pub requests: usize,
    /// Each row's outcome, in file order.
    pub rows: Vec<Outcome>,
}

impl Report {
    pub fn count(&self, status: &str) -> usize {
        self.rows.iter().filter(|o| o.status == status).count()
    }
}

fn file_error(why: String) -> AppError {
    AppError::field("file", "invalid", serde_json::json!({ "message": why }))
}

/// The header's columns (the file is refused whole without usable ones).
fn header(body: &[u8]) -> Result<(Vec<Column>, usize), AppError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(body);
    let mut record = csv::ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Err(file_error("the file is empty: a header, then a row per number".into())),
        Err(e) => return Err(file_error(format!("the header cannot be read: {e}"))),
    }
    let names: Vec<String> = record
        .iter()
        .map(|f| String::from_utf8(f.to_vec()).map_err(|_| file_error("the header is not UTF-8 text".into())))
        .collect::<Result<_, _>>()?;
    let columns = import::columns(&names).map_err(file_error)?;
    Ok((columns, reader.position().byte() as usize))
}

/// How many requests are checked or made at a time.
const AT_ONCE: usize = 16;

/// Reads the rows after the header, handing the requests (runs of rows of one request) to
/// `each` `AT_ONCE` at a time, in file order; rows that cannot be read at all are refused on
/// their own.
async fn for_each_request(
    body: &[u8],
    columns: &[Column],
    outcomes: &mut Vec<Outcome>,
    mut each: impl AsyncFnMut(Vec<Draft>, &mut Vec<Outcome>) -> Result<(), AppError>,
) -> Result<usize, AppError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(body);
    let mut draft: Option<Draft> = None;
    let mut batch: Vec<Draft> = Vec::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut requests = 0;
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line() as usize;
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                outcomes.push(Outcome::refused(line, "", "", format!("the row cannot be read: {e}")));
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line() as usize);
        if record.as_slice().len() > MAX_ROW_BYTES {
            outcomes.push(Outcome::refused(line, "", "", format!("the row is longer than {MAX_ROW_BYTES} bytes")));
            continue;
        }
        let cells: Result<Vec<String>, _> = record.iter().map(|c| String::from_utf8(c.to_vec())).collect();
        let Ok(cells) = cells else {
            outcomes.push(Outcome::refused(line, "", "", "the row is not UTF-8 text"));
            continue;
        };
        let row = match import::row(columns, &cells) {
            Ok(row) => row,
            Err(why) => {
                let (request, number) = (cells.first().cloned().unwrap_or_default(), String::new());
                outcomes.push(Outcome::refused(line, &request, &number, why));
                continue;
            }
        };
        if draft.as_ref().is_none_or(|d| d.key != row.request) {
            if let Some(d) = draft.take() {
                done.insert(d.key.clone());
                requests += 1;
                batch.push(d);
                if batch.len() == AT_ONCE {
                    each(std::mem::take(&mut batch), outcomes).await?;
                }
            }
            if done.contains(&row.request) {
                let why = format!("the rows of request '{}' must be next to each other", row.request);
                outcomes.push(Outcome::refused(line, &row.request, &row.number, why));
                continue;
            }
            draft = Some(Draft::new(&row.request));
        }
        let (request, number) = (row.request.clone(), row.number.clone());
        if let Some(d) = draft.as_mut()
            && let Err(why) = d.add(line, row)
        {
            outcomes.push(Outcome::refused(line, &request, &number, why));
        }
    }
    if let Some(d) = draft.take() {
        requests += 1;
        batch.push(d);
    }
    if !batch.is_empty() {
        each(batch, outcomes).await?;
    }
    Ok(requests)
}

/// Records a refusal of a whole request against its rows; a server-side failure stops the
/// import.
fn refuse(draft: &Draft, error: AppError, outcomes: &mut Vec<Outcome>) -> Result<(), AppError> {
    if !error.is_refusal() {
        return Err(error);
    }
    let mut per_row: HashMap<usize, Vec<RowError>> = HashMap::new();
    let to_all = |e: RowError, per_row: &mut HashMap<usize, Vec<RowError>>| {
        for (line, _) in &draft.rows {
            per_row.entry(*line).or_default().push(e.clone());
        }
    };
    match &error {
        AppError::Invalid(errors) => {
            for (path, detail) in errors.to_value().as_object().into_iter().flatten() {
                for (line, _) in rows_of_error(path, &draft.rows) {
                    per_row
                        .entry(*line)
                        .or_default()
                        .push(RowError::Field { path: path.clone(), detail: detail.clone() });
                }
            }
        }
        AppError::Numbers(refused) => {
            for n in refused {
                let e = RowError::Number { raw: n.raw.clone(), why: n.why.clone() };
                match draft.rows.iter().find(|(_, number)| *number == n.raw) {
                    Some((line, _)) => per_row.entry(*line).or_default().push(e),
                    None => to_all(e, &mut per_row),
                }
            }
        }
        other => to_all(RowError::Refused(other.clone()), &mut per_row),
    }
    for (line, number) in &draft.rows {
        let errors = per_row.remove(line).unwrap_or_default();
        let status = if errors.is_empty() { "not_made" } else { "error" };
        outcomes.push(Outcome {
            line: *line,
            request: draft.key.clone(),
            number: number.clone(),
            status,
            id: None,
            errors,
        });
    }
    Ok(())
}

/// Imports (or, with `dry_run`, only checks) the CSV `body` for `account`. Answers per row.
pub async fn import(ask: &Ask<'_>, body: &[u8], dry_run: bool) -> Result<Report, AppError> {
    let (state, account): (&AppState, &Account) = (ask.state, ask.through);
    let (columns, _) = header(body)?;
    let mut outcomes: Vec<Outcome> = Vec::new();
    // the numbers of the requests checked so far, for numbers that are in the file twice
    let mut in_file: HashMap<String, String> = HashMap::new();
    let requests =
        for_each_request(body, &columns, &mut outcomes, async |drafts: Vec<Draft>, out: &mut Vec<Outcome>| {
            // numbers twice in the file, in file order; then the checks of the batch at once
            let twice: Vec<Vec<Outcome>> = drafts.iter().map(|d| numbers_seen_before(d, &mut in_file)).collect();
            let ids: Vec<PortRequestId> = drafts.iter().map(|d| id_of(account, d)).collect();
            let checks = drafts.iter().zip(&ids).map(|(d, id)| check_new(state, account, d.public.clone(), id));
            let checked = futures_util::future::join_all(checks).await;
            for (((draft, id), twice), checked) in drafts.iter().zip(ids).zip(twice).zip(checked) {
                match checked {
                    Ok(()) => {
                        let refused: HashSet<usize> = twice.iter().map(|o| o.line).collect();
                        let status = if refused.is_empty() { "valid" } else { "not_made" };
                        let id = refused.is_empty().then(|| id.to_string());
                        out.extend(twice);
                        for (line, number) in draft.rows.iter().filter(|(l, _)| !refused.contains(l)) {
                            out.push(Outcome::of(draft, *line, number, status, id.clone()));
                        }
                    }
                    Err(e) => {
                        out.extend(twice);
                        refuse(draft, e, out)?;
                    }
                }
            }
            Ok(())
        })
        .await?;
    let refused = outcomes.iter().any(|o| o.status != "valid");
    if !dry_run && !refused {
        outcomes.clear();
        for_each_request(body, &columns, &mut outcomes, async |drafts: Vec<Draft>, out: &mut Vec<Outcome>| {
            let made = futures_util::future::join_all(drafts.iter().map(|d| make(ask, d))).await;
            for (draft, made) in drafts.iter().zip(made) {
                match made {
                    Ok((id, status)) => {
                        for (line, number) in &draft.rows {
                            out.push(Outcome::of(draft, *line, number, status, Some(id.to_string())));
                        }
                    }
                    Err(e) => refuse(draft, e, out)?,
                }
            }
            Ok(())
        })
        .await?;
    }
    outcomes.sort_by_key(|o| o.line);
    Ok(Report { dry_run, written: !dry_run && !refused, requests, rows: outcomes })
}

fn id_of(account: &Account, draft: &Draft) -> PortRequestId {
    PortRequestId::parse(&request_id(account.id.as_str(), &draft.key)).expect("derived ids are 32 hex characters")
}

/// The rows of `draft` whose number an earlier request of the file has (the others are noted
/// as this request's).
fn numbers_seen_before(draft: &Draft, in_file: &mut HashMap<String, String>) -> Vec<Outcome> {
    let mut twice = Vec::new();
    for (line, number) in &draft.rows {
        let e164 = to_e164(number).unwrap_or_else(|| number.clone());
        match in_file.get(&e164) {
            Some(other) if *other != draft.key => {
                let why = format!("the number is on request '{other}' of this file too");
                twice.push(Outcome::refused(*line, &draft.key, number, why));
            }
            _ => {
                in_file.insert(e164, draft.key.clone());
            }
        }
    }
    twice
}

/// Creates the request of `draft`, unless an earlier import made it: its id, and `created` or
/// `exists`.
async fn make(ask: &Ask<'_>, draft: &Draft) -> Result<(PortRequestId, &'static str), AppError> {
    let id = id_of(ask.through, draft);
    if ask.state.couch.get(crate::store::dbs::PORT_REQUESTS, id.as_str()).await?.is_some() {
        return Ok((id, "exists"));
    }
    match requests::create(ask, draft.public.clone(), id.clone(), None).await {
        Ok(_) => Ok((id, "created")),
        Err(AppError::Conflict) => Ok((id, "exists")),
        Err(e) => Err(e),
    }
}
