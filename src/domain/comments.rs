//! Port request comments (`kazoo-4.3-port-features.md` §2): which are new, who may write
//! private ones, who may read them, and what the server fills in.

use serde_json::{Value, json};

fn is_true(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// `kzd_comment:is_private_legacy`: the legacy `superduper_comment` wins when present.
pub fn is_private(comment: &Value) -> bool {
    match comment.get("superduper_comment").filter(|v| !v.is_null()) {
        Some(legacy) => is_true(Some(legacy)),
        None => is_true(comment.get("is_private")),
    }
}

pub fn action_required(comment: &Value) -> bool {
    is_true(comment.get("action_required"))
}

pub fn timestamp(comment: &Value) -> i64 {
    comment.get("timestamp").and_then(Value::as_i64).unwrap_or(0)
}

/// `kzd_comment:migrate_to_is_private`: `superduper_comment` becomes `is_private`.
pub fn migrate(mut comment: Value) -> Value {
    if let Some(obj) = comment.as_object_mut()
        && let Some(legacy) = obj.remove("superduper_comment")
    {
        obj.insert("is_private".into(), json!(is_true(Some(&legacy))));
    }
    comment
}

/// The comments of a document (or request body), as a list.
pub fn of(doc: &Value) -> Vec<Value> {
    doc.get("comments").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// New comments: those newer than the newest stored one (all of them if none is stored).
pub fn new_comments(requested: &[Value], stored: &[Value]) -> Vec<Value> {
    match stored.iter().map(timestamp).max() {
        None => requested.to_vec(),
        Some(newest) => requested.iter().filter(|c| timestamp(c) > newest).cloned().collect(),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum PrivacyViolation {
    /// A non-authority tried a private or action-required comment (403).
    NotAllowed,
    /// The authority set `action_required` on a private comment (400 `comments.rejected`).
    PrivateActionRequired,
}

pub fn check_privacy(new: &[Value], is_authority: bool) -> Result<(), PrivacyViolation> {
    if is_authority {
        if new.iter().any(|c| is_private(c) && action_required(c)) {
            return Err(PrivacyViolation::PrivateActionRequired);
        }
    } else if new.iter().any(|c| is_private(c) || action_required(c)) {
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
pub fn enrich(comment: &Value, by: &Commenter) -> Value {
    let private = is_private(comment);
    let mut c = comment.clone();
    if let Some(obj) = c.as_object_mut() {
        obj.remove("superduper_comment");
        obj.insert("is_private".into(), json!(private));
        obj.insert("account_id".into(), json!(by.account_id));
        if let Some(user) = &by.user_id {
            obj.insert("user_id".into(), json!(user));
        }
        match &by.full_name {
            Some(Some(name)) => {
                obj.insert("author".into(), json!(name));
            }
            Some(None) => {
                obj.remove("author");
            }
            None => {}
        }
    }
    c
}

/// `cb_comments:sort`: stable, ascending by timestamp.
pub fn sort(comments: &mut [Value]) {
    comments.sort_by_key(timestamp);
}

/// What a caller may see: everything for the authority, public comments for everyone else.
pub fn visible(comments: Vec<Value>, show_private: bool) -> Vec<Value> {
    comments.into_iter().map(migrate).filter(|c| show_private || !is_private(c)).collect()
}

/// Applies `visible` to the `comments` of a request view, in place.
pub fn filter_view(view: &mut Value, show_private: bool) {
    if let Some(list) = view.get("comments").and_then(Value::as_array).cloned() {
        view["comments"] = Value::Array(visible(list, show_private));
    }
}

/// `kzd_users:full_name`: "First Last", or whichever exists.
pub fn full_name(user: &Value) -> Option<String> {
    let first = user.get("first_name").and_then(Value::as_str).filter(|s| !s.is_empty());
    let last = user.get("last_name").and_then(Value::as_str).filter(|s| !s.is_empty());
    match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(x), None) | (None, Some(x)) => Some(x.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(ts: i64, private: bool) -> Value {
        json!({"timestamp": ts, "content": "x", "author": "a", "is_private": private})
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
        assert!(is_private(&json!({"superduper_comment": true, "is_private": false})));
        assert!(!is_private(&json!({"superduper_comment": false, "is_private": true})));
        assert_eq!(migrate(json!({"superduper_comment": true}))["is_private"], true);
    }

    #[test]
    fn privacy_rules() {
        let private = json!({"is_private": true});
        let action = json!({"action_required": true});
        let both = json!({"is_private": true, "action_required": true});
        assert_eq!(check_privacy(std::slice::from_ref(&private), false), Err(PrivacyViolation::NotAllowed));
        assert_eq!(check_privacy(std::slice::from_ref(&action), false), Err(PrivacyViolation::NotAllowed));
        assert_eq!(check_privacy(&[private, action], true), Ok(()));
        assert_eq!(check_privacy(&[both], true), Err(PrivacyViolation::PrivateActionRequired));
        assert_eq!(check_privacy(&[json!({})], false), Ok(()));
    }

    #[test]
    fn enrichment() {
        let by =
            Commenter { account_id: "acc".into(), user_id: Some("u".into()), full_name: Some(Some("Jo Do".into())) };
        let out = enrich(&json!({"content": "x", "author": "me", "superduper_comment": true, "timestamp": 1}), &by);
        assert_eq!(
            out,
            json!({"content": "x", "author": "Jo Do", "is_private": true, "account_id": "acc", "user_id": "u", "timestamp": 1})
        );
    }

    #[test]
    fn visibility_and_sort() {
        let mut all = vec![c(3, false), c(1, true), c(2, false)];
        sort(&mut all);
        assert_eq!(all.iter().map(timestamp).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(visible(all.clone(), false).len(), 2);
        assert_eq!(visible(all, true).len(), 3);
    }

    #[test]
    fn names() {
        assert_eq!(full_name(&json!({"first_name": "A", "last_name": "B"})).as_deref(), Some("A B"));
        assert_eq!(full_name(&json!({"last_name": "B"})).as_deref(), Some("B"));
        assert_eq!(full_name(&json!({})), None);
    }
}
