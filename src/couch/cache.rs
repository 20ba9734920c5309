//! Port request documents this instance read lately, kept only so that CouchDB need not send
//! (and the service need not parse) a document that has not changed: every read still asks
//! CouchDB, with `If-None-Match` on the cached revision, and uses the copy only when CouchDB
//! answers 304, i.e. confirms it is the current revision. The cache never decides an answer.

use moka::sync::Cache;
use serde_json::Value;
use std::sync::Arc;

#[derive(Clone)]
pub struct DocCache {
    docs: Option<Cache<String, Arc<Value>>>,
}

impl DocCache {
    /// At most `capacity` documents; 0 turns it off.
    pub fn new(capacity: u64) -> Self {
        Self { docs: (capacity > 0).then(|| Cache::builder().max_capacity(capacity).build()) }
    }

    /// The copy to ask CouchDB about.
    pub fn get(&self, id: &str) -> Option<Arc<Value>> {
        self.docs.as_ref()?.get(id)
    }

    /// Keeps a document as CouchDB just gave it (or just saved it).
    pub fn keep(&self, doc: Arc<Value>) {
        if let (Some(docs), Some(id)) = (&self.docs, doc.get("_id").and_then(Value::as_str)) {
            docs.insert(id.to_owned(), doc.clone());
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

    #[test]
    fn keeps_and_forgets() {
        let c = DocCache::new(10);
        c.keep(Arc::new(json!({"_id": "a", "_rev": "1-x"})));
        assert_eq!(c.get("a").unwrap()["_rev"], "1-x");
        c.forget("a");
        assert!(c.get("a").is_none());
        let off = DocCache::new(0);
        off.keep(Arc::new(json!({"_id": "a"})));
        assert!(off.get("a").is_none());
    }
}
