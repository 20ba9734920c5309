//! kazoo-port-requests: Kazoo 4.3's crossbar `port_requests` API as a standalone service.
//!
//! Layout: `domain` holds plain logic without I/O; `couch` and `directory` talk to CouchDB;
//! `auth` checks Kazoo tokens; `http` is the crossbar envelope and request parsing; `routes`
//! are the endpoints; `startup` wires it all into an actix-web server.

pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod configuration;
pub mod couch;
pub mod directory;
pub mod domain;
pub mod email;
pub mod error;
pub mod http;
pub mod loa;
pub mod metrics;
pub mod notify;
pub mod port_requests;
pub mod routes;
pub mod schema;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod webhook;
