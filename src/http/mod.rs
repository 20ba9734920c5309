//! The crossbar HTTP contract: the server, the envelope and its errors (every refusal worded
//! here), request parsing and authentication, request ids, CORS, `Idempotency-Key`.

pub mod envelope;
pub mod errors;
pub mod guesses;
pub mod idempotency;
pub mod middleware;
pub mod request;
pub mod server;
