//! The port authority walk of `kzd_port_requests:find_port_authority` (4.3), one step at a
//! time, so the walk itself is plain logic and the caller does the reading.

use super::documents::account::Whitelabel;
use super::ids::AccountId;
use serde_json::Value;

/// `kzd_whitelabel:port_authority`: an account id in any of its spellings; a one-element
/// array is accepted (Kazoo joins arrays), anything else counts as unset.
pub fn whitelabel_authority(whitelabel: &Whitelabel) -> Option<AccountId> {
    match whitelabel.port.get()?.authority.get()? {
        Value::String(s) => AccountId::from_any(s),
        Value::Array(items) if items.len() == 1 => items[0].as_str().and_then(AccountId::from_any),
        _ => None,
    }
}

/// What the walk knows about the account it is looking at.
pub struct Visit<'a> {
    pub master: &'a AccountId,
    /// The account whose request it is.
    pub submitter: &'a AccountId,
    pub current: &'a AccountId,
    /// `port.authority` of `current`'s whitelabel document.
    pub whitelabel: Option<AccountId>,
    /// The authoritative parent: master for resellers, else the last of `pvt_tree`.
    pub parent: Option<AccountId>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Found(AccountId),
    Climb(AccountId),
}

pub fn step(v: Visit<'_>) -> Step {
    if v.current == v.master {
        return Step::Found(v.master.clone());
    }
    let own_self_reference = v.whitelabel.as_ref() == Some(v.current) && v.current == v.submitter;
    match v.whitelabel {
        Some(authority) if !own_self_reference => Step::Found(authority),
        _ => match v.parent {
            Some(parent) if &parent != v.current => Step::Climb(parent),
            _ => Step::Found(v.master.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(n: u8) -> AccountId {
        AccountId::parse(&format!("{:032x}", n)).unwrap()
    }

    fn wl(v: serde_json::Value) -> Whitelabel {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn reads_whitelabel_spellings() {
        let a = id(7);
        assert_eq!(whitelabel_authority(&wl(json!({"port": {"authority": a.as_str()}}))), Some(a.clone()));
        assert_eq!(whitelabel_authority(&wl(json!({"port": {"authority": [a.db_name()]}}))), Some(a.clone()));
        assert_eq!(whitelabel_authority(&wl(json!({"port": {"authority": [a.as_str(), a.as_str()]}}))), None);
        assert_eq!(whitelabel_authority(&wl(json!({"port": {"authority": "nope"}}))), None);
        assert_eq!(whitelabel_authority(&wl(json!({}))), None);
    }

    #[test]
    fn kazoo_scenario() {
        let (master, authority, sub01) = (id(1), id(2), id(3));
        // "authority" names itself: its own requests go to master...
        let s = step(Visit {
            master: &master,
            submitter: &authority,
            current: &authority,
            whitelabel: Some(authority.clone()),
            parent: Some(master.clone()),
        });
        assert_eq!(s, Step::Climb(master.clone()));
        assert_eq!(
            step(Visit { master: &master, submitter: &authority, current: &master, whitelabel: None, parent: None }),
            Step::Found(master.clone())
        );
        // ...and its child's requests go to it.
        let s = step(Visit {
            master: &master,
            submitter: &sub01,
            current: &sub01,
            whitelabel: None,
            parent: Some(authority.clone()),
        });
        assert_eq!(s, Step::Climb(authority.clone()));
        let s = step(Visit {
            master: &master,
            submitter: &sub01,
            current: &authority,
            whitelabel: Some(authority.clone()),
            parent: Some(master.clone()),
        });
        assert_eq!(s, Step::Found(authority));
    }

    #[test]
    fn no_parent_means_master() {
        let (master, a) = (id(1), id(4));
        assert_eq!(
            step(Visit { master: &master, submitter: &a, current: &a, whitelabel: None, parent: None }),
            Step::Found(master.clone())
        );
        assert_eq!(
            step(Visit { master: &master, submitter: &a, current: &a, whitelabel: None, parent: Some(a.clone()) }),
            Step::Found(master)
        );
    }
}
