//! A port request CouchDB holds in conflicting revisions (written through different nodes at
//! once by a writer that does not check who won, such as Kazoo itself, or during a partition) is
//! resolved the same way by everyone: CouchDB's winner stands (its state, fields and
//! transitions), and what a losing revision adds that can be kept without choosing between the
//! writers, its comments and their events, is merged in. Every instance computes the same
//! document, so resolving twice makes one revision.

use super::comments;
use super::events::{self, What};
use serde_json::Value;

/// The winner with the losers' extra comments merged in, or `None` when they add nothing.
pub fn merge(winner: &Value, losers: &[Value]) -> Option<Value> {
    let mut all = comments::of(winner);
    let mut evs: Vec<Value> = winner.get(events::KEY).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut changed = false;
    for loser in losers {
        for c in comments::of(loser) {
            if all.contains(&c) {
                continue;
            }
            all.push(c.clone());
            changed = true;
            // the comment's notifications come with it
            for e in events::of(loser) {
                let is_its = matches!(&e.what, What::Comment { comment } if *comment == c);
                if is_its && !evs.iter().any(|x| x["id"] == e.id.as_str()) {
                    evs.push(serde_json::json!(e));
                }
            }
        }
    }
    if !changed {
        return None;
    }
    comments::sort(&mut all);
    let mut doc = winner.clone();
    if let Some(o) = doc.as_object_mut() {
        o.remove("_conflicts");
        o.remove("_revisions");
        o.insert("comments".into(), Value::Array(all));
        if !evs.is_empty() {
            o.insert(events::KEY.into(), Value::Array(evs));
        }
    }
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_losers_comments_join_the_winner() {
        let base = json!({"content": "base", "timestamp": 1});
        let theirs = json!({"content": "theirs", "timestamp": 3});
        let winner = json!({"_id": "p", "_rev": "3-b", "name": "winner", "comments": [base.clone(), {"content": "ours", "timestamp": 2}],
                            "_revisions": {"start": 3, "ids": ["b"]}});
        let loser = json!({"_id": "p", "_rev": "3-a", "name": "loser", "comments": [base, theirs.clone()],
            "pvt_events": [{"id": "e9", "queue": "q", "at": 3, "type": "comment", "comment": theirs}]});
        let merged = merge(&winner, std::slice::from_ref(&loser)).unwrap();
        assert_eq!(merged["name"], "winner", "the winner's fields stand");
        let contents: Vec<&str> =
            merged["comments"].as_array().unwrap().iter().map(|c| c["content"].as_str().unwrap()).collect();
        assert_eq!(contents, ["base", "ours", "theirs"]);
        assert_eq!(merged["pvt_events"][0]["id"], "e9");
        assert!(merged.get("_revisions").is_none());
        assert_eq!(merge(&merged, &[loser]), None, "nothing more to merge");
    }
}
