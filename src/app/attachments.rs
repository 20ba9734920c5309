//! Uploads on a port request (CouchDB attachments): added or replaced, and removed, through the
//! one write path, so a concurrent change of the document is waited for or made again over,
//! never overwritten, and a failure never touches the request itself.

use super::error::AppError;
use super::write::{Again, Ask, Write, change};
use crate::domain::attachments::{check_name, upload_name};
use crate::domain::documents::port_request::PortRequest;
use crate::domain::ids::PortRequestId;
use crate::domain::time::now_gregorian;
use serde_json::json;
use std::sync::Arc;

/// A refused attachment name.
pub fn bad_name(name: &str) -> AppError {
    AppError::field(
        "filename",
        "invalid",
        json!({ "message": "attachment names are at most 255 bytes, do not start with '_', and hold no '/', '..' or control characters", "value": name }),
    )
}

/// The name an upload is stored under: the one in the path as it is, else `?filename=` checked
/// (or one made from the time and type).
pub fn name_of(in_path: Option<String>, given: Option<&str>, content_type: &str) -> Result<String, AppError> {
    match in_path {
        Some(n) => {
            check_name(&n).map_err(|_| bad_name(&n))?;
            Ok(n)
        }
        None => upload_name(given, content_type, now_gregorian()).map_err(|_| bad_name(given.unwrap_or_default())),
    }
}

/// A file to store on a request.
pub struct Upload {
    pub name: String,
    /// One of the accepted types (`domain::attachments`).
    pub content_type: String,
    /// The bytes as they arrived: sent to CouchDB as they are.
    pub chunks: Vec<bytes::Bytes>,
}

/// Adds or replaces attachment `upload.name` on request `id`.
pub async fn attach(ask: &Ask<'_>, id: &PortRequestId, upload: Upload) -> Result<Arc<PortRequest>, AppError> {
    let Upload { name, content_type, chunks } = upload;
    let changed = change(ask, id, Again::OnConflict, async |_, _| {
        let write =
            Write::Attachment { name: name.clone(), content_type: content_type.clone(), chunks: chunks.clone() };
        Ok((Some(write), ()))
    })
    .await?;
    Ok(changed.doc)
}

/// Removes attachment `name`, only where the request itself may be deleted; one that is not
/// there is removed already.
pub async fn detach(ask: &Ask<'_>, id: &PortRequestId, name: &str) -> Result<(), AppError> {
    check_name(name).map_err(|_| bad_name(name))?;
    change(ask, id, Again::OnConflict, async |doc, _| {
        if !doc.state()?.is_deletable() {
            return Err(AppError::NotDeletable);
        }
        let write = doc.attachment(name).map(|_| Write::RemoveAttachment { name: name.to_owned() });
        Ok((write, ()))
    })
    .await?;
    Ok(())
}
