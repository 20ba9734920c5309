//! Port request comments (Kazoo 4.3's `cb_port_requests`): which are new, who may write
//! private ones, who may read them, and what the server fills in.

use super::documents::fields::{Flag, Slot};
use super::documents::port_request::Comment;

impl Comment {
    /// `kzd_comment:is_private_legacy`: the legacy `superduper_comment` wins when present.
    pub fn is_private(&self) -> bool {
        match &self.superduper_comment {
            Slot::Absent => self.is_private.is_true(),
            legacy => legacy.is_true(),
        }
    }

    pub fn action_required(&self) -> bool {
        self.action_required.is_true()
    }

    /// When it was written (Gregorian seconds; 0 when unknown, so it sorts first).
    pub fn at(&self) -> i64 {
        self.timestamp.copied().unwrap_or(0)
    }

    /// `kzd_comment:migrate_to_is_private`: `superduper_comment` becomes `is_private`.
    pub fn migrated(mut self) -> Self {
        if !self.superduper_comment.is_absent() {
            let private = self.superduper_comment.is_true();
            self.superduper_comment.clear();
            self.is_private.set(Flag::Bool(private));
        }
        self
    }
}

/// New comments: those newer than the newest stored one (all of them if none is stored).
pub fn new_comments(requested: &[Comment], stored: &[Comment]) -> Vec<Comment> {
    match stored.iter().map(Comment::at).max() {
        None => requested.to_vec(),
        Some(newest) => requested.iter().filter(|c| c.at() > newest).cloned().collect(),
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum PrivacyViolation {
    /// A non-authority tried a private or action-required comment (403).
    NotAllowed,
    /// The authority set `action_required` on a private comment (400 `comments.rejected`).
    PrivateActionRequired,
}

pub fn check_privacy(new: &[Comment], is_authority: bool) -> Result<(), PrivacyViolation> {
    if is_authority {
        if new.iter().any(|c| c.is_private() && c.action_required()) {
            return Err(PrivacyViolation::PrivateActionRequired);
        }
    } else if new.iter().any(|c| c.is_private() || c.action_required()) {
        return Err(PrivacyViolation::NotAllowed);
    }
    Ok(())
}

/// Who wrote a comment, as the server knows it.
#[derive(Debug, Clone, Default)]
pub struct Commenter {
    pub account_id: String,
    pub user_id: Option<String>,
    /// The user's full name when their user document was found; `None` keeps the given author.
    pub full_name: Option<Option<String>>,
}

/// `update_comment`: normalise `is_private`, drop the legacy key, set account, user, author.
pub fn enrich(comment: &Comment, by: &Commenter) -> Comment {
    let private = comment.is_private();
    let mut c = comment.clone();
    c.superduper_comment.clear();
    c.is_private.set(Flag::Bool(private));
    c.account_id.set(by.account_id.clone());
    if let Some(user) = &by.user_id {
        c.user_id.set(user.clone());
    }
    match &by.full_name {
        Some(Some(name)) => c.author.set(name.clone()),
        Some(None) => c.author.clear(),
        None => {}
    }
    c
}

/// `cb_comments:sort`: stable, ascending by timestamp.
pub fn sort(comments: &mut [Comment]) {
    comments.sort_by_key(Comment::at);
}

/// What a caller may see: everything for the authority, public comments for everyone else.
pub fn visible<'a>(comments: impl IntoIterator<Item = &'a Comment>, show_private: bool) -> Vec<Comment> {
    comments.into_iter().cloned().map(Comment::migrated).filter(|c| show_private || !c.is_private()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(ts: i64, private: bool) -> Comment {
        serde_json::from_value(json!({"timestamp": ts, "content": "x", "author": "a", "is_private": private})).unwrap()
    }

    fn of(v: serde_json::Value) -> Comment {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn newer_comments_are_new() {
        let stored = vec![c(10, false), c(20, true)];
        let requested = vec![c(10, false), c(15, false), c(30, false)];
        assert_eq!(new_comments(&requested, &stored), vec![c(30, false)]);
        assert_eq!(new_comments(&requested, &[]).len(), 3);
    }

    #[test]
    fn legacy_flag_wins() {
        assert!(of(json!({"superduper_comment": true, "is_private": false})).is_private());
        assert!(!of(json!({"superduper_comment": false, "is_private": true})).is_private());
        assert!(of(json!({"is_private": "true"})).is_private(), "kz_term:is_true");
        let migrated = of(json!({"superduper_comment": true})).migrated();
        assert_eq!(serde_json::to_value(migrated).unwrap(), json!({"is_private": true}));
    }

    #[test]
    fn privacy_rules() {
        let private = of(json!({"is_private": true}));
        let action = of(json!({"action_required": true}));
        let both = of(json!({"is_private": true, "action_required": true}));
        assert_eq!(check_privacy(std::slice::from_ref(&private), false), Err(PrivacyViolation::NotAllowed));
        assert_eq!(check_privacy(std::slice::from_ref(&action), false), Err(PrivacyViolation::NotAllowed));
        assert_eq!(check_privacy(&[private, action], true), Ok(()));
        assert_eq!(check_privacy(&[both], true), Err(PrivacyViolation::PrivateActionRequired));
        assert_eq!(check_privacy(&[of(json!({}))], false), Ok(()));
    }

    #[test]
    fn enrichment() {
        let by =
            Commenter { account_id: "acc".into(), user_id: Some("u".into()), full_name: Some(Some("Jo Do".into())) };
        let out = enrich(&of(json!({"content": "x", "author": "me", "superduper_comment": true, "timestamp": 1})), &by);
        assert_eq!(
            serde_json::to_value(out).unwrap(),
            json!({"content": "x", "author": "Jo Do", "is_private": true, "account_id": "acc", "user_id": "u", "timestamp": 1})
        );
    }

    #[test]
    fn visibility_and_sort() {
        let mut all = vec![c(3, false), c(1, true), c(2, false)];
        sort(&mut all);
        assert_eq!(all.iter().map(Comment::at).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(visible(&all, false).len(), 2);
        assert_eq!(visible(&all, true).len(), 3);
    }
}
