//! The daily digest of a port authority: one mail (and, with Kazoo's bus on, one message) per
//! authority and local day, at the local time it chooses (`digest.at`, default 08:00, in its
//! calendar's zone). The delivery records are named by authority, day and channel, so whoever
//! makes one first holds it and every other instance finds it made.

use super::calendar::Calendar;
use chrono::{NaiveDate, NaiveTime};
use serde_json::Value;

/// The delivery records' event (and the mail template's name).
pub const EVENT: &str = "port_authority_digest";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestSettings {
    pub at: NaiveTime,
    pub disabled: bool,
}

impl DigestSettings {
    /// From a desk configuration's `digest` (`{"at": "HH:MM", "disabled": bool}`); what does
    /// not read keeps the default (08:00, on).
    pub fn of(config: Option<&Value>) -> DigestSettings {
        let at = config
            .and_then(|c| c.get("at"))
            .and_then(Value::as_str)
            .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok())
            .unwrap_or(NaiveTime::from_hms_opt(8, 0, 0).expect("a time"));
        let disabled = config.and_then(|c| c.get("disabled")) == Some(&Value::Bool(true));
        DigestSettings { at, disabled }
    }

    /// The local day whose digest is due at `now`: today once its time has come.
    pub fn due(&self, cal: &Calendar, now: i64) -> Option<NaiveDate> {
        let local = cal.local(now);
        (!self.disabled && local.time() >= self.at).then(|| local.date_naive())
    }
}

/// The id of the digest record of an authority, day and channel.
pub fn record_id(authority: &str, day: NaiveDate, channel: &str) -> String {
    format!("delivery:digest:{authority}:{day}:{channel}:{EVENT}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::scheduled_date;
    use serde_json::json;

    #[test]
    fn due_from_the_chosen_local_time() {
        let cal = Calendar::office(chrono_tz::Australia::Sydney);
        let s = DigestSettings::of(None);
        let at = |t| scheduled_date(t, "Australia/Sydney").unwrap();
        assert_eq!(s.due(&cal, at("2030-03-04 07:59")), None);
        assert_eq!(s.due(&cal, at("2030-03-04 08:00")), NaiveDate::from_ymd_opt(2030, 3, 4));
        let late = DigestSettings::of(Some(&json!({"at": "17:30"})));
        assert_eq!(late.due(&cal, at("2030-03-04 12:00")), None);
        assert_eq!(DigestSettings::of(Some(&json!({"disabled": true}))).due(&cal, at("2030-03-04 23:00")), None);
        assert_eq!(DigestSettings::of(Some(&json!({"at": "8am"}))).at, NaiveTime::from_hms_opt(8, 0, 0).unwrap());
        assert_eq!(
            record_id("ab", NaiveDate::from_ymd_opt(2030, 3, 4).unwrap(), "email"),
            "delivery:digest:ab:2030-03-04:email:port_authority_digest"
        );
    }
}
