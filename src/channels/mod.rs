//! The outside world notifications go to: mail (`email`), webhooks (`webhook`) and Kazoo's
//! AMQP bus (`bus`).

pub mod bus;
pub mod email;
pub mod webhook;
