//! A phone number document of Kazoo's numbers databases (`numbers/+1415`, id = the number), and
//! its copy in the owner's account database, as a completion writes them
//! (Kazoo 4.3's `knm_port_request`).

use super::fields::{Slot, stored};
use crate::domain::ids::AccountId;
use crate::domain::phone_number::PhoneNumber;
use serde_json::{Map, Value, json};

stored! {
    pub struct NumberDoc ["_id" id: String] {
        "_rev" rev: String, "pvt_type" doc_type: String,
        /// `pvt_number_state` is its older name.
        "pvt_state" state: String, "pvt_number_state" number_state: String,
        "pvt_assigned_to" assigned_to: String, "pvt_used_by" used_by: String,
        "pvt_ported_in" ported_in: bool, "pvt_module_name" module_name: String,
        "pvt_db_name" db_name: String, "pvt_features" features: Value,
        "pvt_created" created: i64, "pvt_modified" modified: i64,
        /// The port request it came in with.
        "port_id" port_id: String,
    }
}

impl NumberDoc {
    /// In service for `owner`, ported in by request `port_id` through `module`.
    pub fn ported_in(number: &PhoneNumber, owner: &AccountId, port_id: &str, module: &str, now: i64) -> Self {
        NumberDoc {
            id: number.to_string(),
            rev: Slot::Absent,
            doc_type: Slot::Set("number".into()),
            state: Slot::Set("in_service".into()),
            number_state: Slot::Absent,
            assigned_to: Slot::Set(owner.to_string()),
            used_by: Slot::Absent,
            ported_in: Slot::Set(true),
            module_name: Slot::Set(module.to_owned()),
            db_name: Slot::Set(crate::domain::ids::encode_db_name(&number.db_name())),
            features: Slot::Set(json!({ "local": {} })),
            created: Slot::Set(now),
            modified: Slot::Set(now),
            port_id: Slot::Set(port_id.to_owned()),
            rest: Map::new(),
        }
    }

    /// Assigned to an account (a number in service somewhere)?
    pub fn is_assigned(&self) -> bool {
        self.assigned_to.text().is_some()
    }

    /// Written for request `port_id` of `owner` (an earlier attempt of the same completion)?
    pub fn is_ported_by(&self, owner: &AccountId, port_id: &str) -> bool {
        self.assigned_to.as_deref() == Some(owner.as_str())
            && self.port_id.as_deref() == Some(port_id)
            && self.state.as_deref() == Some("in_service")
    }

    /// May a port in take it over? Kazoo accepts existing numbers only when aging, available or
    /// being ported in, and not someone else's.
    pub fn is_reusable_by(&self, owner: &AccountId) -> bool {
        let state = self.state.as_deref().or(self.number_state.as_deref());
        let assigned = self.assigned_to.text();
        matches!(state, Some("aging" | "available" | "port_in")) && assigned.is_none_or(|a| a == owner.as_str())
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a number document serialises")
    }
}
