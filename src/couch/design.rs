//! The design documents this service needs, kept as JSON under `couchdb_views/`.
//!
//! `_design/port_requests` is Kazoo's: created only when missing, never changed, so a Kazoo
//! install keeps its own. `_design/kazoo_port_requests` is ours: brought up to date when it
//! differs from the shipped file. Installing twice changes nothing.

use super::{Couch, StoreError, StoreResult, dbs, encode};
use reqwest::StatusCode;
use serde_json::Value;

pub const KAZOO_DDOC: &str = "port_requests";
pub const OWN_DDOC: &str = "kazoo_port_requests";

const KAZOO_VIEWS: &str = include_str!("../../couchdb_views/port_requests.json");
const OWN_VIEWS: &str = include_str!("../../couchdb_views/kazoo_port_requests.json");

fn parse(raw: &str) -> Value {
    serde_json::from_str(raw).expect("couchdb_views/*.json are valid JSON (checked by unit test)")
}

pub fn kazoo_design_doc() -> Value {
    parse(KAZOO_VIEWS)
}

pub fn own_design_doc() -> Value {
    parse(OWN_VIEWS)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    Created,
    Updated,
    Unchanged,
}

async fn read_design(couch: &Couch, db: &str, name: &str) -> StoreResult<Option<Value>> {
    let path = format!("/{}/_design/{}", encode(db), encode(name));
    let resp = couch.get_path(&path, &[]).await?;
    match resp.status() {
        StatusCode::NOT_FOUND => Ok(None),
        s if s.is_success() => Ok(Some(resp.json().await?)),
        s => Err(StoreError::Fault(format!("reading _design/{name}: {s}"))),
    }
}

async fn write_design(couch: &Couch, db: &str, doc: &Value) -> StoreResult<()> {
    match couch.save(db, &mut doc.clone()).await {
        // another instance installed it at the same moment: theirs is as good as ours
        Ok(_) | Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e),
    }
}

fn name_of(doc: &Value) -> &str {
    doc["_id"].as_str().and_then(|id| id.strip_prefix("_design/")).unwrap_or_default()
}

/// Creates the design doc if missing; leaves any existing one alone.
pub async fn install_if_missing(couch: &Couch, db: &str, doc: &Value) -> StoreResult<Installed> {
    let name = name_of(doc);
    if read_design(couch, db, name).await?.is_some() {
        return Ok(Installed::Unchanged);
    }
    write_design(couch, db, doc).await?;
    Ok(Installed::Created)
}

/// Creates the design doc, or rewrites it when its views differ from `doc`'s.
pub async fn install_or_update(couch: &Couch, db: &str, doc: &Value) -> StoreResult<Installed> {
    let name = name_of(doc);
    match read_design(couch, db, name).await? {
        None => {
            write_design(couch, db, doc).await?;
            Ok(Installed::Created)
        }
        Some(existing) if existing["views"] == doc["views"] && existing["language"] == doc["language"] => {
            Ok(Installed::Unchanged)
        }
        Some(existing) => {
            let mut updated = doc.clone();
            updated["_rev"] = existing["_rev"].clone();
            write_design(couch, db, &updated).await?;
            Ok(Installed::Updated)
        }
    }
}

/// Removes a design document of an earlier version, if it is there.
pub async fn remove(couch: &Couch, db: &str, name: &str) -> StoreResult<()> {
    if let Some(existing) = read_design(couch, db, name).await?
        && let Some(rev) = existing["_rev"].as_str()
    {
        match couch.delete(db, &format!("_design/{name}"), rev).await {
            Ok(_) | Err(StoreError::Conflict) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes sure `port_requests` exists with both design documents.
pub async fn ensure_port_requests_db(couch: &Couch) -> StoreResult<()> {
    couch.ensure_db(dbs::PORT_REQUESTS).await?;
    install_if_missing(couch, dbs::PORT_REQUESTS, &kazoo_design_doc()).await?;
    install_or_update(couch, dbs::PORT_REQUESTS, &own_design_doc()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAZOO_VIEW_NAMES: [&str; 11] = [
        "active_port_request",
        "agent_listing_by_state",
        "all_port_in_numbers",
        "crossbar_listing",
        "listing_by_descendant_state",
        "listing_by_modified",
        "listing_by_number",
        "listing_by_state",
        "listing_submitted",
        "phone_numbers_listing",
        "port_in_numbers",
    ];

    #[test]
    fn kazoo_design_doc_has_the_eleven_views() {
        let doc = kazoo_design_doc();
        assert_eq!(doc["_id"], "_design/port_requests");
        let views = doc["views"].as_object().unwrap();
        let mut names: Vec<&str> = views.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, KAZOO_VIEW_NAMES);
        for v in views.values() {
            assert!(v["map"].as_str().unwrap().starts_with("function"));
        }
    }

    #[test]
    fn own_design_doc_is_separate() {
        let doc = own_design_doc();
        assert_eq!(doc["_id"], "_design/kazoo_port_requests");
        assert!(doc["views"]["open_numbers"]["map"].is_string());
    }
}
