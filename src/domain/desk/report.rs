//! The report per losing carrier: what the `report_by_carrier` view sums for each carrier (the
//! value its map emits: counts, then a histogram of the days from the first submission to
//! completion) and the rejections the `report_rejections` view counts by code, as figures.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Where the histogram starts in the view's value, and its last day (that many days or more).
pub const HISTOGRAM_AT: usize = 6;
pub const LAST_DAY: usize = 90;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub carrier: String,
    /// Requests created in the window (any state, deleted ones aside).
    pub requests: u64,
    /// Of those, submitted at least once.
    pub submitted: u64,
    pub completed: u64,
    /// Rejected at least once.
    pub rejected: u64,
    pub canceled: u64,
    /// Completed of submitted (none when nothing was submitted).
    pub completion_rate: Option<f64>,
    /// Whole days from the first submission to completion (90: 90 or more).
    pub median_days: Option<u32>,
    pub p90_days: Option<u32>,
    /// Scheduled more than once, or completed more than a day after the scheduled date.
    pub foc_slipped: u64,
    /// Every rejection, by code (`uncoded` for free text).
    pub rejections_by_code: BTreeMap<String, u64>,
}

/// A `_sum` of the view's values as numbers (missing or odd entries count 0).
pub fn sums(v: &Value) -> Vec<u64> {
    match v {
        Value::Array(items) => items.iter().map(|x| x.as_f64().map_or(0, |f| f.max(0.0) as u64)).collect(),
        Value::Number(n) => vec![n.as_u64().unwrap_or(0)],
        _ => vec![],
    }
}

/// The figures of one carrier from its sums.
pub fn figures(carrier: &str, sums: &[u64], rejections: BTreeMap<String, u64>) -> Figures {
    let at = |i: usize| sums.get(i).copied().unwrap_or(0);
    let histogram: &[u64] = sums.get(HISTOGRAM_AT..).unwrap_or(&[]);
    let (submitted, completed) = (at(1), at(2));
    Figures {
        carrier: carrier.to_owned(),
        requests: at(0),
        submitted,
        completed,
        rejected: at(3),
        canceled: at(4),
        foc_slipped: at(5),
        completion_rate: (submitted > 0).then(|| (completed as f64 / submitted as f64 * 10_000.0).round() / 10_000.0),
        median_days: percentile(histogram, 50),
        p90_days: percentile(histogram, 90),
        rejections_by_code: rejections,
    }
}

/// The smallest day by which `pct` percent of the completions were done (nearest rank).
fn percentile(histogram: &[u64], pct: u64) -> Option<u32> {
    let n: u64 = histogram.iter().sum();
    if n == 0 {
        return None;
    }
    let rank = (n * pct).div_ceil(100).max(1);
    let mut seen = 0;
    for (day, count) in histogram.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return u32::try_from(day.min(LAST_DAY)).ok();
        }
    }
    None
}

/// The report as CSV: a row per carrier, the codes as `rejections:<code>` columns.
pub fn csv(report: &[Figures]) -> Result<String, csv::Error> {
    let codes: std::collections::BTreeSet<&str> =
        report.iter().flat_map(|f| f.rejections_by_code.keys().map(String::as_str)).collect();
    let mut w = csv::Writer::from_writer(vec![]);
    let mut header: Vec<String> = [
        "carrier",
        "requests",
        "submitted",
        "completed",
        "rejected",
        "canceled",
        "completion_rate",
        "median_days",
        "p90_days",
        "foc_slipped",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(codes.iter().map(|c| format!("rejections:{c}")));
    w.write_record(&header)?;
    let opt = |v: Option<String>| v.unwrap_or_default();
    for f in report {
        let mut row = vec![
            f.carrier.clone(),
            f.requests.to_string(),
            f.submitted.to_string(),
            f.completed.to_string(),
            f.rejected.to_string(),
            f.canceled.to_string(),
            opt(f.completion_rate.map(|r| r.to_string())),
            opt(f.median_days.map(|d| d.to_string())),
            opt(f.p90_days.map(|d| d.to_string())),
            f.foc_slipped.to_string(),
        ];
        row.extend(codes.iter().map(|c| f.rejections_by_code.get(*c).copied().unwrap_or(0).to_string()));
        w.write_record(&row)?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn figures_from_sums() {
        // 4 submitted, 3 completed in 0, 2 and 2 days
        let s = sums(&json!([5, 4, 3, 1, 0, 1, 1, 0, 2]));
        let f = figures("Pacific Bell", &s, BTreeMap::from([("wrong_pin".into(), 2)]));
        assert_eq!((f.submitted, f.completed, f.rejected, f.canceled, f.foc_slipped), (4, 3, 1, 0, 1));
        assert_eq!(f.completion_rate, Some(0.75));
        assert_eq!((f.median_days, f.p90_days), (Some(2), Some(2)));
        let none = figures("x", &sums(&json!([1, 0, 0, 0, 1, 0])), BTreeMap::new());
        assert_eq!((none.completion_rate, none.median_days), (None, None));
        let text = csv(&[f, none]).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "carrier,requests,submitted,completed,rejected,canceled,completion_rate,median_days,p90_days,foc_slipped,rejections:wrong_pin"
        );
        assert_eq!(text.lines().nth(1).unwrap(), "Pacific Bell,5,4,3,1,0,0.75,2,2,1,2");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut h = vec![0u64; 91];
        h[1..=10].fill(1);
        assert_eq!(percentile(&h, 50), Some(5));
        assert_eq!(percentile(&h, 90), Some(9));
        assert_eq!(percentile(&[0, 0, 1], 50), Some(2));
    }
}
