//! The crossbar HTTP contract: envelope, request parsing, request ids, CORS.

pub mod envelope;
pub mod middleware;
pub mod request;
