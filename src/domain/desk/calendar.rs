//! Business hours and days, in the port authority's time zone, and the thresholds the
//! attention rules count in: wall-clock (`seconds`, `minutes`, `hours`, `days`) or business
//! time (`business_hours`, `business_days`). Times are Gregorian seconds, as Kazoo keeps them.

use crate::domain::time::{gregorian_to_unix, unix_to_gregorian};
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use serde_json::Value;

/// How far the walks over the calendar go (a threshold of years is a configuration error,
/// not a reason to loop).
const MAX_DAYS: u64 = 3660;

#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    pub tz: Tz,
    /// Monday first.
    pub days: [bool; 7],
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Calendar {
    /// Monday to Friday, 09:00 to 17:00, in `tz`.
    pub fn office(tz: Tz) -> Calendar {
        Calendar {
            tz,
            days: [true, true, true, true, true, false, false],
            start: NaiveTime::from_hms_opt(9, 0, 0).expect("a time"),
            end: NaiveTime::from_hms_opt(17, 0, 0).expect("a time"),
        }
    }

    /// The office calendar with a desk configuration's `business_hours` over it (`days` as
    /// `mon`..`sun`, `start`/`end` as `HH:MM`, `timezone` an IANA name); a part that does not
    /// read keeps the default.
    pub fn configured(tz: Tz, config: Option<&Value>) -> Calendar {
        let mut cal = Calendar::office(tz);
        let Some(c) = config else { return cal };
        if let Some(tz) = c.get("timezone").and_then(Value::as_str).and_then(|n| n.parse::<Tz>().ok()) {
            cal.tz = tz;
        }
        if let Some(list) = c.get("days").and_then(Value::as_array) {
            let mut days = [false; 7];
            for d in list.iter().filter_map(Value::as_str) {
                if let Ok(w) = d.parse::<Weekday>() {
                    days[w.num_days_from_monday() as usize] = true;
                }
            }
            if days.iter().any(|d| *d) {
                cal.days = days;
            }
        }
        let time = |k: &str| c.get(k).and_then(Value::as_str).and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok());
        if let (Some(s), Some(e)) = (time("start"), time("end"))
            && s < e
        {
            cal.start = s;
            cal.end = e;
        }
        cal
    }

    fn is_open(&self, date: NaiveDate) -> bool {
        self.days[date.weekday().num_days_from_monday() as usize]
    }

    pub fn local(&self, gregorian: i64) -> DateTime<Tz> {
        let utc = DateTime::from_timestamp(gregorian_to_unix(gregorian), 0).unwrap_or_default();
        utc.with_timezone(&self.tz)
    }

    /// The instant of a local date and time (after a DST gap; the earlier of an overlap).
    fn at(&self, date: NaiveDate, time: NaiveTime) -> i64 {
        let naive = date.and_time(time);
        let instant = self
            .tz
            .from_local_datetime(&naive)
            .earliest()
            .or_else(|| self.tz.from_local_datetime(&(naive + chrono::Duration::hours(1))).earliest());
        instant.map_or(0, |i| unix_to_gregorian(i.timestamp()))
    }

    /// The business hours of a date, as instants.
    fn opening(&self, date: NaiveDate) -> Option<(i64, i64)> {
        self.is_open(date).then(|| (self.at(date, self.start), self.at(date, self.end)))
    }

    /// The instant `seconds` of business time after `from`.
    pub fn after_business(&self, from: i64, seconds: i64) -> i64 {
        let mut left = seconds.max(0);
        let mut date = self.local(from).date_naive();
        for _ in 0..MAX_DAYS {
            if let Some((open, close)) = self.opening(date) {
                let start = open.max(from);
                if start < close {
                    if left <= close - start {
                        return start + left;
                    }
                    left -= close - start;
                }
            }
            date = date + Days::new(1);
        }
        from + seconds
    }

    /// The instant `seconds` of business time before `to`.
    pub fn before_business(&self, to: i64, seconds: i64) -> i64 {
        let mut left = seconds.max(0);
        let mut date = self.local(to).date_naive();
        for _ in 0..MAX_DAYS {
            if let Some((open, close)) = self.opening(date) {
                let end = close.min(to);
                if open < end {
                    if left <= end - open {
                        return end - left;
                    }
                    left -= end - open;
                }
            }
            date = date - Days::new(1);
        }
        to - seconds
    }

    /// The same local time `n` business days later (or earlier, for a negative `n`).
    pub fn business_days(&self, from: i64, n: i64) -> i64 {
        let local = self.local(from);
        let mut date = local.date_naive();
        let mut left = n.unsigned_abs();
        let mut steps = 0;
        while left > 0 && steps < MAX_DAYS {
            date = if n > 0 { date + Days::new(1) } else { date - Days::new(1) };
            if self.is_open(date) {
                left -= 1;
            }
            steps += 1;
        }
        self.at(date, local.time())
    }
}

