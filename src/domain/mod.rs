//! The domain: the stored documents, typed (`documents`), and the rules over them, as plain
//! functions without I/O, unit-tested in place.

pub mod attachments;
pub mod authority;
pub mod bus;
pub mod charges;
pub mod claims;
pub mod comments;
pub mod conflicts;
pub mod customer;
pub mod deliveries;
pub mod desk;
pub mod documents;
pub mod events;
pub mod export;
pub mod fone;
pub mod idempotency;
pub mod ids;
pub mod import;
pub mod loa;
pub mod notifications;
pub mod number_progress;
pub mod paging;
pub mod phone_number;
pub mod port_request;
pub mod port_state;
pub mod schedule;
pub mod schema;
pub mod teletype;
pub mod time;
pub mod validation;
