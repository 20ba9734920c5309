//! The Fone Dynamics porting API on top of Kazoo port requests: checking a "submit a porting
//! request" body, mapping it to a port request, and showing a port request the Fone way.

use super::documents::port_request::PortRequest;
use super::phone_number::is_e164;
use super::port_state::PortState;
use super::time::{gregorian_to_unix, unix_to_gregorian};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

/// The key under which the request keeps the fields exactly as the client sent them.
pub const ORIGINAL: &str = "fone_dynamics";

/// One refused field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

fn err(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), code, message: message.into() }
}

const TOP_FIELDS: [&str; 10] = [
    "CustomerDescription",
    "AuthorisedContactName",
    "AuthorisedContactEmail",
    "DaytimeContactNumber",
    "CurrentCarrier",
    "CurrentCarrierAccountNo",
    "PreferredPortSchedule",
    "PreferredPortDate",
    "WebHookURL",
    "PortingNumbers",
];
const NUMBER_FIELDS: [&str; 6] =
    ["Number", "PortType", "PortAddress", "IncomingActionType", "IncomingActionId", "IncomingAnswerPoint"];

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()))
}

/// A checked number of the request.
#[derive(Debug, Clone, PartialEq)]
pub struct PortingNumber {
    pub number: String,
    pub meta: Map<String, Value>,
}

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub fields: Map<String, Value>,
    pub numbers: Vec<PortingNumber>,
    pub port_date: Option<NaiveDate>,
}

