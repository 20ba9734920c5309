//! Installing design documents: created when missing, or kept up to date. Installing twice
//! changes nothing.

use super::{Couch, StoreError, StoreResult, encode};
use reqwest::StatusCode;
use serde_json::Value;

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
