//! The HTML pages the service serves: the end customer's (`customer`).

pub mod customer;