/// Checks a body against every rule; all failures are reported. `today` is the date in the
/// property's time zone (a preferred date may not be before it).
pub fn check(body: &Value, today: NaiveDate) -> Result<Submission, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec![err("", "InvalidBody", "the body must be a JSON object")]);
    };
    for (k, v) in obj {
        if !TOP_FIELDS.contains(&k.as_str()) {
            errors.push(err(k, "UnknownField", format!("{k} is not a field of a porting request")));
        } else if k != "PortingNumbers" && !(v.is_string() || v.is_null()) {
            errors.push(err(k, "InvalidType", format!("{k} must be a string")));
        }
    }
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());

    if let Some(email) = text("AuthorisedContactEmail")
        && !is_email(email)
    {
        errors.push(err("AuthorisedContactEmail", "InvalidEmail", "AuthorisedContactEmail is not an email address"));
    }
    if let Some(url) = text("WebHookURL")
        && !is_http_url(url)
    {
        errors.push(err("WebHookURL", "InvalidUrl", "WebHookURL must be an http or https URL"));
    }
    if let Some(name) = text("CustomerDescription")
        && name.chars().count() > 128
    {
        errors.push(err("CustomerDescription", "TooLong", "CustomerDescription is at most 128 characters"));
    }
    let schedule = text("PreferredPortSchedule").unwrap_or("ASAP");
    let mut port_date = None;
    match schedule {
        "ASAP" => {}
        "Date" => match text("PreferredPortDate") {
            None => errors.push(err(
                "PreferredPortDate",
                "Required",
                "PreferredPortDate is required when PreferredPortSchedule is Date",
            )),
            Some(raw) => match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
                Err(_) => errors.push(err(
                    "PreferredPortDate",
                    "InvalidDate",
                    "PreferredPortDate must be a date as YYYY-MM-DD",
                )),
                Ok(d) if d < today => {
                    errors.push(err("PreferredPortDate", "DateInPast", "PreferredPortDate may not be in the past"))
                }
                Ok(d) => port_date = Some(d),
            },
        },
        _ => errors.push(err("PreferredPortSchedule", "InvalidValue", "PreferredPortSchedule must be ASAP or Date")),
    }
    if schedule != "Date"
        && text("PreferredPortDate").is_some_and(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err())
    {
        errors.push(err("PreferredPortDate", "InvalidDate", "PreferredPortDate must be a date as YYYY-MM-DD"));
    }

    let mut numbers: Vec<PortingNumber> = Vec::new();
    match obj.get("PortingNumbers") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, item) in list.iter().enumerate() {
                let at = |f: &str| format!("PortingNumbers[{i}].{f}");
                let Some(n) = item.as_object() else {
                    errors.push(err(format!("PortingNumbers[{i}]"), "InvalidType", "each porting number is an object"));
                    continue;
                };
                for (k, v) in n {
                    if !NUMBER_FIELDS.contains(&k.as_str()) {
                        errors.push(err(at(k), "UnknownField", format!("{k} is not a field of a porting number")));
                    } else if !(v.is_string() || v.is_null()) {
                        errors.push(err(at(k), "InvalidType", format!("{k} must be a string")));
                    }
                }
                let field = |k: &str| n.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
                let number = match field("Number") {
                    None => {
                        errors.push(err(at("Number"), "Required", "Number is required"));
                        continue;
                    }
                    Some(num) if !is_e164(num) => {
                        errors.push(err(
                            at("Number"),
                            "InvalidNumber",
                            "Number must be in E.164 format, e.g. +61288888888",
                        ));
                        continue;
                    }
                    Some(num) => num.to_owned(),
                };
                if numbers.iter().any(|p| p.number == number) {
                    errors.push(err(at("Number"), "Duplicate", "Number appears twice in this request"));
                }
                if field("PortType").is_some_and(|t| t != "Cat-A") {
                    errors.push(err(
                        at("PortType"),
                        "InvalidValue",
                        "PortType must be Cat-A (the only type supported)",
                    ));
                }
                match field("IncomingActionType") {
                    None => {}
                    Some("Flow") if field("IncomingActionId").is_none() => {
                        errors.push(err(
                            at("IncomingActionId"),
                            "Required",
                            "IncomingActionId is required when IncomingActionType is Flow",
                        ));
                    }
                    Some("Answering Point") if field("IncomingAnswerPoint").is_none() => errors.push(err(
                        at("IncomingAnswerPoint"),
                        "Required",
                        "IncomingAnswerPoint is required when IncomingActionType is Answering Point",
                    )),
                    Some("Flow" | "Answering Point") => {}
                    Some(_) => errors.push(err(
                        at("IncomingActionType"),
                        "InvalidValue",
                        "IncomingActionType must be Answering Point or Flow",
                    )),
                }
                let mut meta = Map::new();
                meta.insert("port_type".into(), json!(field("PortType").unwrap_or("Cat-A")));
                for (from, to) in [
                    ("PortAddress", "port_address"),
                    ("IncomingActionType", "incoming_action_type"),
                    ("IncomingActionId", "incoming_action_id"),
                    ("IncomingAnswerPoint", "incoming_answer_point"),
                ] {
                    if let Some(v) = field(from) {
                        meta.insert(to.into(), json!(v));
                    }
                }
                numbers.push(PortingNumber { number, meta });
            }
        }
        Some(Value::Array(_)) => errors.push(err("PortingNumbers", "Required", "PortingNumbers may not be empty")),
        Some(_) => errors.push(err("PortingNumbers", "InvalidType", "PortingNumbers must be a list")),
        None => errors.push(err("PortingNumbers", "Required", "PortingNumbers is required")),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Submission { fields: obj.clone(), numbers, port_date })
}

/// Midnight of `date` in `tz`, in Gregorian seconds.
pub fn midnight(date: NaiveDate, tz: Tz) -> i64 {
    let local = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    let instant = tz.from_local_datetime(&local).earliest().unwrap_or_else(|| tz.from_utc_datetime(&local));
    unix_to_gregorian(instant.timestamp())
}

