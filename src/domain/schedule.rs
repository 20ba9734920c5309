//! `schedule_on {date_time "YYYY-MM-DD HH:MM", timezone}` → `scheduled_date` (Gregorian
//! seconds of that local time in that IANA zone).

use super::time::unix_to_gregorian;
use chrono::{LocalResult, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

#[derive(Debug, PartialEq, Eq)]
pub enum ScheduleError {
    BadDateTime,
    UnknownTimezone,
}

pub fn parse_timezone(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// The Gregorian seconds of a local date-time. In a DST gap the moment after the gap is
/// used; in a DST overlap, the earlier of the two instants.
pub fn scheduled_date(date_time: &str, timezone: &str) -> Result<i64, ScheduleError> {
    let tz = parse_timezone(timezone).ok_or(ScheduleError::UnknownTimezone)?;
    let naive = NaiveDateTime::parse_from_str(date_time, "%Y-%m-%d %H:%M").map_err(|_| ScheduleError::BadDateTime)?;
    let instant = match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(earliest, _) => earliest,
        LocalResult::None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .ok_or(ScheduleError::BadDateTime)?,
    };
    Ok(unix_to_gregorian(instant.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_example() {
        // 2017-06-24 12:00 PDT = 19:00 UTC (the seed prints 63658292400, which is 2017-04-01)
        assert_eq!(scheduled_date("2017-06-24 12:00", "America/Los_Angeles"), Ok(63_665_550_000));
    }

    #[test]
    fn any_iana_zone() {
        let paris = scheduled_date("2030-01-02 10:00", "Europe/Paris").unwrap();
        let utc = scheduled_date("2030-01-02 09:00", "UTC").unwrap();
        assert_eq!(paris, utc);
        assert_eq!(scheduled_date("2030-01-02 10:00", "Mars/Olympus"), Err(ScheduleError::UnknownTimezone));
        assert_eq!(scheduled_date("2030-13-02 10:00", "UTC"), Err(ScheduleError::BadDateTime));
    }

    #[test]
    fn dst_gap_moves_forward() {
        let gap = scheduled_date("2030-03-10 02:30", "America/New_York").unwrap();
        let after = scheduled_date("2030-03-10 03:30", "America/New_York").unwrap();
        assert_eq!(gap, after);
    }
}
