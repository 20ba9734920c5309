//! Kazoo keeps every timestamp in Gregorian seconds (seconds since year 0).

use chrono::{DateTime, Utc};

/// Seconds between 0000-01-01 and 1970-01-01, as Kazoo's `kz_time` uses.
pub const UNIX_EPOCH_IN_GREGORIAN: i64 = 62_167_219_200;

pub fn unix_to_gregorian(unix: i64) -> i64 {
    unix + UNIX_EPOCH_IN_GREGORIAN
}

pub fn gregorian_to_unix(gregorian: i64) -> i64 {
    gregorian - UNIX_EPOCH_IN_GREGORIAN
}

pub fn now_unix() -> i64 {
    Utc::now().timestamp()
}

pub fn now_gregorian() -> i64 {
    unix_to_gregorian(now_unix())
}

/// The envelope timestamp: ISO-8601 UTC with a trailing `Z`, whole seconds.
pub fn iso8601(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn gregorian_to_datetime(gregorian: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(gregorian_to_unix(gregorian), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gregorian_round_trip() {
        assert_eq!(unix_to_gregorian(0), 62_167_219_200);
        assert_eq!(gregorian_to_unix(63_630_097_779), 1_462_878_579);
    }

    #[test]
    fn iso8601_has_trailing_z() {
        let at = DateTime::from_timestamp(1_714_564_800, 0).unwrap();
        assert_eq!(iso8601(at), "2024-05-01T12:00:00Z");
    }
}