/// The public fields of the Kazoo port request for a submission.
pub fn to_port_request(s: &Submission, tz: Tz) -> Map<String, Value> {
    let text = |k: &str| s.fields.get(k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
    let first = s.numbers.first().map(|n| n.number.clone()).unwrap_or_default();
    let mut pr = Map::new();
    pr.insert(
        "name".into(),
        json!(text("CustomerDescription").map_or_else(|| format!("Porting {first}"), str::to_owned)),
    );
    pr.insert(
        "numbers".into(),
        Value::Object(s.numbers.iter().map(|n| (n.number.clone(), Value::Object(n.meta.clone()))).collect()),
    );
    if let Some(v) = text("AuthorisedContactName") {
        pr.insert("signee_name".into(), json!(v));
    }
    let mut bill = Map::new();
    if let Some(v) = text("CurrentCarrier") {
        bill.insert("carrier".into(), json!(v));
    }
    if let Some(v) = text("CurrentCarrierAccountNo") {
        bill.insert("account_number".into(), json!(v));
    }
    if !bill.is_empty() {
        pr.insert("bill".into(), Value::Object(bill));
    }
    let mut notifications = Map::new();
    if let Some(v) = text("AuthorisedContactEmail") {
        notifications.insert("email".into(), json!({ "send_to": v }));
    }
    if let Some(v) = text("WebHookURL") {
        notifications.insert("webhook".into(), json!({ "url": v }));
    }
    if !notifications.is_empty() {
        pr.insert("notifications".into(), Value::Object(notifications));
    }
    if let Some(d) = s.port_date {
        pr.insert("transfer_date".into(), json!(midnight(d, tz)));
    }
    pr.insert(ORIGINAL.into(), Value::Object(s.fields.clone()));
    pr
}

/// A Kazoo state the Fone way.
pub fn status(state: PortState) -> &'static str {
    match state {
        PortState::Unconfirmed => "Draft",
        PortState::Submitted => "Submitted",
        PortState::Pending => "Pending",
        PortState::Scheduled => "Scheduled",
        PortState::Completed => "Completed",
        PortState::Rejected => "Rejected",
        PortState::Canceled => "Cancelled",
    }
}

/// The `PortingRequest` object of a stored request: the fields as submitted, and what the
/// request is now.
pub fn porting_request(doc: &PortRequest, account_sid: &str) -> Value {
    let mut out: Map<String, Value> = doc.fone_dynamics.get().cloned().unwrap_or_default();
    let state = doc.state().ok();
    let status_of = |s: Option<PortState>| match s {
        Some(s) => json!(status(s)),
        None => doc.shown_state(),
    };
    // every number, each where it is (numbers move on their own: per-number progress)
    let progress = super::number_progress::all(doc);
    let numbers: Vec<Value> = [doc.numbers_shown(), doc.ported(), doc.canceled()]
        .into_iter()
        .flat_map(|m| m.iter())
        .map(|(number, meta)| {
            let own = progress.get(number.as_str());
            let at = own.and_then(|p| p["state"].as_str()).and_then(PortState::parse).or(state);
            let mut m = json!({ "Number": number, "Status": status_of(at) });
            if let Some(reason) = own.and_then(|p| p.get("reason")) {
                m["StatusReason"] = reason.clone();
            }
            for (from, to) in [
                ("port_type", "PortType"),
                ("port_address", "PortAddress"),
                ("incoming_action_type", "IncomingActionType"),
                ("incoming_action_id", "IncomingActionId"),
                ("incoming_answer_point", "IncomingAnswerPoint"),
            ] {
                if let Some(v) = meta.rest.get(from) {
                    m[to] = v.clone();
                }
            }
            m
        })
        .collect();
    let unix = |s: Option<i64>| s.map(gregorian_to_unix);
    out.insert("PortingNo".into(), json!(doc.id));
    out.insert("AccountSid".into(), json!(account_sid));
    out.insert("PropertySid".into(), json!(doc.owner()));
    out.insert("CustomerDescription".into(), json!(doc.name.get()));
    out.insert("Status".into(), status_of(state));
    out.insert("PortingNumbers".into(), json!(numbers));
    out.insert("DateCreated".into(), json!(unix(doc.created.copied())));
    out.insert("DateUpdated".into(), json!(unix(doc.modified.copied())));
    Value::Object(out)
}

/// A status query's window: modified between `from` and `to` (Unix seconds), a page of
/// `count` from `skip`, or only the requests named.
pub struct Window {
    pub from: i64,
    pub to: i64,
    pub count: u64,
    pub skip: u64,
    pub ids: Option<Vec<String>>,
}

