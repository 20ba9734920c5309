//! The per-number port charge a submission must accept (402 "accept charges"), quoted the way
//! Kazoo 4.3's service 402s are (`kz_services_invoice`): a list of invoices, which Monster UI's
//! charges dialog (`monster.ui.charges`) reads, and which its retry with `accept_charges=true`
//! accepts.

use serde_json::{Value, json};

/// The invoices of porting `numbers` numbers at `per_number` each, billed by `bookkeeper`'s
/// reseller (`vendor_id`).
pub fn quote(per_number: f64, numbers: usize, vendor_id: &str) -> Value {
    let total = per_number * numbers as f64;
    json!([{
        "bookkeeper": { "type": "default", "vendor_id": vendor_id },
        "items": [{
            "category": "number_services",
            "item": "port",
            "quantity": numbers,
            "rate": per_number,
            "discount": 0.0,
            "total": total,
            "activation_charges": per_number,
        }],
        "activation_charges": total,
        "summary": { "today": total, "recurring": 0.0 },
        "plan": { "number_services": { "port": { "activation_charge": per_number } } },
        "taxes": [],
    }])
}

/// The amount a quote asks for.
pub fn amount(per_number: f64, numbers: usize) -> f64 {
    per_number * numbers as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quote_reads_like_a_kazoo_invoice_list() {
        let q = quote(10.0, 3, "reseller");
        let invoice = &q[0];
        assert_eq!(invoice["bookkeeper"]["type"], "default");
        assert_eq!(invoice["items"][0]["item"], "port");
        assert_eq!(invoice["items"][0]["quantity"], 3);
        assert_eq!(invoice["items"][0]["rate"], 10.0);
        assert_eq!(invoice["items"][0]["total"], 30.0);
        assert_eq!(invoice["activation_charges"], 30.0);
        assert_eq!(invoice["summary"]["today"], 30.0);
        assert!(invoice["taxes"].is_array());
        assert_eq!(amount(10.0, 3), 30.0);
    }
}
