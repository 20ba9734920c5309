//! Black-box API tests: the real application on a random port, against the PouchDB Server
//! and MailDev that scripts/test.sh starts.

mod amqp;
mod helpers;
mod kazoo;

mod attachments;
mod auth;
mod browser;
mod bus;
mod comments;
mod customer;
mod deliveries;
mod desk;
mod envelope;
mod faults;
mod fone;
mod hostile;
mod idempotency;
mod import;
mod instances;
mod lifecycle;
mod listings;
mod loa;
mod notifications;
mod number_progress;
mod numbers;
mod operations;
mod outage;
mod security;
mod startup;
mod stored_notifications;
mod transitions;
