//! The port authority's desk: its configuration (`configs_port_authority_desk` in the
//! authority's account database over the shipped defaults), the rejection catalogue in effect,
//! what needs attention, and the report per losing carrier.

use super::accounts::find_authority;
use super::error::AppError;
use crate::domain::desk::DeskConfig;
use crate::domain::desk::rejection_codes::{self, RejectionCode};
use crate::domain::documents::port_request::PortRequest;
use crate::domain::ids::AccountId;
use crate::domain::port_state::PortState;
use crate::state::AppState;
use crate::store::directory::Account;
use serde_json::json;

/// An authority's desk configuration (none: the defaults).
pub async fn config(state: &AppState, authority: &AccountId) -> Result<DeskConfig, AppError> {
    let doc = state.directory.doc(&authority.db_name(), crate::domain::desk::CONFIG_ID).await?;
    Ok(DeskConfig::of(doc.as_deref()))
}

/// The rejection catalogue of an authority.
pub async fn catalogue_of(state: &AppState, authority: &AccountId) -> Result<Vec<RejectionCode>, AppError> {
    Ok(rejection_codes::in_effect(config(state, authority).await?.rejection_codes.as_ref()))
}

/// `GET .../rejection_codes`: the catalogue in effect for an account's requests (its port
/// authority's).
pub async fn rejection_codes(state: &AppState, account: &Account) -> Result<Vec<RejectionCode>, AppError> {
    let authority = find_authority(&state.directory, account).await?;
    catalogue_of(state, &authority).await
}

/// The catalogue entry a move names with `reason_code`: only a rejection names one, and only
/// a code of the catalogue of the request's authority.
pub async fn rejection_named(
    state: &AppState,
    doc: &PortRequest,
    to: PortState,
    code: Option<&str>,
) -> Result<Option<RejectionCode>, AppError> {
    let Some(code) = code else { return Ok(None) };
    if to != PortState::Rejected {
        return Err(AppError::field(
            "reason_code",
            "forbidden",
            json!({ "message": "reason_code is given only with a rejection", "value": code }),
        ));
    }
    let catalogue = match doc.authority.get() {
        Some(authority) => catalogue_of(state, authority).await?,
        None => rejection_codes::shipped().to_vec(),
    };
    match rejection_codes::find(&catalogue, code) {
        Some(entry) => Ok(Some(entry.clone())),
        None => Err(AppError::field(
            "reason_code",
            "enum",
            json!({
                "message": "Value not found in enumerated list of values",
                "value": code,
                "target": catalogue.iter().map(|c| c.code.as_str()).collect::<Vec<_>>(),
            }),
        )),
    }
}
