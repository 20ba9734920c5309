//! The outside world notifications go to: mail (`email`) and webhooks (`webhook`).

pub mod email;
pub mod webhook;