/// Reads a status query's parameters; every refusal names its parameter.
pub fn window(query: &Map<String, Value>) -> Result<Window, FieldError> {
    let get = |k: &str| query.get(k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
    let int = |k: &str| -> Result<Option<i64>, FieldError> {
        get(k)
            .map(|v| v.parse::<i64>().map_err(|_| err(k, "InvalidValue", format!("{k} must be Unix seconds"))))
            .transpose()
    };
    let from = int("From")?.ok_or_else(|| err("From", "Required", "From (Unix seconds) is required"))?;
    let to = int("To")?.ok_or_else(|| err("To", "Required", "To (Unix seconds) is required"))?;
    if from > to {
        return Err(err("From", "InvalidRange", "From is after To"));
    }
    let count = match get("Results_Count") {
        None => 20,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|c| (1..=1000).contains(c))
            .ok_or_else(|| err("Results_Count", "InvalidValue", "Results_Count must be from 1 to 1000"))?,
    };
    let token_skip = match get("NextPageToken").or_else(|| get("PageToken")) {
        None => None,
        Some(t) => Some(
            URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("skip:").and_then(|n| n.parse::<u64>().ok()))
                .ok_or_else(|| {
                    err("NextPageToken", "InvalidValue", "NextPageToken is not one this service handed out")
                })?,
        ),
    };
    let skip = match (token_skip, get("Results_Skip")) {
        (Some(s), _) => s,
        (None, None) => 0,
        (None, Some(v)) => {
            v.parse::<u64>().map_err(|_| err("Results_Skip", "InvalidValue", "Results_Skip must be a whole number"))?
        }
    };
    let ids = get("PortingRequestNumbers")
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());
    Ok(Window { from, to, count, skip, ids })
}

