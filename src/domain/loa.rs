//! What the Letter of Authorization shows: the template data built from the request, the
//! account and its reseller. Plain data in, plain JSON out; the template decides the layout.

use super::documents::account::AccountDoc;
use super::documents::port_request::{Bill, PortRequest};
use super::phone_number::pretty_print;
use super::port_request::public_view;
use super::time::gregorian_to_datetime;
use chrono_tz::Tz;
use qrcode::QrCode;
use qrcode::render::svg;
use serde_json::{Value, json};

/// Only the last two characters of a PIN are printed.
pub fn mask_pin(pin: &str) -> String {
    let chars: Vec<char> = pin.chars().collect();
    let keep = chars.len().min(2);
    let hidden = chars.len() - keep;
    "•".repeat(hidden.max(2)) + &chars[hidden..].iter().collect::<String>()
}

/// A QR code of `text` as inline SVG, made here (no network call).
pub fn qr_svg(text: &str) -> String {
    match QrCode::new(text.as_bytes()) {
        // inline in HTML: the XML declaration has to go
        Ok(code) => {
            let svg = code.render::<svg::Color<'_>>().min_dimensions(140, 140).quiet_zone(true).build();
            svg.find("<svg").map_or(svg.clone(), |at| svg[at..].to_owned())
        }
        Err(_) => String::new(),
    }
}

