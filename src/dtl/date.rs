//! The `date` filter: Django's (and PHP's) format letters as ErlyDTL prints them, `\` before a
//! letter printing it as it is. The letters ErlyDTL leaves unimplemented print as it prints
//! them (`TODO` for `I`, `T`, `Z`, nothing for `B`); `O` is `+0000`, the dates being local
//! times already.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use serde_json::Value;

const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Gregorian seconds of 1970-01-01 (Kazoo's timestamps count from year 0).
const UNIX_EPOCH_GREGORIAN: i64 = 62_167_219_200;

/// A value the filter can format: a `YYYY-MM-DD[ T]HH:MM:SS` text (a local time, as the
/// template data gives dates), a date alone, or seconds (Gregorian when that large, else Unix).
pub fn read(v: &Value) -> Option<NaiveDateTime> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            let head = s.get(..19).unwrap_or(s);
            NaiveDateTime::parse_from_str(head, "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| NaiveDateTime::parse_from_str(head, "%Y-%m-%d %H:%M:%S"))
                .ok()
                .or_else(|| NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0))
        }
        Value::Number(n) => {
            let secs = n.as_i64()?;
            let unix = if secs > UNIX_EPOCH_GREGORIAN / 2 { secs - UNIX_EPOCH_GREGORIAN } else { secs };
            chrono::DateTime::from_timestamp(unix, 0).map(|d| d.naive_utc())
        }
        _ => None,
    }
}

fn hour12(h: u32) -> u32 {
    match h {
        0 => 12,
        1..=12 => h,
        _ => h - 12,
    }
}

fn days_in_month(y: i32, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1).and_then(|d| d.pred_opt()).map_or(31, |d| d.day())
}

/// 1 (Monday) to 7 (Sunday), as Erlang's `calendar:day_of_the_week`.
fn dow(d: NaiveDate) -> i64 {
    d.weekday().number_from_monday() as i64
}

fn weeks_in_year(y: i32) -> i64 {
    let first = NaiveDate::from_ymd_opt(y, 1, 1).map(dow);
    let last = NaiveDate::from_ymd_opt(y, 12, 31).map(dow);
    if first == Some(4) || last == Some(4) { 53 } else { 52 }
}

/// ErlyDTL's week number (`year_weeknum`), computed its way.
fn week_number(d: NaiveDate) -> i64 {
    let Some(jan1) = NaiveDate::from_ymd_opt(d.year(), 1, 1) else { return 0 };
    let first = (dow(jan1) % 7) - 1;
    let days = (d - jan1).num_days();
    // Erlang's `div` truncates toward zero
    let wk = (days + first) / 7 + if first < 4 { 1 } else { 0 };
    if wk == 0 {
        weeks_in_year(d.year() - 1)
    } else if wk > weeks_in_year(d.year()) {
        1
    } else {
        wk
    }
}

/// ErlyDTL's day of the year (it adds up the days of the months from the date's own back to
/// February: kept as it prints).
fn day_of_year(d: NaiveDate) -> u32 {
    (2..=d.month()).map(|m| days_in_month(d.year(), m)).sum::<u32>() + d.day()
}

fn letter(c: char, t: &NaiveDateTime, out: &mut String) {
    let (d, h, mi) = (t.date(), t.hour(), t.minute());
    let month = MONTHS[d.month0() as usize];
    let day = DAYS[d.weekday().num_days_from_monday() as usize];
    let s = match c {
        'a' => (if h > 11 { "p.m." } else { "a.m." }).to_owned(),
        'A' => (if h > 11 { "PM" } else { "AM" }).to_owned(),
        'B' => String::new(),
        'b' => month[..3].to_lowercase(),
        'c' => format!("{}-{:02}-{:02}T{:02}:{:02}:{:02}", d.year(), d.month(), d.day(), h, mi, t.second()),
        'd' => format!("{:02}", d.day()),
        'D' => day[..3].to_owned(),
        'E' | 'F' => month.to_owned(),
        'f' if mi == 0 => hour12(h).to_string(),
        'f' => format!("{}:{:02}", hour12(h), mi),
        'g' => hour12(h).to_string(),
        'G' => h.to_string(),
        'h' => format!("{:02}", hour12(h)),
        'H' => format!("{h:02}"),
        'i' => format!("{mi:02}"),
        'I' | 'T' | 'Z' => "TODO".to_owned(),
        'j' => d.day().to_string(),
        'l' => day.to_owned(),
        'L' => (if d.leap_year() { "True" } else { "False" }).to_owned(),
        'm' => format!("{:02}", d.month()),
        'M' => month[..3].to_owned(),
        'n' => d.month().to_string(),
        'N' if d.month() == 9 => "Sept.".to_owned(),
        'N' if d.month() < 3 || d.month() > 7 => format!("{}.", &month[..3]),
        'N' => month.to_owned(),
        'O' => "+0000".to_owned(),
        'P' if h == 0 && mi == 0 => "midnight".to_owned(),
        'P' if h == 12 && mi == 0 => "noon".to_owned(),
        'P' => {
            let mut f = String::new();
            letter('f', t, &mut f);
            format!("{f} {}", if h > 11 { "p.m." } else { "a.m." })
        }
        'r' => format(t, "D, j M Y H:i:s O"),
        's' => format!("{:02}", t.second()),
        'S' => match d.day() {
            11..=13 => "th",
            n if n % 10 == 1 => "st",
            n if n % 10 == 2 => "nd",
            n if n % 10 == 3 => "rd",
            _ => "th",
        }
        .to_owned(),
        't' => days_in_month(d.year(), d.month()).to_string(),
        'U' => t.and_utc().timestamp().to_string(),
        'w' => (dow(d) % 7).to_string(),
        'W' => week_number(d).to_string(),
        'y' => d.year().to_string().get(2..).unwrap_or_default().to_owned(),
        'Y' => d.year().to_string(),
        'z' => day_of_year(d).to_string(),
        'o' => {
            let (y, m, w) = (d.year(), d.month(), week_number(d));
            match (m, w) {
                (1, 52 | 53) => y - 1,
                (12, 1 | 2) => y + 1,
                _ => y,
            }
            .to_string()
        }
        other => other.to_string(),
    };
    out.push_str(&s);
}

/// `t` in `format`'s letters.
pub fn format(t: &NaiveDateTime, format: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            letter(c, t, &mut out);
        }
    }
    out
}