/// A rule's threshold: one amount in one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Wall-clock seconds.
    Seconds(i64),
    BusinessSeconds(i64),
    BusinessDays(i64),
}

impl Span {
    /// `{"seconds": n}`, `{"minutes": n}`, `{"hours": n}`, `{"days": n}`, `{"business_hours": n}`,
    /// `{"business_days": n}` (one key, a whole number of at least 0).
    pub fn parse(v: &Value) -> Option<Span> {
        let o = v.as_object().filter(|o| o.len() == 1)?;
        let (unit, n) = o.iter().next()?;
        let n = n.as_i64().filter(|n| (0..=100_000_000).contains(n))?;
        Some(match unit.as_str() {
            "seconds" => Span::Seconds(n),
            "minutes" => Span::Seconds(n * 60),
            "hours" => Span::Seconds(n * 3600),
            "days" => Span::Seconds(n * 86_400),
            "business_hours" => Span::BusinessSeconds(n * 3600),
            "business_days" => Span::BusinessDays(n),
            _ => return None,
        })
    }

    /// The instant this span after `t`.
    pub fn after(self, cal: &Calendar, t: i64) -> i64 {
        match self {
            Span::Seconds(s) => t + s,
            Span::BusinessSeconds(s) => cal.after_business(t, s),
            Span::BusinessDays(n) => cal.business_days(t, n),
        }
    }

    /// The instant this span before `t`.
    pub fn before(self, cal: &Calendar, t: i64) -> i64 {
        match self {
            Span::Seconds(s) => t - s,
            Span::BusinessSeconds(s) => cal.before_business(t, s),
            Span::BusinessDays(n) => cal.business_days(t, -n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::scheduled_date;
    use serde_json::json;

    fn ny(s: &str) -> i64 {
        scheduled_date(s, "America/New_York").unwrap()
    }

    #[test]
    fn business_hours_skip_nights_and_weekends_in_the_authoritys_zone() {
        let cal = Calendar::office(chrono_tz::America::New_York);
        // Friday 2030-01-04 16:00 + 4 business hours = Monday 12:00
        assert_eq!(cal.after_business(ny("2030-01-04 16:00"), 4 * 3600), ny("2030-01-07 12:00"));
        assert_eq!(cal.before_business(ny("2030-01-07 12:00"), 4 * 3600), ny("2030-01-04 16:00"));
        // from a Saturday evening: the week's first hours
        assert_eq!(cal.after_business(ny("2030-01-05 20:00"), 3600), ny("2030-01-07 10:00"));
        // three business days from a Thursday
        assert_eq!(cal.business_days(ny("2030-01-03 10:30"), 3), ny("2030-01-08 10:30"));
        assert_eq!(cal.business_days(ny("2030-01-08 10:30"), -3), ny("2030-01-03 10:30"));
    }

    #[test]
    fn configured_hours_and_a_zone_of_its_own() {
        let c = json!({"days": ["mon", "tue", "wed", "thu", "fri", "sat"], "start": "08:00", "end": "12:00", "timezone": "Europe/Paris"});
        let cal = Calendar::configured(chrono_tz::UTC, Some(&c));
        assert_eq!(cal.tz, chrono_tz::Europe::Paris);
        let paris = |s| scheduled_date(s, "Europe/Paris").unwrap();
        assert_eq!(cal.after_business(paris("2030-01-05 11:00"), 2 * 3600), paris("2030-01-07 09:00"));
        let bad = json!({"days": "weekdays", "start": "18:00", "end": "09:00", "timezone": "Mars/Base"});
        assert_eq!(Calendar::configured(chrono_tz::UTC, Some(&bad)), Calendar::office(chrono_tz::UTC));
    }

    #[test]
    fn spans() {
        assert_eq!(Span::parse(&json!({"seconds": 5})), Some(Span::Seconds(5)));
        assert_eq!(Span::parse(&json!({"days": 2})), Some(Span::Seconds(172_800)));
        assert_eq!(Span::parse(&json!({"business_hours": 4})), Some(Span::BusinessSeconds(14_400)));
        for bad in [json!({"weeks": 1}), json!({"days": -1}), json!({"days": 1, "hours": 2}), json!(3)] {
            assert_eq!(Span::parse(&bad), None, "{bad}");
        }
    }
}
