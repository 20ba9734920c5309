//! JSON Schema validation against the schema files under `schemas/` (written to match Kazoo's
//! `port_requests`, `comment` and `port_requests.to_scheduled`), with errors in Kazoo's shape:
//! `{ "<dotted.path>": { "<code>": { "message": ..., ... } } }` (`kz_json_schema:error_to_jobj`).

use super::validation::{ValidationErrors, dotted_path};
use jsonschema::Validator;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::{Value, json};
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy)]
pub enum Schema {
    PortRequest,
    ToScheduled,
    Comments,
}

fn compile(raw: &str) -> Validator {
    let schema: Value = serde_json::from_str(raw).expect("schemas/*.json are valid JSON");
    jsonschema::draft4::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schemas/*.json are valid draft-04 schemas")
}

static PORT_REQUEST: LazyLock<Validator> = LazyLock::new(|| compile(include_str!("../../schemas/port_requests.json")));
static TO_SCHEDULED: LazyLock<Validator> =
    LazyLock::new(|| compile(include_str!("../../schemas/port_requests.to_scheduled.json")));
static COMMENTS: LazyLock<Validator> = LazyLock::new(|| compile(include_str!("../../schemas/comments.json")));

fn validator(schema: Schema) -> &'static Validator {
    match schema {
        Schema::PortRequest => &PORT_REQUEST,
        Schema::ToScheduled => &TO_SCHEDULED,
        Schema::Comments => &COMMENTS,
    }
}

fn type_names(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => t.as_str().to_owned(),
        TypeKind::Multiple(set) => set.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "),
    }
}

/// Validates `doc`; every failure is reported, each under its own path.
pub fn validate(schema: Schema, doc: &Value) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    for err in validator(schema).iter_errors(doc) {
        // split the JSON pointer ourselves: a key like "+1" must stay a key, not an index
        let mut path: Vec<String> = err
            .instance_path()
            .as_str()
            .split('/')
            .skip(1)
            .map(|seg| seg.replace("~1", "/").replace("~0", "~"))
            .collect();
        let value = err.instance().clone().into_owned();
        let (code, detail) = match err.kind() {
            ValidationErrorKind::Required { property } => {
                path.push(property.as_str().unwrap_or_default().to_owned());
                ("required", json!({ "message": "Field is required but missing", "value": property }))
            }
            ValidationErrorKind::Type { kind } => {
                let types = type_names(kind);
                (
                    "type",
                    json!({ "message": format!("Value did not match type(s): {types}"), "target": types, "value": value }),
                )
            }
            ValidationErrorKind::MinLength { limit } => (
                "minLength",
                json!({ "message": format!("String must be at least {limit} characters"), "target": limit, "value": value }),
            ),
            ValidationErrorKind::MaxLength { limit } => (
                "maxLength",
                json!({ "message": format!("String must not be more than {limit} characters"), "target": limit, "value": value }),
            ),
            ValidationErrorKind::MinProperties { limit } => (
                "minProperties",
                json!({ "message": format!("The object must have at least {limit} keys"), "target": limit, "value": value }),
            ),
            ValidationErrorKind::Pattern { pattern } => (
                "pattern",
                json!({ "message": format!("Failed to match pattern '{pattern}'"), "target": pattern, "value": value }),
            ),
            ValidationErrorKind::Format { format } => (
                "wrong_format",
                json!({ "message": "Field is not in the correct format", "format": format, "value": value }),
            ),
            ValidationErrorKind::Enum { .. } => {
                ("enum", json!({ "message": "Value not found in enumerated list of values", "value": value }))
            }
            ValidationErrorKind::AnyOf { .. } => {
                ("anyOf", json!({ "message": "Value did not match any of the allowed forms", "value": value }))
            }
            other => ("invalid", json!({ "message": format!("{other:?}"), "value": value })),
        };
        errors.add(&dotted_path(&path), code, detail);
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(schema: Schema, doc: Value) -> Value {
        validate(schema, &doc).unwrap_err().to_value()
    }

    #[test]
    fn valid_request() {
        let doc = json!({"name": "x", "numbers": {"+12025550123": {}}, "bill": {"name": "Jo"},
                         "notifications": {"email": {"send_to": ["a@b.example", "c@d.example"]}}});
        assert!(validate(Schema::PortRequest, &doc).is_ok());
    }

    #[test]
    fn kazoo_shapes() {
        let e = errs(Schema::PortRequest, json!({"numbers": {"+1": {}}}));
        assert_eq!(e["name"]["required"]["message"], "Field is required but missing");
        assert_eq!(e["name"]["required"]["value"], "name");

        let e = errs(Schema::PortRequest, json!({"name": "", "numbers": {}}));
        assert_eq!(e["name"]["minLength"]["message"], "String must be at least 1 characters");
        assert_eq!(e["numbers"]["minProperties"]["target"], 1);

        let e = errs(Schema::PortRequest, json!({"name": "x".repeat(129), "numbers": {"+1": {}}}));
        assert!(e["name"]["maxLength"].is_object());

        let e = errs(Schema::PortRequest, json!({"name": "x", "numbers": {"+1": 5}, "bill": {"name": 3}}));
        assert_eq!(e["numbers.+1"]["type"]["message"], "Value did not match type(s): object");
        assert_eq!(e["bill.name"]["type"]["target"], "string");

        let e = errs(
            Schema::PortRequest,
            json!({"name": "x", "numbers": {"+1": {}},
                                                 "notifications": {"email": {"send_to": "nope"}}}),
        );
        assert!(e["notifications.email.send_to"]["wrong_format"].is_object());

        let e = errs(Schema::PortRequest, json!({"name": "x", "numbers": {"+1": {}}, "transfer_date": "soon"}));
        assert!(e["transfer_date"]["type"].is_object());
    }

    #[test]
    fn comments_need_author_content_timestamp() {
        let e = errs(Schema::Comments, json!({"comments": [{"content": "hi"}]}));
        assert!(e["comments.0.author"]["required"].is_object());
        assert!(e["comments.0.timestamp"]["required"].is_object());
    }

    #[test]
    fn scheduling_needs_a_date() {
        assert!(validate(Schema::ToScheduled, &json!({"scheduled_date": 63_000_000_000_i64})).is_ok());
        assert!(
            validate(
                Schema::ToScheduled,
                &json!({"schedule_on": {"date_time": "2030-01-02 10:00", "timezone": "Europe/Paris"}})
            )
            .is_ok()
        );
        assert!(validate(Schema::ToScheduled, &json!({})).is_err());
        let e = errs(Schema::ToScheduled, json!({"schedule_on": {"date_time": "tomorrow", "timezone": "UTC"}}));
        assert!(e["schedule_on.date_time"]["pattern"].is_object());
    }
}
