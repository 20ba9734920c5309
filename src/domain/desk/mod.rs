//! The port authority's desk: what needs attention (`attention`), the rejection codes with
//! their fix (`rejection_codes`), what a resubmission changed (`fingerprint`), the business
//! calendar the rules count in (`calendar`), and the figures per losing carrier (`report`).
//! Shipped defaults live next to the code; a port authority overrides them in one document of
//! its account database, `configs_port_authority_desk` (`DeskConfig`), as Kazoo keeps an
//! account's settings in `configs_<category>` documents.

pub mod attention;
pub mod calendar;
pub mod digest;
pub mod fingerprint;
pub mod rejection_codes;
pub mod report;

use serde::Deserialize;
use serde_json::{Map, Value};

/// The id of an authority's desk configuration, in its account database.
pub const CONFIG_ID: &str = "configs_port_authority_desk";

/// An authority's desk configuration. Every part is optional and read leniently: a part of
/// another shape configures nothing (the shipped defaults hold).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeskConfig {
    /// Code → changes of the catalogue (`rejection_codes::in_effect`).
    #[serde(default, deserialize_with = "object")]
    pub rejection_codes: Option<Map<String, Value>>,
    /// Rule id → changes of the attention rules (`attention::in_effect`).
    #[serde(default, deserialize_with = "object")]
    pub attention_rules: Option<Map<String, Value>>,
    /// `{"days": ["mon", ...], "start": "09:00", "end": "17:00", "timezone": "..."}`.
    #[serde(default)]
    pub business_hours: Option<Value>,
    /// `{"at": "08:00", "disabled": false}`.
    #[serde(default)]
    pub digest: Option<Value>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

fn object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Map<String, Value>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(o) => Some(o),
        _ => None,
    })
}

impl DeskConfig {
    /// The configuration of a stored document (one that does not read configures nothing).
    pub fn of(doc: Option<&Value>) -> DeskConfig {
        doc.filter(|d| d.get("pvt_deleted") != Some(&Value::Bool(true)))
            .and_then(|d| DeskConfig::deserialize(d).ok())
            .unwrap_or_default()
    }
}
