//! The use cases: what the service does, whoever asks (the API, the customer pages, the
//! import, the jobs). They take their own inputs, decide by the domain's rules
//! (`crate::domain`), read and write through the repositories (`crate::store`), and answer a
//! value or an `AppError`; they know nothing of HTTP.
//!
//! Every change of a port request goes through `write::change`, the one write path.

pub mod accounts;
pub mod attachments;
pub mod claims;
pub mod completion;
pub mod customer;
pub mod desk;
pub mod error;
pub mod fone;
pub mod import;
pub mod letter;
pub mod listings;
pub mod requests;
pub mod write;
