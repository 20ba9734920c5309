//! The catalogue of rejection codes: what a port authority may say when it rejects a request,
//! each with what it means for the customer, the fix, and the fields to correct. The shipped
//! catalogue is `rejection_codes.json`; a port authority overrides entries (any of their
//! fields), adds its own, or withdraws one (`null` or `"disabled": true`) in its desk
//! configuration (`domain::desk::DeskConfig`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::LazyLock;

/// One code of the catalogue, as clients read it and as a rejection records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionCode {
    pub code: String,
    pub title: String,
    /// What the rejection means for the customer.
    pub meaning: String,
    /// What to do about it.
    pub fix: String,
    /// The request's fields to correct (`bill.name`, `numbers`, `attachments.bill`, ...).
    #[serde(default)]
    pub fields: Vec<String>,
}

static SHIPPED: LazyLock<Vec<RejectionCode>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("rejection_codes.json")).expect("the shipped rejection codes are valid")
});

/// The shipped catalogue.
pub fn shipped() -> &'static [RejectionCode] {
    &SHIPPED
}

/// A code's shape: what a code may be spelt as (lowercase words joined by `_`, at most 64).
pub fn is_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The catalogue in effect: the shipped one with an authority's `rejection_codes` object
/// (code → changes) over it. Entries of another shape, or codes not spelt as codes, are
/// skipped: an operator's typo withdraws nothing and adds nothing.
pub fn in_effect(overrides: Option<&Map<String, Value>>) -> Vec<RejectionCode> {
    let mut codes: Vec<RejectionCode> = shipped().to_vec();
    let Some(overrides) = overrides else { return codes };
    for (code, change) in overrides {
        if !is_code(code) {
            continue;
        }
        let at = codes.iter().position(|c| &c.code == code);
        let withdrawn = change.is_null() || change.get("disabled") == Some(&Value::Bool(true));
        match (at, withdrawn) {
            (Some(i), true) => {
                codes.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                if let Some(changed) = merged(&codes[i], change) {
                    codes[i] = changed;
                }
            }
            (None, false) => {
                let blank = RejectionCode {
                    code: code.clone(),
                    title: String::new(),
                    meaning: String::new(),
                    fix: String::new(),
                    fields: vec![],
                };
                if let Some(added) = merged(&blank, change).filter(|c| !c.title.is_empty()) {
                    codes.push(added);
                }
            }
        }
    }
    codes
}

/// `base` with the keys of `change` it knows over it (the code itself stays).
fn merged(base: &RejectionCode, change: &Value) -> Option<RejectionCode> {
    let change = change.as_object()?;
    let mut v = serde_json::to_value(base).ok()?;
    for key in ["title", "meaning", "fix", "fields"] {
        if let Some(x) = change.get(key) {
            v[key] = x.clone();
        }
    }
    serde_json::from_value(v).ok()
}

/// The entry of `code` in a catalogue.
pub fn find<'a>(catalogue: &'a [RejectionCode], code: &str) -> Option<&'a RejectionCode> {
    catalogue.iter().find(|c| c.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_shipped_catalogue_reads_and_its_codes_are_codes() {
        assert!(shipped().len() >= 10);
        assert!(shipped().iter().all(|c| is_code(&c.code) && !c.title.is_empty() && !c.fix.is_empty()));
        assert!(find(shipped(), "wrong_pin").is_some_and(|c| c.fields == ["bill.pin"]));
    }

    #[test]
    fn an_authority_changes_adds_and_withdraws() {
        let o = json!({
            "wrong_pin": {"fix": "Call us"},
            "wrong_btn": null,
            "partial_port_not_allowed": {"disabled": true},
            "our_own": {"title": "Ours", "fix": "Do it", "fields": ["name"]},
            "no_title": {"fix": "x"},
            "Bad Code": {"title": "x"},
            "wrong_account_number": {"fields": "not a list"},
        });
        let codes = in_effect(o.as_object());
        let pin = find(&codes, "wrong_pin").unwrap();
        assert_eq!((pin.fix.as_str(), pin.title.as_str()), ("Call us", "Wrong PIN or passcode"));
        assert!(find(&codes, "wrong_btn").is_none() && find(&codes, "partial_port_not_allowed").is_none());
        assert_eq!(find(&codes, "our_own").unwrap().fields, ["name"]);
        assert!(find(&codes, "no_title").is_none() && find(&codes, "Bad Code").is_none());
        assert_eq!(find(&codes, "wrong_account_number").unwrap().fields, ["bill.account_number"]);
        assert_eq!(codes.len(), shipped().len() - 1);
    }
}
