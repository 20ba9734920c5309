//! A port request CouchDB holds in conflicting revisions (written through different nodes at
//! once by a writer that does not check who won, such as Kazoo itself, or during a partition) is
//! resolved the same way by everyone: CouchDB's winner stands (its state, fields and
//! transitions), and what a losing revision adds that can be kept without choosing between the
//! writers, its comments and their events, is merged in. Every instance computes the same
//! document, so resolving twice makes one revision.

use super::comments;
use super::documents::fields::{List, Slot};
use super::documents::port_request::{Comment, PortRequest};
use super::events::{Event, What};

/// The winner with the losers' extra comments merged in, or `None` when they add nothing.
pub fn merge(winner: &PortRequest, losers: &[PortRequest]) -> Option<PortRequest> {
    let mut all: Vec<Comment> = winner.comments().cloned().collect();
    let mut events: Vec<Event> = Vec::new();
    let mut changed = false;
    for loser in losers {
        for c in loser.comments() {
            if all.contains(c) {
                continue;
            }
            all.push(c.clone());
            changed = true;
            // the comment's notifications come with it
            for e in loser.events() {
                let is_its = matches!(&e.what, What::Comment { comment } if comment == c);
                if is_its && !winner.events().chain(&events).any(|x| x.id == e.id) {
                    events.push(e.clone());
                }
            }
        }
    }
    if !changed {
        return None;
    }
    comments::sort(&mut all);
    let mut doc = winner.clone().without_read_extras();
    // the winner's comments that could not be read stay, after the others
    let kept: Vec<Slot<Comment>> =
        winner.comments.get().map(|l| l.kept().cloned().map(Slot::Kept).collect()).unwrap_or_default();
    let mut list: List<Comment> = all.into_iter().collect();
    list.0.extend(kept);
    doc.comments = Slot::Set(list);
    if !events.is_empty() {
        // the winner's events, readable or not, then the losers' comments'
        let mut list = winner.events.get().cloned().unwrap_or_default();
        list.0.extend(events.into_iter().map(Slot::Set));
        doc.events = Slot::Set(list);
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
        let winner = PortRequest::from_stored(json!({"_id": "p", "_rev": "3-b", "name": "winner",
            "comments": [base.clone(), {"content": "ours", "timestamp": 2}],
            "_revisions": {"start": 3, "ids": ["b"]}}))
        .unwrap();
        let loser = PortRequest::stored_with(
            json!({"_id": "p", "_rev": "3-a", "name": "loser", "comments": [base, theirs.clone()]}),
            json!({"events": [{"id": "e9", "queue": "q", "at": 3, "type": "comment", "comment": theirs}]}),
        );
        let merged = merge(&winner, std::slice::from_ref(&loser)).unwrap();
        assert_eq!(merged.name.as_deref(), Some("winner"), "the winner's fields stand");
        let contents: Vec<&str> = merged.comments().map(|c| c.content.as_deref().unwrap()).collect();
        assert_eq!(contents, ["base", "ours", "theirs"]);
        assert_eq!(merged.events().next().unwrap().id, "e9");
        assert!(merged.rest.get("_revisions").is_none());
        assert_eq!(merge(&merged, &[loser]), None, "nothing more to merge");
    }
}
