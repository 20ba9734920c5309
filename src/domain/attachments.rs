//! Attachment rules: which files a port request takes and what they are called
//! (`cb_modules_util:attachment_name`, with the image types bill scans need).

use rand::RngCore;

/// The content types accepted for uploads, and the extension a name without one gets.
const ACCEPTED: [(&str, &str); 7] = [
    ("application/pdf", "pdf"),
    ("application/x-pdf", "pdf"),
    ("application/octet-stream", "bin"),
    ("text/plain", "txt"),
    ("image/png", "png"),
    ("image/jpeg", "jpg"),
    ("image/tiff", "tiff"),
];

/// The bare media type of a Content-Type header, if it is one we accept.
pub fn accepted_type(content_type: &str) -> Option<&'static str> {
    let bare = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ACCEPTED.iter().find(|(t, _)| *t == bare).map(|(t, _)| *t)
}

pub fn accepted_list() -> String {
    ACCEPTED.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
}

fn extension_for(content_type: &str) -> &'static str {
    ACCEPTED.iter().find(|(t, _)| *t == content_type).map_or("bin", |(_, e)| *e)
}

#[derive(Debug, PartialEq, Eq)]
pub enum NameError {
    TooLong,
    Unsafe,
}

/// Checks a name as given (e.g. in the URL): no path separators, no `..`, no control
/// characters, at most 255 bytes.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.len() > 255 {
        return Err(NameError::TooLong);
    }
    // CouchDB refuses attachment names that start with `_` (its own)
    if name.is_empty()
        || name.starts_with('_')
        || name.contains('/')
        || name.contains('\\')
        || name.contains("..")
        || name.chars().any(char::is_control)
    {
        return Err(NameError::Unsafe);
    }
    Ok(())
}

/// The stored name of an upload: the given name (or `uploaded_file_<now>`, or 32 random hex
/// characters for an empty one), spaces removed, and an extension from the content type when
/// it has none.
pub fn upload_name(given: Option<&str>, content_type: &str, now_gregorian: i64) -> Result<String, NameError> {
    let base = match given {
        None => format!("uploaded_file_{now_gregorian}"),
        Some(n) if n.trim().is_empty() => {
            let mut b = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut b);
            hex::encode(b)
        }
        Some(n) => {
            check_name(n)?;
            n.chars().filter(|c| !c.is_whitespace()).collect()
        }
    };
    let name = match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => base,
        _ => format!("{}.{}", base.trim_end_matches('.'), extension_for(content_type)),
    };
    check_name(&name)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_types() {
        assert_eq!(accepted_type("application/pdf"), Some("application/pdf"));
        assert_eq!(accepted_type("Image/PNG; charset=binary"), Some("image/png"));
        assert_eq!(accepted_type("application/json"), None);
        assert_eq!(accepted_type("text/html"), None);
    }

    #[test]
    fn kazoo_naming() {
        assert_eq!(upload_name(Some("bill"), "application/pdf", 1).unwrap(), "bill.pdf");
        assert_eq!(upload_name(Some("my bill.pdf"), "application/pdf", 1).unwrap(), "mybill.pdf");
        assert_eq!(upload_name(Some("notes"), "text/plain", 1).unwrap(), "notes.txt");
        assert_eq!(upload_name(Some("scan"), "image/jpeg", 1).unwrap(), "scan.jpg");
        assert_eq!(upload_name(Some("loa.signed.pdf"), "application/octet-stream", 1).unwrap(), "loa.signed.pdf");
        assert_eq!(upload_name(None, "application/pdf", 63_900_000_000).unwrap(), "uploaded_file_63900000000.pdf");
        assert_eq!(upload_name(Some(" "), "application/pdf", 1).unwrap().len(), 36);
        assert_eq!(upload_name(Some("_y"), "image/png", 1), Err(NameError::Unsafe), "CouchDB's own names");
    }

    #[test]
    fn unsafe_names() {
        assert_eq!(upload_name(Some("../etc/passwd"), "text/plain", 1), Err(NameError::Unsafe));
        assert_eq!(upload_name(Some("a/b.pdf"), "text/plain", 1), Err(NameError::Unsafe));
        assert_eq!(upload_name(Some("a\u{7}b.pdf"), "text/plain", 1), Err(NameError::Unsafe));
        assert_eq!(upload_name(Some(&"x".repeat(300)), "text/plain", 1), Err(NameError::TooLong));
        assert_eq!(upload_name(Some(".."), "application/pdf", 1), Err(NameError::Unsafe));
        assert_eq!(check_name("ok.pdf"), Ok(()));
        assert_eq!(check_name(".."), Err(NameError::Unsafe));
    }
}
