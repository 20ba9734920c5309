//! Port request documents this instance read lately, kept only so that CouchDB need not send
//! (and the service need not parse) a document that has not changed: every read still asks
//! CouchDB, with `If-None-Match` on the cached revision, and uses the copy only when CouchDB
//! answers 304, i.e. confirms it is the current revision. The cache never decides an answer.

use crate::domain::documents::port_request::PortRequest;
use moka::sync::Cache;
use std::sync::Arc;

#[derive(Clone)]
pub struct DocCache {
    docs: Option<Cache<String, Arc<PortRequest>>>,
}

impl DocCache {
    /// At most `capacity` documents; 0 turns it off.
    pub fn new(capacity: u64) -> Self {
        Self { docs: (capacity > 0).then(|| Cache::builder().max_capacity(capacity).build()) }
    }

    /// The copy to ask CouchDB about.
    pub fn get(&self, id: &str) -> Option<Arc<PortRequest>> {
        self.docs.as_ref()?.get(id)
    }

    /// Keeps a document as CouchDB just gave it (or just saved it).
    pub fn keep(&self, doc: Arc<PortRequest>) {
        if let Some(docs) = &self.docs {
            docs.insert(doc.id.to_string(), doc);
        }
    }

    pub fn forget(&self, id: &str) {
        if let Some(docs) = &self.docs {
            docs.invalidate(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: serde_json::Value) -> Arc<PortRequest> {
        Arc::new(PortRequest::from_stored(v).unwrap())
    }

    #[test]
    fn keeps_and_forgets() {
        let c = DocCache::new(10);
        c.keep(doc(json!({"_id": "a", "_rev": "1-x"})));
        assert_eq!(c.get("a").unwrap().rev(), Some("1-x"));
        c.forget("a");
        assert!(c.get("a").is_none());
        let off = DocCache::new(0);
        off.keep(doc(json!({"_id": "a"})));
        assert!(off.get("a").is_none());
    }
}
