//! The URL table of the API. Every resource answers 405 (in the envelope) for methods it does
//! not take. Each handler parses what it is asked, calls one use case of `app`, and answers.

pub mod attachments;
pub mod customer_links;
pub mod desk;
pub mod fone;
pub mod listings;
pub mod operations;
pub mod port_requests;

use crate::http::errors::ApiError;
use actix_web::{HttpResponse, web};

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::InvalidMethod)
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Routes are matched in this order: the request and its sub-resources first, as they are
/// what clients ask for most.
pub fn configure(cfg: &mut web::ServiceConfig) {
    desk::configure(cfg);
    port_requests::configure(cfg);
    attachments::configure(cfg);
    customer_links::configure(cfg);
    port_requests::configure_transitions(cfg);
    listings::configure(cfg);
    fone::configure(cfg);
    crate::pages::customer::configure(cfg);
    cfg.service(resource("/healthz").route(web::get().to(operations::healthz)))
        .service(resource("/openapi.json").route(web::get().to(operations::openapi)))
        .service(resource("/metrics").route(web::get().to(operations::metrics)));
    cfg.default_service(web::to(not_found));
}
