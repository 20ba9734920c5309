//! Is a number free to port? Not on another open request anywhere in the system, and not
//! assigned to an account in the numbers databases. Every number is checked and each error is
//! reported under the number as the client wrote it, with Kazoo's messages.

use crate::couch::{ViewQuery, dbs, design};
use crate::domain::phone_number::numbers_db_name;
use crate::error::{ApiError, ValidationErrors, dotted_path};
use crate::state::AppState;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const ON_A_REQUEST: &str = "Number is on a port request already: ";
pub const OTHER_ACCOUNT: &str = "Number is being ported for a different account";
pub const MULTIPLE: &str = "Number is currently on multiple port requests. Contact a system admin to rectify";
pub const EXISTS: &str = "Number exists on the system already";

/// A number as the client wrote it, and its E.164 form.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub raw: String,
    pub e164: String,
}

fn error(errors: &mut ValidationErrors, raw: &str, message: String) {
    errors.add(&dotted_path(&[raw]), "type", json!({ "message": message, "cause": raw }));
}

/// The numbers among `e164s` that are assigned to an account in the numbers databases.
pub async fn assigned_numbers(state: &AppState, e164s: &[String]) -> Result<BTreeMap<String, Value>, ApiError> {
    let mut by_db: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in e164s {
        by_db.entry(numbers_db_name(n)).or_default().push(n.clone());
    }
    let reads = by_db.iter().map(|(db, ids)| state.couch.get_many(db, ids));
    let mut found = BTreeMap::new();
    for docs in futures_util::future::try_join_all(reads).await? {
        for doc in docs {
            let assigned = doc.get("pvt_assigned_to").and_then(Value::as_str).is_some_and(|a| !a.is_empty());
            if let (true, Some(id)) = (assigned, doc.get("_id").and_then(Value::as_str)) {
                found.insert(id.to_owned(), doc.clone());
            }
        }
    }
    Ok(found)
}

/// Checks every candidate for `account_id`'s request `port_id` (None when creating).
pub async fn check(
    state: &AppState,
    account_id: &str,
    port_id: Option<&str>,
    candidates: &[Candidate],
) -> Result<ValidationErrors, ApiError> {
    let mut errors = ValidationErrors::new();
    if candidates.is_empty() {
        return Ok(errors);
    }
    let query = ViewQuery { keys: candidates.iter().map(|c| json!(c.e164)).collect(), ..ViewQuery::default() };
    let all: Vec<String> = candidates.iter().map(|c| c.e164.clone()).collect();
    // both reads at once: the numbers databases are asked about every candidate, and their
    // answer is used only for the numbers no other request holds
    let (rows, assigned) = futures_util::future::try_join(
        async { Ok(state.couch.view(dbs::PORT_REQUESTS, design::OWN_DDOC, "open_numbers", &query).await?) },
        assigned_numbers(state, &all),
    )
    .await?;

    let mut free = Vec::new();
    for c in candidates {
        let others: Vec<_> =
            rows.iter().filter(|r| r.key.as_str() == Some(&c.e164) && r.id.as_deref() != port_id).collect();
        match others.as_slice() {
            [] => free.push(c),
            [one] => {
                let same_account = one.value.get("account_id").and_then(Value::as_str) == Some(account_id);
                let message = if same_account {
                    format!("{ON_A_REQUEST}{}", one.id.as_deref().unwrap_or_default())
                } else {
                    OTHER_ACCOUNT.to_owned()
                };
                error(&mut errors, &c.raw, message);
            }
            _ => error(&mut errors, &c.raw, MULTIPLE.to_owned()),
        }
    }

    for c in free {
        if assigned.contains_key(&c.e164) {
            error(&mut errors, &c.raw, EXISTS.to_owned());
        }
    }
    Ok(errors)
}
