//! kazoo-port-requests: Kazoo 4.3's crossbar `port_requests` API as a standalone service.
//!
//! A request goes `http` (envelope, parsing, authentication) → `routes` (or `pages`) → `app`
//! (the use cases; every change through `app::write`, the one write path) → `domain` (the
//! typed documents and the rules, no I/O) and `store` (CouchDB). `jobs` work in the
//! background (deliveries, repairs); `channels` and `pdf` reach the outside. `startup` builds
//! it all; `docs/architecture.md` draws it.

pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod channels;
pub mod cli;
pub mod configuration;
pub mod domain;
pub mod dtl;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod pages;
pub mod pdf;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
