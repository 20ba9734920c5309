//! The databases and design documents the service needs, kept as JSON under `couchdb_views/`.
//!
//! `_design/port_requests` is Kazoo's: created only when missing, never changed, so a Kazoo
//! install keeps its own. `_design/kazoo_port_requests` (in `port_requests`) and
//! `_design/deliveries` (in the service's database) are ours: brought up to date when they
//! differ from the shipped files.

use super::couch::design;
use super::couch::{Couch, StoreResult};
use super::dbs;
use serde_json::Value;

/// Kazoo's design document of `port_requests`.
pub const KAZOO_DDOC: &str = "port_requests";
/// Ours, beside it.
pub const OWN_DDOC: &str = "kazoo_port_requests";
/// Ours, for the port authority's desk (`domain::desk`).
pub const DESK_DDOC: &str = "kazoo_port_requests_desk";
/// Ours, in the service's database.
pub const SERVICE_DDOC: &str = "deliveries";

const KAZOO_VIEWS: &str = include_str!("../../couchdb_views/port_requests.json");
const OWN_VIEWS: &str = include_str!("../../couchdb_views/kazoo_port_requests.json");
const SERVICE_VIEWS: &str = include_str!("../../couchdb_views/deliveries.json");
const DESK_VIEWS: &str = include_str!("../../couchdb_views/kazoo_port_requests_desk.json");

fn parse(raw: &str) -> Value {
    serde_json::from_str(raw).expect("couchdb_views/*.json are valid JSON (checked by unit test)")
}

pub fn kazoo_design_doc() -> Value {
    parse(KAZOO_VIEWS)
}

pub fn own_design_doc() -> Value {
    parse(OWN_VIEWS)
}

pub fn desk_design_doc() -> Value {
    parse(DESK_VIEWS)
}

pub fn service_design_doc() -> Value {
    parse(SERVICE_VIEWS)
}

/// Makes sure `port_requests` exists with both design documents.
pub async fn ensure_port_requests_db(couch: &Couch) -> StoreResult<()> {
    couch.ensure_db(dbs::PORT_REQUESTS).await?;
    design::install_if_missing(couch, dbs::PORT_REQUESTS, &kazoo_design_doc()).await?;
    design::install_or_update(couch, dbs::PORT_REQUESTS, &own_design_doc()).await?;
    design::install_or_update(couch, dbs::PORT_REQUESTS, &desk_design_doc()).await?;
    Ok(())
}

/// Makes sure the service's database exists with its design document; drops the views of the
/// outbox of earlier versions.
pub async fn ensure_service_db(couch: &Couch) -> StoreResult<()> {
    couch.ensure_db(dbs::SERVICE).await?;
    design::install_or_update(couch, dbs::SERVICE, &service_design_doc()).await?;
    design::remove(couch, dbs::SERVICE, "outbox").await?;
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
    fn own_design_docs_are_separate() {
        let doc = own_design_doc();
        assert_eq!(doc["_id"], "_design/kazoo_port_requests");
        assert!(doc["views"]["open_numbers"]["map"].is_string());
        assert_eq!(service_design_doc()["_id"], "_design/deliveries");
        let desk = desk_design_doc();
        assert_eq!(desk["_id"], "_design/kazoo_port_requests_desk");
        for v in ["attention", "by_state", "report_by_carrier", "report_rejections"] {
            assert!(desk["views"][v]["map"].as_str().unwrap().starts_with("function"), "{v}");
            assert!(doc["views"].get(v).is_none(), "{v} is in the desk's design document only");
        }
    }
}
