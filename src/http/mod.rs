//! The crossbar HTTP contract: envelope, request parsing, request ids, CORS.

pub mod envelope;
pub mod guesses;
pub mod idempotency;
pub mod middleware;
pub mod request;