/// The page token of the next page of a status query.
pub fn next_page_token(skip: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("skip:{skip}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROP: &str = "0123456789abcdef0123456789abcdef";

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2030, 1, 1).unwrap()
    }

    fn seed() -> Value {
        json!({
            "CustomerDescription": "My Porting Request", "AuthorisedContactName": "John Doe",
            "AuthorisedContactEmail": "john@example.com", "DaytimeContactNumber": "+61299999999",
            "CurrentCarrier": "Optus", "CurrentCarrierAccountNo": "12345678",
            "PortingNumbers": [{"Number": "+61288888888", "PortType": "Cat-A",
                                "IncomingActionType": "Answering Point", "IncomingAnswerPoint": "+61277777777"}]
        })
    }

    fn codes(body: Value) -> Vec<(String, &'static str)> {
        check(&body, today()).unwrap_err().into_iter().map(|e| (e.field, e.code)).collect()
    }

    #[test]
    fn the_seed_example_maps_to_a_port_request() {
        let s = check(&seed(), today()).unwrap();
        let pr = to_port_request(&s, chrono_tz::Australia::Sydney);
        assert_eq!(pr["name"], "My Porting Request");
        assert_eq!(pr["signee_name"], "John Doe");
        assert_eq!(pr["bill"], json!({"carrier": "Optus", "account_number": "12345678"}));
        assert_eq!(pr["notifications"]["email"]["send_to"], "john@example.com");
        assert_eq!(
            pr["numbers"]["+61288888888"],
            json!({"port_type": "Cat-A", "incoming_action_type": "Answering Point",
                                                           "incoming_answer_point": "+61277777777"})
        );
        assert_eq!(pr[ORIGINAL], seed());
    }

    #[test]
    fn every_rule() {
        assert_eq!(codes(json!({})), [("PortingNumbers".to_owned(), "Required")]);
        assert_eq!(codes(json!({"PortingNumbers": []})), [("PortingNumbers".to_owned(), "Required")]);
        assert_eq!(
            codes(json!({"PortingNumbers": [{"Number": "0288888888"}]})),
            [("PortingNumbers[0].Number".to_owned(), "InvalidNumber")]
        );
        assert_eq!(
            codes(json!({"PortingNumbers": [{"Number": "+61288888888", "PortType": "Cat-C"}]})),
            [("PortingNumbers[0].PortType".to_owned(), "InvalidValue")]
        );
        assert_eq!(
            codes(json!({"PortingNumbers": [{"Number": "+61288888888", "IncomingActionType": "Flow"}]})),
            [("PortingNumbers[0].IncomingActionId".to_owned(), "Required")]
        );
        assert_eq!(
            codes(json!({"PortingNumbers": [{"Number": "+61288888888", "IncomingActionType": "Answering Point"}]})),
            [("PortingNumbers[0].IncomingAnswerPoint".to_owned(), "Required")]
        );
        assert_eq!(
            codes(json!({"PortingNumbers": [{"Number": "+61288888888", "IncomingActionType": "Voicemail"}]})),
            [("PortingNumbers[0].IncomingActionType".to_owned(), "InvalidValue")]
        );
        let n = json!([{"Number": "+61288888888"}]);
        assert_eq!(
            codes(json!({"PortingNumbers": n, "PreferredPortSchedule": "Later"})),
            [("PreferredPortSchedule".to_owned(), "InvalidValue")]
        );
        assert_eq!(
            codes(json!({"PortingNumbers": n, "PreferredPortSchedule": "Date"})),
            [("PreferredPortDate".to_owned(), "Required")]
        );
        assert_eq!(
            codes(json!({"PortingNumbers": n, "PreferredPortSchedule": "Date", "PreferredPortDate": "01/02/2030"})),
            [("PreferredPortDate".to_owned(), "InvalidDate")]
        );
        assert_eq!(
            codes(json!({"PortingNumbers": n, "PreferredPortSchedule": "Date", "PreferredPortDate": "2029-12-31"})),
            [("PreferredPortDate".to_owned(), "DateInPast")]
        );
        assert_eq!(
            codes(json!({"PortingNumbers": n, "AuthorisedContactEmail": "nope"})),
            [("AuthorisedContactEmail".to_owned(), "InvalidEmail")]
        );
        assert_eq!(
            codes(json!({"PortingNumbers": n, "WebHookURL": "ftp://x"})),
            [("WebHookURL".to_owned(), "InvalidUrl")]
        );
        assert_eq!(codes(json!({"PortingNumbers": n, "Surprise": 1})), [("Surprise".to_owned(), "UnknownField")]);
        assert_eq!(
            codes(json!({"PortingNumbers": n, "CurrentCarrier": 5})),
            [("CurrentCarrier".to_owned(), "InvalidType")]
        );
        let s = check(
            &json!({"PortingNumbers": n, "PreferredPortSchedule": "Date", "PreferredPortDate": "2030-01-01"}),
            today(),
        )
        .unwrap();
        assert_eq!(s.port_date, Some(today()));
    }

    #[test]
    fn midnight_in_the_property_zone() {
        let d = NaiveDate::from_ymd_opt(2030, 6, 1).unwrap();
        // Sydney is UTC+10 in June
        assert_eq!(gregorian_to_unix(midnight(d, chrono_tz::Australia::Sydney)), 1_906_466_400);
    }

    #[test]
    fn status_object() {
        let doc = PortRequest::stored_with(
            json!({"_id": "p", "name": "x", "numbers": {"+61288888888": {"port_type": "Cat-A"}},
                   ORIGINAL: {"CurrentCarrier": "Optus"}}),
            json!({"account_id": PROP, "port_state": "submitted", "created": 63_900_000_000_i64, "modified": 63_900_000_010_i64}),
        );
        let pr = porting_request(&doc, "acct");
        assert_eq!(pr["PropertySid"], PROP);
        assert_eq!(pr["PortingNo"], "p");
        assert_eq!(pr["Status"], "Submitted");
        assert_eq!(pr["CurrentCarrier"], "Optus");
        assert_eq!(
            pr["PortingNumbers"][0],
            json!({"Number": "+61288888888", "Status": "Submitted", "PortType": "Cat-A"})
        );
        assert_eq!(pr["DateUpdated"], 63_900_000_010_i64 - 62_167_219_200);
    }

    #[test]
    fn each_number_has_its_own_status_once_numbers_move_on_their_own() {
        let doc = PortRequest::stored_with(
            json!({"_id": "p", "numbers": {"+61288888881": {}}}),
            json!({"account_id": PROP, "port_state": "pending",
            "ported_numbers": {"+61288888882": {"port_type": "Cat-A"}},
            "canceled_numbers": {"+61288888883": {}},
            "number_progress": {
                "+61288888882": {"state": "completed", "previous": "pending"},
                "+61288888883": {"state": "canceled", "previous": "pending", "reason": "kept by the customer"}}}),
        );
        let pr = porting_request(&doc, "acct");
        let by_number =
            |n: &str| pr["PortingNumbers"].as_array().unwrap().iter().find(|e| e["Number"] == n).cloned().unwrap();
        assert_eq!(by_number("+61288888881")["Status"], "Pending");
        assert_eq!(
            by_number("+61288888882"),
            json!({"Number": "+61288888882", "Status": "Completed", "PortType": "Cat-A"})
        );
        assert_eq!(by_number("+61288888883")["Status"], "Cancelled");
        assert_eq!(by_number("+61288888883")["StatusReason"], "kept by the customer");
        assert_eq!(pr["Status"], "Pending");
    }
}
