//! Listing windows and page keys. Page keys are opaque to clients: base64url of a small JSON
//! array `[stage, key tail, doc id]` naming the first row of the next page, where the tail is
//! the part of the view key after the scope (state rank, modified time). The scope part is
//! never in it, so a forged key can move within a listing but never out of it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// `crossbar.maximum_range`: 31 days and an hour.
pub const MAX_RANGE: i64 = 2_682_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RangeError {
    Reversed { from: i64, to: i64 },
    TooLong { from: i64, to: i64 },
}

/// `crossbar_view:time_range`: `to` defaults to now, `from` to `to - MAX_RANGE`; values that
/// are not positive integers count as absent, as in Kazoo.
pub fn modified_range(from: Option<i64>, to: Option<i64>, now: i64) -> Result<Range, RangeError> {
    let to = to.filter(|t| *t > 0).unwrap_or(now);
    let from = from.filter(|f| *f > 0).unwrap_or(to - MAX_RANGE);
    if from > to {
        return Err(RangeError::Reversed { from, to });
    }
    if to - from > MAX_RANGE {
        return Err(RangeError::TooLong { from, to });
    }
    Ok(Range { from, to })
}

/// The window of an export: any span (it streams), from the beginning unless `from` is given.
pub fn export_range(from: Option<i64>, to: Option<i64>, now: i64) -> Result<Range, RangeError> {
    let to = to.filter(|t| *t > 0).unwrap_or(now);
    let from = from.filter(|f| *f > 0).unwrap_or(0);
    if from > to {
        return Err(RangeError::Reversed { from, to });
    }
    Ok(Range { from, to })
}

impl RangeError {
    /// Kazoo's messages, under `modified_from` with code `date_range`.
    pub fn message(&self) -> String {
        match self {
            RangeError::Reversed { from, to } => format!("modified_to {to} is prior to modified_from {from}"),
            RangeError::TooLong { from, to } => {
                format!("modified_to {to} is more than {MAX_RANGE} seconds from modified_from {from}")
            }
        }
    }
}

/// Where the next page starts: a stage of the listing (one state, say), the integer part of
/// the view key after the scope, and the document id that breaks ties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub stage: usize,
    pub tail: Vec<i64>,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(json!([self.stage, self.tail, self.id]).to_string())
    }

    /// `None` for anything that is not a key this service handed out for a listing with
    /// `stages` stages.
    pub fn decode(raw: &str, stages: usize) -> Option<Cursor> {
        if raw.len() > 256 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).ok()?;
        let parts: Vec<Value> = serde_json::from_slice(&bytes).ok()?;
        let [stage, tail, id] = parts.as_slice() else { return None };
        let stage = usize::try_from(stage.as_u64()?).ok().filter(|s| *s < stages)?;
        let tail = tail.as_array().filter(|t| t.len() <= 4)?.iter().map(Value::as_i64).collect::<Option<Vec<i64>>>()?;
        let id = id.as_str().filter(|id| id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))?;
        Some(Cursor { stage, tail, id: id.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_window_is_31_days_and_an_hour() {
        assert_eq!(modified_range(None, None, 10_000_000), Ok(Range { from: 10_000_000 - MAX_RANGE, to: 10_000_000 }));
        assert_eq!(modified_range(Some(-5), Some(0), 10_000_000).unwrap().to, 10_000_000);
        assert_eq!(modified_range(Some(100), None, 200).unwrap(), Range { from: 100, to: 200 });
    }

    #[test]
    fn bad_windows() {
        let e = modified_range(Some(300), Some(200), 0).unwrap_err();
        assert_eq!(e.message(), "modified_to 200 is prior to modified_from 300");
        let e = modified_range(Some(1), Some(1 + MAX_RANGE + 1), 0).unwrap_err();
        assert_eq!(
            e.message(),
            format!("modified_to {} is more than 2682000 seconds from modified_from 1", MAX_RANGE + 2)
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let c = Cursor { stage: 1, tail: vec![2, 63_900_000_000], id: "ab12".into() };
        assert_eq!(Cursor::decode(&c.encode(), 2), Some(c.clone()));
        assert_eq!(Cursor::decode(&c.encode(), 1), None, "stage out of range");
        for bad in [
            "",
            "!!!",
            "bm90IGpzb24",
            &URL_SAFE_NO_PAD.encode("[1,2]"),
            &URL_SAFE_NO_PAD.encode(r#"[0,1,"../x"]"#),
            &URL_SAFE_NO_PAD.encode(r#"[0,"x","ab"]"#),
            &URL_SAFE_NO_PAD.encode(r#"[0,["x"],"ab"]"#),
            &"A".repeat(300),
        ] {
            assert_eq!(Cursor::decode(bad, 5), None, "{bad}");
        }
        let no_tail = Cursor { stage: 0, tail: vec![], id: "ff".into() };
        assert_eq!(Cursor::decode(&no_tail.encode(), 1), Some(no_tail));
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode(r#"[0,[1,2,3,4,5],"ab"]"#), 1), None);
    }

    #[test]
    fn an_export_takes_any_span_from_the_beginning() {
        assert_eq!(export_range(None, None, 100).unwrap(), Range { from: 0, to: 100 });
        assert_eq!(export_range(Some(5), Some(10_000_000_000), 1).unwrap(), Range { from: 5, to: 10_000_000_000 });
        assert!(export_range(Some(10), Some(5), 100).is_err());
    }
}
