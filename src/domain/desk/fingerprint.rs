//! What a resubmission changed since the rejection: a rejection records a fingerprint of the
//! request's public fields, and the next submission lists the fields whose hash differs. Each
//! hash is salted (a random salt per rejection, kept beside them) and cut to 16 bits: enough to
//! see a change (a change goes unseen once in 65,536), too little to tell an old value (a
//! former PIN, a former name) from the thousands of others with the same hash.

use super::rejection_codes::RejectionCode;
use crate::domain::documents::port_request::{PortRequest, Transition};
use crate::domain::port_request::last_transition_to;
use crate::domain::port_state::PortState;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Fields that are not the request's content: who and when, and what the service derives.
const NOT_CONTENT: [&str; 8] = ["comments", "id", "created", "updated", "uploads", "port_state", "sent", "_read_only"];

/// Field path → short hash of its value; `numbers` is one field (its set of numbers), an
/// attachment is `attachments.<name without extension>` by its digest.
pub fn of(doc: &PortRequest, salt: &str) -> BTreeMap<String, String> {
    let short = |v: &Value| short(salt, v);
    let mut out = BTreeMap::new();
    let public = doc.public_fields();
    for (k, v) in &public {
        if NOT_CONTENT.contains(&k.as_str()) || k == "numbers" || v.is_null() {
            continue;
        }
        leaves(k, v, &short, &mut out);
    }
    if let Some(numbers) = doc.numbers.get() {
        let list: Vec<String> = numbers.keys().map(|n| n.to_string()).collect();
        out.insert("numbers".into(), short(&Value::from(list)));
    }
    if let Some(files) = doc.attachments.get() {
        for (name, a) in files {
            let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
            let digest = a.digest.text().unwrap_or_default();
            out.insert(format!("attachments.{stem}"), short(&Value::from(digest)));
        }
    }
    out
}

fn leaves(path: &str, v: &Value, short: &dyn Fn(&Value) -> String, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, x) in o {
                leaves(&format!("{path}.{k}"), x, short, out);
            }
        }
        Value::Null => {}
        other => {
            out.insert(path.to_owned(), short(other));
        }
    }
}

fn short(salt: &str, v: &Value) -> String {
    hex::encode(&Sha256::digest(format!("{salt}{v}").as_bytes())[..2])
}

/// Where a fingerprint keeps its salt.
const SALT: &str = "_salt";

/// The fields added, removed or changed between a fingerprint and the request now, sorted.
pub fn changed(before: &Map<String, Value>, now: &BTreeMap<String, String>) -> Vec<String> {
    let before: Map<String, Value> =
        before.iter().filter(|(k, _)| *k != SALT).map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut out: Vec<String> = now
        .iter()
        .filter(|(k, h)| before.get(k.as_str()).and_then(Value::as_str) != Some(h.as_str()))
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(before.keys().filter(|k| !now.contains_key(k.as_str())).cloned());
    out.sort();
    out.dedup();
    out
}

/// Marks a move's transition entry: a rejection records its code (as the catalogue said it)
/// and the request's fingerprint; a submission after a rejection lists the fields changed
/// since. `doc` is the request as it is saved, before the entry is added.
pub fn mark(
    entry: &mut Transition,
    doc: &PortRequest,
    from: PortState,
    to: PortState,
    rejection: Option<RejectionCode>,
) {
    if to == PortState::Rejected {
        let salt = crate::domain::ids::new_doc_id();
        let mut print: Map<String, Value> = of(doc, &salt).into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        print.insert(SALT.into(), Value::String(salt));
        entry.fingerprint.set(print);
        if let Some(r) = rejection {
            entry.reason_code.set(r.code.clone());
            entry.rejection.set(r);
        }
    } else if to == PortState::Submitted && from == PortState::Rejected {
        let print = last_transition_to(doc, PortState::Rejected).and_then(|t| t.fingerprint.get());
        if let Some(print) = print {
            let salt = print.get(SALT).and_then(Value::as_str).unwrap_or_default();
            entry.changed_since_rejection.set(changed(print, &of(doc, salt)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(public: Value) -> PortRequest {
        PortRequest::stored_with(public, json!({"port_state": "rejected", "type": "port_request"}))
    }

    #[test]
    fn lists_what_changed_and_hides_the_values() {
        let before = doc(
            json!({"_id": "a", "name": "x", "bill": {"name": "Jon", "pin": "1234"}, "numbers": {"+12025550100": {}}}),
        );
        let after = doc(
            json!({"_id": "a", "name": "x", "bill": {"name": "John", "btn": "2025550100"}, "numbers": {"+12025550100": {"used_by": "x"}}}),
        );
        let print = of(&before, "salt");
        assert!(!serde_json::to_string(&print).unwrap().contains("1234"));
        assert!(print.values().all(|h| h.len() == 4), "16 bits: {print:?}");
        let stored = serde_json::to_value(&print).unwrap();
        assert_eq!(changed(stored.as_object().unwrap(), &of(&after, "salt")), ["bill.btn", "bill.name", "bill.pin"]);
        assert!(changed(stored.as_object().unwrap(), &print).is_empty());
        assert_ne!(of(&before, "other salt"), print, "the salt changes every hash");
    }
}
