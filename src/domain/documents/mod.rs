//! The stored documents, typed: every key the service reads or writes is spelled here (and in
//! the views of `couchdb_views/`), nowhere else. Each type keeps the fields it does not know, so
//! what Kazoo, Monster UI or an older version wrote is written back unchanged.

pub mod account;
pub mod fields;
pub mod notification;
pub mod number;
pub mod port_request;
pub mod service;

#[cfg(test)]
mod round_trip {
    //! Every stored document of `tests/fixtures/documents/` (Kazoo 4.3's, older versions',
    //! odd ones, this service's) read as its type and written back: the same JSON, value for
    //! value (numbers keep their spelling: `1` is not `1.0`).

    use super::account::{AccountDoc, UserDoc, Whitelabel};
    use super::number::NumberDoc;
    use super::port_request::PortRequest;
    use super::service::{ClaimDoc, DeliveryDoc};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    fn fixtures() -> Vec<(String, Value)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/documents");
        let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
            .expect("the fixtures are there")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p.file_name().unwrap().to_string_lossy().into_owned(), serde_json::from_str(&text).unwrap())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn back<T: Serialize + DeserializeOwned>(doc: &Value) -> Value {
        let typed: T = serde_json::from_value(doc.clone()).expect("every document reads as its type");
        serde_json::to_value(typed).unwrap()
    }

    #[test]
    fn every_stored_document_comes_back_as_it_was() {
        let all = fixtures();
        assert!(all.len() >= 12, "the fixtures are read");
        for (name, f) in all {
            let doc = &f["doc"];
            let written = match f["type"].as_str().unwrap() {
                "port_request" => back::<PortRequest>(doc),
                "account" => back::<AccountDoc>(doc),
                "user" => back::<UserDoc>(doc),
                "whitelabel" => back::<Whitelabel>(doc),
                "number" => back::<NumberDoc>(doc),
                "claim" => back::<ClaimDoc>(doc),
                "delivery" => back::<DeliveryDoc>(doc),
                other => panic!("{name}: no type {other}"),
            };
            // byte for byte once both are written the same way (serde_json's maps are sorted)
            assert_eq!(serde_json::to_string(&written).unwrap(), serde_json::to_string(doc).unwrap(), "{name}");
        }
    }

    #[test]
    fn the_rules_read_what_the_fixtures_hold() {
        for (name, f) in fixtures().into_iter().filter(|(_, f)| f["type"] == "port_request") {
            let doc = PortRequest::from_stored(f["doc"].clone()).unwrap();
            let expect = &f["expect"];
            let count = |k: &str| expect.get(k).and_then(Value::as_u64).map(|n| n as usize);
            match expect.get("state").and_then(Value::as_str) {
                Some(state) => assert_eq!(doc.state().unwrap().as_str(), state, "{name}"),
                None => assert!(doc.state().is_err(), "{name}: an unknown state is an error, never a default"),
            }
            match count("numbers") {
                Some(n) => assert_eq!(doc.numbers().unwrap().len(), n, "{name}"),
                None => assert!(doc.numbers().is_err(), "{name}: numbers that are not E.164 are an error"),
            }
            for (key, found) in [
                ("ported", doc.ported().len()),
                ("canceled", doc.canceled().len()),
                ("comments", doc.comments().count()),
                ("private_comments", doc.comments().filter(|c| c.is_private()).count()),
                ("events", doc.events().count()),
                ("links", doc.links().count()),
                ("signatures", doc.signature_list().count()),
                ("attachments", doc.attachment_names().len()),
            ] {
                if let Some(n) = count(key) {
                    assert_eq!(found, n, "{name}: {key}");
                }
            }
            if expect.get("sent").is_some() {
                assert!(doc.is_sent(), "{name}: Kazoo's string \"true\" is sent");
            }
        }
    }

    #[test]
    fn a_changed_request_keeps_what_it_does_not_know() {
        let f = fixtures().into_iter().find(|(n, _)| n == "odd-values.json").unwrap().1;
        let mut doc = PortRequest::from_stored(f["doc"].clone()).unwrap();
        doc.name.set("Renamed".into());
        let written = doc.to_value();
        for key in
            ["pvt_unknown_to_us", "custom_field", "bill", "pvt_transitions", "pvt_created", "pvt_port_state", "numbers"]
        {
            assert_eq!(written[key], f["doc"][key], "{key} is written back as it was stored");
        }
        assert_eq!(written["name"], "Renamed");
    }
}
