//! CouchDB: the generic client and its cluster-safe writes (`couch`), the databases and design
//! documents (`views`), and the repositories the application reads and writes through: port
//! requests (`port_requests`, with `turns`, `cache` and `queue`) and the Kazoo documents around
//! them (`directory`).

pub mod cache;
pub mod couch;
pub mod directory;
pub mod port_requests;
pub mod queue;
pub mod turns;
pub mod views;

pub use couch::{Couch, Document, StoreError, StoreResult, ViewQuery, ViewRow};

/// Database names as Kazoo lays them out, and the service's own.
pub mod dbs {
    pub const PORT_REQUESTS: &str = "port_requests";
    pub const ACCOUNTS: &str = "accounts";
    pub const SYSTEM_CONFIG: &str = "system_config";
    pub const SYSTEM_AUTH: &str = "system_auth";
    /// Our own database (number claims, delivery records, ...): Kazoo never touches it.
    pub const SERVICE: &str = "kazoo_port_requests";
}

use crate::domain::documents::account::{AccountDoc, ConfigDoc, SystemKeyDoc, UserDoc};
use crate::domain::documents::fields::Slot;
use crate::domain::documents::number::NumberDoc;
use crate::domain::documents::service::{
    CheckpointDoc, ClaimDoc, CompletionJournal, DeliveryDoc, IdempotencyDoc, MarkerDoc, TurnDoc,
};

/// The typed documents the service writes: their id is always there (`id`), or a slot that a
/// document about to be written holds (`slot id`).
macro_rules! document {
    (id: $($t:ty),*) => {$(
        impl Document for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn set_rev(&mut self, rev: String) {
                self.rev = Slot::Set(rev);
            }
        }
    )*};
    (slot id: $($t:ty),*) => {$(
        impl Document for $t {
            fn id(&self) -> &str {
                self.id.as_deref().unwrap_or_default()
            }
            fn set_rev(&mut self, rev: String) {
                self.rev = Slot::Set(rev);
            }
        }
    )*};
}

document!(id: ClaimDoc, DeliveryDoc, CheckpointDoc, CompletionJournal, IdempotencyDoc, MarkerDoc, TurnDoc, NumberDoc, SystemKeyDoc);
document!(slot id: AccountDoc, UserDoc, ConfigDoc);
