//! CSV import of port requests: the rules over plain data. One row per number; the `request`
//! column groups rows into requests (rows of one request are adjacent, as an export writes
//! them); the other columns name the request's fields (`name`, `bill.carrier`, ...) or a
//! number's own metadata (`number.<key>`). A request's id follows from its account and its
//! `request` value, so importing the same file again makes nothing twice.

use super::ids::derived_id;
use serde_json::{Map, Value, json};

/// The columns every import has.
pub const REQUEST: &str = "request";
pub const NUMBER: &str = "number";
/// Per-number metadata columns start with this.
pub const NUMBER_META: &str = "number.";
/// A row longer than this is refused (whatever it holds).
pub const MAX_ROW_BYTES: usize = 16 * 1024;

/// The request fields a column may name (dotted for nested ones).
pub const FIELDS: [&str; 21] = [
    "name",
    "reference_number",
    "transfer_date",
    "winning_carrier",
    "notifications.email.send_to",
    "notifications.webhook.url",
    "bill.name",
    "bill.carrier",
    "bill.account_number",
    "bill.pin",
    "bill.btn",
    "bill.street_number",
    "bill.street_pre_dir",
    "bill.street_address",
    "bill.street_type",
    "bill.street_post_dir",
    "bill.extended_address",
    "bill.locality",
    "bill.region",
    "bill.postal_code",
    "signee_name",
];

/// What each column of a file is.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Request,
    Number,
    Field(String),
    NumberMeta(String),
}

/// Reads the header: `request` and `number` are needed, every other column must be a known
/// field or `number.<key>`. The message lists what is wrong.
pub fn columns(header: &[String]) -> Result<Vec<Column>, String> {
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for raw in header {
        let name = raw.trim();
        let column = match name {
            REQUEST => Column::Request,
            NUMBER => Column::Number,
            f if FIELDS.contains(&f) => Column::Field(f.to_owned()),
            m if m.starts_with(NUMBER_META)
                && m.len() > NUMBER_META.len()
                && !m[NUMBER_META.len()..].starts_with('_') =>
            {
                Column::NumberMeta(m[NUMBER_META.len()..].to_owned())
            }
            other => {
                unknown.push(other.to_owned());
                continue;
            }
        };
        if out.contains(&column) {
            return Err(format!("the column '{name}' is there twice"));
        }
        out.push(column);
    }
    let mut missing: Vec<&str> = [REQUEST, NUMBER].into_iter().collect();
    missing.retain(|m| {
        !out.iter().any(|c| (*m == REQUEST && *c == Column::Request) || (*m == NUMBER && *c == Column::Number))
    });
    match (missing.is_empty(), unknown.is_empty()) {
        (true, true) => Ok(out),
        (false, _) => Err(format!("the header needs the columns {}", missing.join(" and "))),
        (_, false) => Err(format!(
            "unknown columns: {} (a column names a request field: {}, or number.<key>)",
            unknown.join(", "),
            FIELDS.join(", ")
        )),
    }
}

/// One row, read: its request, its number, the request fields and the number's metadata it gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub request: String,
    pub number: String,
    pub fields: Vec<(String, String)>,
    pub meta: Map<String, Value>,
}

/// Reads one row's cells (already text) against the columns.
pub fn row(columns: &[Column], cells: &[String]) -> Result<Row, String> {
    if cells.len() != columns.len() {
        return Err(format!("{} cells where the header has {} columns", cells.len(), columns.len()));
    }
    let mut r = Row { request: String::new(), number: String::new(), fields: Vec::new(), meta: Map::new() };
    for (column, cell) in columns.iter().zip(cells) {
        let cell = cell.trim();
        match column {
            Column::Request => r.request = cell.to_owned(),
            Column::Number => r.number = cell.to_owned(),
            Column::Field(f) if !cell.is_empty() => r.fields.push((f.clone(), cell.to_owned())),
            Column::NumberMeta(k) if !cell.is_empty() => {
                r.meta.insert(k.clone(), json!(cell));
            }
            _ => {}
        }
    }
    if r.request.is_empty() {
        return Err("the request column is empty".into());
    }
    if r.number.is_empty() {
        return Err("the number column is empty".into());
    }
    Ok(r)
}

/// The public fields of a request being put together from its rows.
#[derive(Debug, Default)]
pub struct Draft {
    pub key: String,
    pub public: Map<String, Value>,
    /// (row number in the file, number as written)
    pub rows: Vec<(usize, String)>,
}

impl Draft {
    pub fn new(key: &str) -> Self {
        Self { key: key.to_owned(), ..Self::default() }
    }