/// A QR code of `text` as a PNG (Kazoo's templates show `qr_code.image`, a base64 PNG), made
/// here: 8 pixels a module, with the quiet zone.
pub fn qr_png(text: &str) -> Option<Vec<u8>> {
    const SCALE: usize = 8;
    const QUIET: usize = 4;
    let code = QrCode::new(text.as_bytes()).ok()?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
            for y in my * SCALE..(my + 1) * SCALE {
                pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().ok()?.write_image_data(&pixels).ok()?;
    Some(out)
}

/// An account document as a Kazoo template may see it: no private or internal keys.
fn public(doc: &AccountDoc) -> Value {
    match serde_json::to_value(doc) {
        Ok(Value::Object(o)) => {
            Value::Object(o.into_iter().filter(|(k, _)| !k.starts_with("pvt_") && !k.starts_with('_')).collect())
        }
        _ => json!({}),
    }
}

/// Kazoo's LOA data (`cb_port_requests:generate_loa_from_port`), for its `.tmpl` templates:
/// the reseller and the account (their public keys), the numbers pretty-printed, the bill as
/// stored, the request as the API shows it, the QR code, and `type`.
pub fn kazoo_data(request: &PortRequest, account: &AccountDoc, reseller: &AccountDoc) -> Value {
    let on_request = request.numbers_shown();
    let numbers = if on_request.is_empty() { request.ported() } else { on_request };
    let account_id = request.owner().map(|a| a.to_string()).unwrap_or_default();
    let mut data = json!({
        "reseller": public(reseller),
        "account": public(account),
        "numbers": numbers.keys().map(|e| e.pretty()).collect::<Vec<_>>(),
        "bill": request.public_fields().get("bill").cloned().unwrap_or(Value::Null),
        "request": public_view(request),
        "type": "loa",
    });
    if let Some(png) = qr_png(&format!("{account_id}-{}", request.id)) {
        use base64::Engine;
        data["qr_code"] = json!({ "image": base64::engine::general_purpose::STANDARD.encode(png) });
    }
    data
}

fn date_in(gregorian: Option<i64>, tz: Tz) -> Option<String> {
    gregorian.and_then(gregorian_to_datetime).map(|at| at.with_timezone(&tz).format("%B %-d, %Y").to_string())
}

fn join(parts: &[Option<&str>], sep: &str) -> String {
    parts.iter().flatten().copied().collect::<Vec<_>>().join(sep)
}

/// wkhtmltopdf stamps each PDF with the second it was made: the time of day is zeroed (same
/// length, so the cross-reference offsets still hold), so that one letter rendered twice on one
/// day, by any instance, is the same file and has one SHA-256.
pub fn same_bytes_each_render(mut pdf: Vec<u8>) -> Vec<u8> {
    const KEY: &[u8] = b"/CreationDate (D:";
    if let Some(at) = pdf.windows(KEY.len()).position(|w| w == KEY) {
        let time = at + KEY.len() + 8;
        if let Some(digits) = pdf.get_mut(time..time + 6)
            && digits.iter().all(u8::is_ascii_digit)
        {
            digits.copy_from_slice(b"000000");
        }
    }
    pdf
}

/// The data of the LOA template for a stored request.
pub fn template_data(
    request: &PortRequest,
    account: &AccountDoc,
    reseller: &AccountDoc,
    tz: Tz,
    now_gregorian: i64,
) -> Value {
    let view = public_view(request);
    let no_bill = Bill::default();
    let bill = request.bill().unwrap_or(&no_bill);
    let on_request = request.numbers_shown();
    let numbers_shown = if on_request.is_empty() { request.ported() } else { on_request };
    let numbers: Vec<Value> = numbers_shown
        .keys()
        .enumerate()
        .map(|(i, e164)| json!({ "n": i + 1, "e164": e164, "pretty": e164.pretty() }))
        .collect();
    let line1 = join(
        &[
            bill.street_number.text(),
            bill.street_pre_dir.text(),
            bill.street_address.text(),
            bill.street_type.text(),
            bill.street_post_dir.text(),
        ],
        " ",
    );
    let city = join(&[bill.locality.text(), bill.region.text()], ", ");
    let line2 = join(&[Some(city.as_str()).filter(|c| !c.is_empty()), bill.postal_code.text()], " ");
    let account_id = request.owner().map(|a| a.to_string()).unwrap_or_default();
    let qr_text = format!("{account_id}-{}", request.id);
    json!({
        "request": view,
        "port_request_id": request.id,
        "account": { "id": account_id, "name": account.name.text(), "realm": account.realm.text() },
        "reseller": { "id": reseller.id.get(), "name": reseller.name.text().unwrap_or("Your service provider"), "realm": reseller.realm.text() },
        "customer_name": bill.name.text().or(account.name.text()),
        "bill": {
            "name": bill.name.text(),
            "account_number": bill.account_number.text(),
            "btn": bill.btn.text().map(pretty_print),
            "pin_masked": bill.pin.text().map(mask_pin),
            "address_line1": Some(line1).filter(|l| !l.is_empty()),
            "address_line2": Some(line2).filter(|l| !l.is_empty()),
        },
        "losing_carrier": bill.carrier.text().unwrap_or("unknown carrier"),
        "winning_carrier": request.winning_carrier.text(),
        "numbers": numbers,
        "number_count": numbers.len(),
        "transfer_date": date_in(request.transfer_date.copied(), tz),
        "signee_name": request.signee_name.text(),
        "signing_date": date_in(request.signing_date.copied(), tz),
        "reference_number": request.reference_number.text(),
        "generated_on": date_in(Some(now_gregorian), tz),
        "timezone": tz.name(),
        "qr_text": qr_text,
        "qr_svg": qr_svg(&qr_text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A1: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn pins_are_masked() {
        assert_eq!(mask_pin("123456"), "••••56");
        assert_eq!(mask_pin("12"), "••12");
        assert_eq!(mask_pin("7"), "••7");
    }

    #[test]
    fn renders_of_one_day_are_the_same_file() {
        let a = b"%PDF-1.4 /CreationDate (D:20261202182501Z) rest".to_vec();
        let b = b"%PDF-1.4 /CreationDate (D:20261202230059Z) rest".to_vec();
        assert_eq!(same_bytes_each_render(a.clone()), same_bytes_each_render(b));
        assert_eq!(same_bytes_each_render(a).len(), 47);
        assert_eq!(same_bytes_each_render(b"%PDF no date".to_vec()), b"%PDF no date");
    }

    #[test]
    fn kazoos_data_hides_private_keys() {
        let request = PortRequest::stored_with(
            json!({"_id": "p1", "numbers": {"+14155551234": {}}, "bill": {"name": "Jo"}, "carrier": "Pacific Bell"}),
            json!({"account_id": A1}),
        );
        let acct: AccountDoc =
            serde_json::from_value(json!({"name": "Acme", "pvt_api_key": "secret", "_rev": "1-x"})).unwrap();
        let d = kazoo_data(&request, &acct, &AccountDoc::default());
        assert_eq!(d["numbers"], json!(["(415) 555 - 1234"]));
        assert_eq!(d["account"], json!({"name": "Acme"}));
        assert_eq!(d["bill"]["name"], "Jo");
        assert_eq!(d["request"]["carrier"], "Pacific Bell");
        let png =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, d["qr_code"]["image"].as_str().unwrap())
                .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
    }

    #[test]
    fn qr_is_svg() {
        let svg = qr_svg("a-b");
        assert!(svg.starts_with("<svg"), "{svg}");
    }

    #[test]
    fn data_for_the_letter() {
        let request = PortRequest::stored_with(
            json!({
                "_id": "p1", "name": "Move", "numbers": {"+14155551234": {}},
                "bill": {"name": "Jo Doe", "carrier": "Pacific Bell", "pin": "9876", "btn": "+14155550000",
                         "street_number": "1", "street_address": "Main", "street_type": "St",
                         "locality": "San Francisco", "region": "CA", "postal_code": "94105"},
                "transfer_date": 63_900_000_000_i64, "signee_name": "Jo Doe"
            }),
            json!({"account_id": A1}),
        );
        let named = |n: &str| serde_json::from_value::<AccountDoc>(json!({ "name": n })).unwrap();
        let d = template_data(&request, &named("Acme"), &named("Resell"), chrono_tz::UTC, 63_900_000_000);
        assert_eq!(d["numbers"][0], json!({"n": 1, "e164": "+14155551234", "pretty": "(415) 555 - 1234"}));
        assert_eq!(d["bill"]["address_line1"], "1 Main St");
        assert_eq!(d["bill"]["address_line2"], "San Francisco, CA 94105");
        assert_eq!(d["bill"]["pin_masked"], "••76");
        assert_eq!(d["losing_carrier"], "Pacific Bell");
        assert_eq!(d["reseller"]["name"], "Resell");
        assert_eq!(d["qr_text"], format!("{A1}-p1"));
        assert!(d["transfer_date"].as_str().unwrap().ends_with("2024"));
    }
}
