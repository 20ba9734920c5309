//! Kazoo's validation errors (Kazoo 4.3's `cb_context`): what the domain rules report, as
//! plain data. The HTTP layer turns them into the 400 envelope.

use serde_json::{Map, Value, json};

/// Kazoo's validation errors: `{ "<dotted.path>": { "<code>": <message object> } }`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ValidationErrors(Map<String, Value>);

/// Joins path segments with `.`, escaping a literal `.` inside a segment as `%2E`.
pub fn dotted_path<S: AsRef<str>>(segments: &[S]) -> String {
    segments.iter().map(|s| s.as_ref().replace('.', "%2E")).collect::<Vec<_>>().join(".")
}

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(path: &str, code: &str, detail: Value) -> Self {
        let mut e = Self::new();
        e.add(path, code, detail);
        e
    }

    /// Adds an error; an existing entry for the same path and code wins, as `kz_json:merge`.
    pub fn add(&mut self, path: &str, code: &str, detail: Value) {
        let codes = self.0.entry(path.to_owned()).or_insert_with(|| json!({}));
        if let Some(codes) = codes.as_object_mut() {
            codes.entry(code.to_owned()).or_insert(detail);
        }
    }

    pub fn merge(&mut self, other: ValidationErrors) {
        for (path, codes) in other.0 {
            if let Some(codes) = codes.as_object() {
                for (code, detail) in codes {
                    self.add(&path, code, detail.clone());
                }
            }
        }
    }

    /// Drops every error under `path`.
    pub fn remove(&mut self, path: &str) {
        self.0.remove(path);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_escape_dots() {
        assert_eq!(dotted_path(&["bill", "name"]), "bill.name");
        assert_eq!(dotted_path(&["numbers", "+1.202"]), "numbers.+1%2E202");
    }

    #[test]
    fn first_error_wins() {
        let mut e = ValidationErrors::new();
        e.add("name", "required", json!({"message": "first"}));
        e.add("name", "required", json!({"message": "second"}));
        e.add("name", "type", json!({"message": "other"}));
        assert_eq!(e.to_value()["name"]["required"]["message"], "first");
        assert_eq!(e.to_value()["name"]["type"]["message"], "other");
    }
}
