//! Listings exported: as CSV, one row per number (with where that number is), or as JSON lines,
//! one request per line (its public view, per-number progress included). Plain functions over
//! one listed request at a time, so an export of any size streams through.

use super::documents::fields::Slot;
use super::documents::port_request::PortRequest;
use super::number_progress;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    /// From crossbar's `accept` query value (`csv`, `jsonl`) or the `Accept` header
    /// (`text/csv`, `application/x-ndjson`, `application/jsonl`); `None` for a JSON listing.
    pub fn asked(query: Option<&str>, header: Option<&str>) -> Option<Format> {
        let by_name = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
            "csv" | "text/csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "application/x-ndjson" | "application/jsonl" | "application/jsonlines" => {
                Some(Format::JsonLines)
            }
            _ => None,
        };
        if let Some(q) = query {
            return by_name(q);
        }
        // the first of the header's types that is one of ours (parameters ignored)
        header?.split(',').filter_map(|t| by_name(t.split(';').next().unwrap_or_default())).next()
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::JsonLines => "application/x-ndjson",
        }
    }
}

/// The columns of a CSV export, in order.
pub const CSV_COLUMNS: [&str; 15] = [
    "request_id",
    "account_id",
    "name",
    "port_state",
    "number",
    "number_state",
    "number_reason",
    "number_updated",
    "carrier",
    "bill_name",
    "reference_number",
    "transfer_date",
    "scheduled_date",
    "created",
    "updated",
];

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A field's text as stored (empty when absent).
fn field<T: Serialize>(slot: &Slot<T>) -> String {
    match slot {
        Slot::Absent => String::new(),
        other => text(serde_json::to_value(other).ok().as_ref()),
    }
}

/// The CSV rows of one stored request: one per number, wherever it is (on the request, ported
/// or canceled); a request without numbers still gets a row.
pub fn csv_rows(doc: &PortRequest) -> Vec<Vec<String>> {
    let request = [doc.id.to_string(), field(&doc.account_id), field(&doc.name), text(Some(&doc.shown_state()))];
    let bill = doc.bill();
    let tail = [
        bill.map(|b| field(&b.carrier)).unwrap_or_default(),
        bill.map(|b| field(&b.name)).unwrap_or_default(),
        field(&doc.reference_number),
        field(&doc.transfer_date),
        field(&doc.scheduled_date),
        field(&doc.created),
        field(&doc.modified),
    ];
    let numbers = number_progress::all(doc);
    let row = |number: &str, progress: Option<&Value>| {
        let own = |k: &str| text(progress.and_then(|p| p.get(k)));
        request
            .iter()
            .cloned()
            .chain([number.to_owned(), own("state"), own("reason"), own("timestamp")])
            .chain(tail.iter().cloned())
            .collect::<Vec<String>>()
    };
    if numbers.is_empty() {
        return vec![row("", None)];
    }
    numbers.iter().map(|(n, p)| row(n, Some(p))).collect()
}

/// CSV text of `rows` (with the header first when `header`).
pub fn csv_text(rows: &[Vec<String>], header: bool) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    if header {
        let _ = w.write_record(CSV_COLUMNS);
    }
    for r in rows {
        // writing to memory cannot fail
        let _ = w.write_record(r);
    }
    w.into_inner().unwrap_or_default()
}

/// One JSON line of a listed request's view.
pub fn json_line(view: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(view).unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A1: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn formats_are_asked_by_query_or_header() {
        assert_eq!(Format::asked(Some("csv"), None), Some(Format::Csv));
        assert_eq!(Format::asked(Some("jsonl"), Some("text/csv")), Some(Format::JsonLines), "the query wins");
        assert_eq!(Format::asked(None, Some("text/html, text/csv;q=0.9")), Some(Format::Csv));
        assert_eq!(Format::asked(None, Some("application/x-ndjson")), Some(Format::JsonLines));
        assert_eq!(Format::asked(None, Some("application/json")), None);
        assert_eq!(Format::asked(Some("json"), None), None);
        assert_eq!(Format::asked(None, None), None);
    }

    #[test]
    fn a_row_per_number_with_where_it_is() {
        let doc = PortRequest::stored_with(
            json!({"_id": "r1", "name": "Acme, \"HQ\"", "bill": {"carrier": "Telco", "name": "Acme"},
                   "numbers": {"+14155550100": {}}}),
            json!({"account_id": A1, "port_state": "pending", "created": 63_900_000_000_i64, "modified": 63_900_000_100_i64,
                   "ported_numbers": {"+14155550101": {}},
                   "number_progress": {"+14155550101": {"state": "completed", "reason": "early", "timestamp": 63_900_000_050_i64}}}),
        );
        let rows = csv_rows(&doc);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][4..8], ["+14155550100", "pending", "", ""]);
        assert_eq!(rows[1][4..8], ["+14155550101", "completed", "early", "63900000050"]);
        let text = String::from_utf8(csv_text(&rows, true)).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
        assert!(
            lines.next().unwrap().starts_with(&format!(r#"r1,{A1},"Acme, ""HQ""",pending,+14155550100,pending"#)),
            "{text}"
        );
        let empty = PortRequest::from_stored(json!({"_id": "empty"})).unwrap();
        assert_eq!(csv_rows(&empty).len(), 1, "a request without numbers still shows");
        assert_eq!(json_line(&json!({"id": "r1"})), b"{\"id\":\"r1\"}\n");
    }
}