    /// Adds a row: its number, its metadata, and its fields, which must agree with those of
    /// the rows before (a field given once holds for the whole request).
    pub fn add(&mut self, line: usize, row: Row) -> Result<(), String> {
        for (field, value) in &row.fields {
            let path: Vec<&str> = field.split('.').collect();
            let value = if field == "notifications.email.send_to" { json!([value]) } else { json!(value) };
            match pointer(&self.public, &path) {
                Some(existing) if *existing != value => {
                    return Err(format!(
                        "{field} differs from the value an earlier row of request '{}' gave",
                        self.key
                    ));
                }
                Some(_) => {}
                None => set(&mut self.public, &path, value),
            }
        }
        let numbers = self.public.entry("numbers").or_insert_with(|| json!({}));
        if numbers.get(&row.number).is_some() {
            return Err(format!("the number is on request '{}' twice", self.key));
        }
        numbers[&row.number] = Value::Object(row.meta);
        self.rows.push((line, row.number));
        Ok(())
    }
}

fn pointer<'a>(map: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let v = map.get(*first)?;
    if rest.is_empty() { Some(v) } else { pointer(v.as_object()?, rest) }
}

fn set(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        map.insert((*first).to_owned(), value);
        return;
    }
    let child = map.entry(*first).or_insert_with(|| json!({}));
    if let Some(child) = child.as_object_mut() {
        set(child, rest, value);
    }
}

/// The id of the request made from `key` for `account`: the same every time the file is read.
pub fn request_id(account: &str, key: &str) -> String {
    derived_id(&format!("import:{account}:{key}"))
}

/// Which rows of a request an API error of that request belongs to: an error under a number's
/// path is that number's row; any other, every row of the request.
pub fn rows_of_error<'a>(path: &str, rows: &'a [(usize, String)]) -> Vec<&'a (usize, String)> {
    let own: Vec<&(usize, String)> = rows
        .iter()
        .filter(|(_, n)| path == n || path.ends_with(&format!(".{n}")) || path.contains(&format!(".{n}.")))
        .collect();
    if own.is_empty() { rows.iter().collect() } else { own }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn the_header_names_known_columns_only() {
        let cols = columns(&header(&["request", "number", "name", "bill.carrier", "number.state"])).unwrap();
        assert_eq!(cols[4], Column::NumberMeta("state".into()));
        assert!(columns(&header(&["request", "name"])).unwrap_err().contains("needs the columns number"));
        let err = columns(&header(&["request", "number", "colour", "port_state"])).unwrap_err();
        assert!(err.contains("unknown columns: colour, port_state"), "{err}");
        assert!(columns(&header(&["request", "number", "number._progress"])).is_err(), "the service's keys");
        assert!(columns(&header(&["request", "number", "name", "name"])).unwrap_err().contains("twice"));
    }

    #[test]
    fn rows_make_requests_whose_fields_agree() {
        let cols = columns(&header(&[
            "request",
            "number",
            "name",
            "bill.carrier",
            "notifications.email.send_to",
            "number.state",
        ]))
        .unwrap();
        let cells = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let mut draft = Draft::new("acme");
        draft
            .add(2, row(&cols, &cells(&["acme", "+14155550100", "Acme", "Telco", "it@acme.example", "CA"])).unwrap())
            .unwrap();
        draft.add(3, row(&cols, &cells(&["acme", "+14155550101", "", "Telco", "", ""])).unwrap()).unwrap();
        assert_eq!(draft.public["name"], "Acme");
        assert_eq!(draft.public["bill"]["carrier"], "Telco");
        assert_eq!(draft.public["notifications"]["email"]["send_to"], json!(["it@acme.example"]));
        assert_eq!(draft.public["numbers"]["+14155550100"], json!({"state": "CA"}));
        assert_eq!(draft.public["numbers"]["+14155550101"], json!({}));
        let clash = row(&cols, &cells(&["acme", "+14155550102", "Other name", "", "", ""])).unwrap();
        assert!(draft.add(4, clash).unwrap_err().contains("name differs"));
        let again = row(&cols, &cells(&["acme", "+14155550100", "", "", "", ""])).unwrap();
        assert!(draft.add(5, again).unwrap_err().contains("twice"));
        assert!(row(&cols, &cells(&["acme", "+1"])).unwrap_err().contains("2 cells where the header has 6"));
        assert!(
            row(&cols, &cells(&["", "+14155550100", "", "", "", ""])).unwrap_err().contains("request column is empty")
        );
        assert_eq!(request_id("a", "acme"), request_id("a", "acme"));
        assert_ne!(request_id("a", "acme"), request_id("b", "acme"));
    }

    #[test]
    fn errors_go_to_their_rows() {
        let rows = vec![(2, "+14155550100".to_owned()), (3, "+14155550101".to_owned())];
        assert_eq!(rows_of_error("+14155550101", &rows), vec![&rows[1]]);
        assert_eq!(rows_of_error("numbers.+14155550100", &rows), vec![&rows[0]]);
        assert_eq!(rows_of_error("bill.name", &rows).len(), 2);
    }
}
