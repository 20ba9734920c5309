//! The filters, with Django's meaning as ErlyDTL implements it. An unknown filter is refused
//! when the template is parsed.

use super::{Val, date, escape, text, truthy};
use serde_json::Value;

const KNOWN: &[&str] = &[
    "add",
    "addslashes",
    "capfirst",
    "center",
    "cut",
    "date",
    "default",
    "default_if_none",
    "divisibleby",
    "escape",
    "escapejs",
    "first",
    "force_escape",
    "join",
    "last",
    "length",
    "length_is",
    "linebreaksbr",
    "ljust",
    "lower",
    "make_list",
    "pluralize",
    "rjust",
    "safe",
    "slugify",
    "stringformat",
    "striptags",
    "time",
    "title",
    "truncatechars",
    "truncatewords",
    "upper",
    "urlencode",
    "wordcount",
    "wordwrap",
    "yesno",
];

/// Is `name` a filter this renderer has?
pub fn check(name: &str) -> Result<(), String> {
    if KNOWN.contains(&name) { Ok(()) } else { Err(format!("unknown filter {name}")) }
}

fn arg_text(arg: Option<&Value>) -> String {
    arg.map(text).unwrap_or_default()
}

fn arg_number(arg: Option<&Value>, name: &str) -> Result<i64, String> {
    match arg {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("{name} takes a whole number")),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| format!("{name} takes a whole number")),
        _ => Err(format!("{name} takes a number")),
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The value `v` with the filter applied. The result keeps `safe` where Django keeps it.
pub fn apply(name: &str, val: Val, arg: Option<&Value>, autoescape: bool) -> Result<Val, String> {
    let keep = val.safe;
    let s = || text(&val.v);
    let plain = |v: Value| Val { v, safe: keep };
    let string = |v: String| Val { v: Value::String(v), safe: keep };
    Ok(match name {
        "safe" => Val { v: val.v, safe: true },
        "escape" | "force_escape" => {
            Val { v: Value::String(if keep && name == "escape" { s() } else { escape(&s()) }), safe: true }
        }
        "default" => {
            if is_false(&val.v) {
                Val { v: arg.cloned().unwrap_or(Value::Null), safe: true }
            } else {
                val
            }
        }
        "default_if_none" => {
            if val.v.is_null() {
                Val { v: arg.cloned().unwrap_or(Value::Null), safe: true }
            } else {
                val
            }
        }
        "date" | "time" => {
            let format = arg.map(text).unwrap_or_else(|| if name == "date" { "F j, Y".into() } else { "f a".into() });
            match date::read(&val.v) {
                Some(t) => string(date::format(&t, &format)),
                None => string(String::new()),
            }
        }
        // Erlang's join makes a list of pieces (items and separators), printed one after the
        // other; `wordwrap` counts each piece as one character until `stringformat` flattens it
        "join" => match &val.v {
            Value::Array(items) => {
                let escaped = autoescape && !keep;
                let shown = |t: String| if escaped { escape(&t) } else { t };
                let sep = shown(arg_text(arg));
                let mut pieces = Vec::with_capacity(items.len() * 2);
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        pieces.push(Value::String(sep.clone()));
                    }
                    pieces.push(Value::String(shown(text(item))));
                }
                Val { v: Value::Array(pieces), safe: escaped || keep }
            }
            _ => val,
        },
        "stringformat" => string(stringformat(&val.v, &arg_text(arg))?),
        "wordwrap" => {
            let at = arg_number(arg, "wordwrap")?.max(0) as usize;
            match &val.v {
                Value::Array(pieces) => string(wordwrap(pieces.iter().map(text), at)),
                other => string(wordwrap(text(other).chars().map(String::from), at)),
            }
        }
        "upper" => string(s().to_uppercase()),
        "lower" => string(s().to_lowercase()),
        "capfirst" => {
            let t = s();
            let mut c = t.chars();
            string(match c.next() {
                Some(f) if f.is_ascii_lowercase() => f.to_ascii_uppercase().to_string() + c.as_str(),
                _ => t,
            })
        }
        "title" => {
            let mut out = String::new();
            let mut start = true;
            for c in s().to_lowercase().chars() {
                out.push(if start { c.to_ascii_uppercase() } else { c });
                start = !c.is_alphanumeric();
            }
            string(out)
        }
        "length" => plain(Value::from(match &val.v {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::Null => 0,
            other => text(other).len(),
        })),
        "length_is" => {
            let n = arg_number(arg, "length_is")?;
            let len = match &val.v {
                Value::Array(a) => a.len(),
                other => text(other).len(),
            };
            plain(Value::Bool(len as i64 == n))
        }
        "first" | "last" => match &val.v {
            Value::Array(a) => {
                plain((if name == "first" { a.first() } else { a.last() }).cloned().unwrap_or(Value::Null))
            }
            other => {
                let t = text(other);
                let c = if name == "first" { t.chars().next() } else { t.chars().last() };
                string(c.map(String::from).unwrap_or_default())
            }
        },
        "make_list" => plain(Value::Array(s().chars().map(|c| Value::String(c.to_string())).collect())),
        "truncatechars" => {
            let n = arg_number(arg, "truncatechars")?.max(0) as usize;
            let t = s();
            if t.chars().count() <= n {
                string(t)
            } else {
                string(t.chars().take(n.saturating_sub(3)).collect::<String>() + "...")
            }
        }
        "truncatewords" => {
            let n = arg_number(arg, "truncatewords")?.max(0) as usize;
            let t = s();
            let words: Vec<&str> = t.split_whitespace().collect();
            if words.len() <= n { string(words.join(" ")) } else { string(words[..n].join(" ") + " ...") }
        }
        "wordcount" => plain(Value::from(s().split_whitespace().count())),
        "linebreaksbr" => {
            let t = if autoescape && !keep { escape(&s()) } else { s() };
            Val { v: Value::String(t.replace("\r\n", "<br />").replace('\n', "<br />")), safe: true }
        }
        "striptags" => {
            let mut out = String::new();
            let mut inside = false;
            for c in s().chars() {
                match c {
                    '<' => inside = true,
                    '>' if inside => inside = false,
                    c if !inside => out.push(c),
                    _ => {}
                }
            }
            string(out)
        }
        "addslashes" => string(s().replace('\\', "\\\\").replace('"', "\\\"").replace('\'', "\\'")),
        "escapejs" => {
            let mut out = String::new();
            for c in s().chars() {
                if c.is_ascii_alphanumeric() || c == ' ' || c == '.' || c == ',' || c == '_' || c == '-' {
                    out.push(c);
                } else {
                    for u in c.encode_utf16(&mut [0; 2]) {
                        out.push_str(&format!("\\u{u:04X}"));
                    }
                }
            }
            string(out)
        }
        "cut" => string(s().replace(&arg_text(arg), "")),
        "slugify" => {
            let lowered = s().to_lowercase();
            let kept: String = lowered
                .chars()
                .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '-' || *c == '_')
                .collect();
            string(kept.split_whitespace().collect::<Vec<_>>().join("-"))
        }
        "urlencode" => {
            string(percent_encoding::utf8_percent_encode(&s(), percent_encoding::NON_ALPHANUMERIC).to_string())
        }
        "ljust" | "rjust" | "center" => {
            let width = arg_number(arg, name)?.clamp(0, 10_000) as usize;
            let t = s();
            let pad = width.saturating_sub(t.chars().count());
            string(match name {
                "ljust" => t + &" ".repeat(pad),
                "rjust" => " ".repeat(pad) + &t,
                _ => " ".repeat(pad / 2) + &t + &" ".repeat(pad - pad / 2),
            })
        }
        "add" => match (as_number(&val.v), arg.and_then(as_number)) {
            (Some(a), Some(b)) if val.v.is_number() || arg.is_some_and(Value::is_number) => {
                plain(if a.fract() == 0.0 && b.fract() == 0.0 {
                    Value::from((a + b) as i64)
                } else {
                    Value::from(a + b)
                })
            }
            _ => string(s() + &arg_text(arg)),
        },
        "divisibleby" => {
            let n = arg_number(arg, "divisibleby")?;
            let v = as_number(&val.v).map(|f| f as i64);
            plain(Value::Bool(n != 0 && v.is_some_and(|v| v % n == 0)))
        }
        "pluralize" => {
            let suffix = arg.map(text).unwrap_or_else(|| "s".into());
            let (one, many) = match suffix.split_once(',') {
                Some((a, b)) => (a.to_owned(), b.to_owned()),
                None => (String::new(), suffix),
            };
            let n = match &val.v {
                Value::Array(a) => Some(a.len() as f64),
                other => as_number(other),
            };
            string(if n == Some(1.0) { one } else { many })
        }
        "yesno" => {
            let choices: Vec<String> = arg_text(arg).split(',').map(str::to_owned).collect();
            let pick = |i: usize| choices.get(i).cloned().unwrap_or_default();
            string(match &val.v {
                Value::Null if choices.len() > 2 => pick(2),
                v if truthy(v) => pick(0),
                _ => pick(1),
            })
        }
        other => return Err(format!("unknown filter {other}")),
    })
}

/// ErlyDTL's falsehood (`default`'s test): like Django's, and `"0"` too.
pub fn is_false(v: &Value) -> bool {
    !truthy(v)
}

/// Python's `%` conversion (`stringformat:"s"`, `"05d"`, `".2f"`, `"x"`, ...).
fn stringformat(v: &Value, conversion: &str) -> Result<String, String> {
    static CONVERSION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^%?([-#+ 0]?)(\d+)?(?:\.(\d+))?([diouxXeEfFgGcrs])$").expect("a valid pattern")
    });
    let caps = CONVERSION.captures(conversion).ok_or_else(|| format!("stringformat cannot use {conversion:?}"))?;
    let flag = caps.get(1).map_or("", |m| m.as_str());
    let width: usize = caps.get(2).and_then(|m| m.as_str().parse().ok()).unwrap_or(0).min(10_000);
    let precision: Option<usize> = caps.get(3).and_then(|m| m.as_str().parse().ok());
    let kind = caps.get(4).map_or("s", |m| m.as_str());
    let number = || as_number(v).unwrap_or(0.0);
    let body = match kind {
        "s" | "r" | "c" => text(v),
        "d" | "i" | "u" => {
            let n = number() as i64;
            match precision {
                Some(p) => format!("{n:0p$}"),
                None => n.to_string(),
            }
        }
        "x" => format!("{:x}", number() as i64),
        "X" => format!("{:X}", number() as i64),
        "o" => format!("{:o}", number() as i64),
        "e" | "E" => {
            let s = format!("{:.*e}", precision.unwrap_or(6), number());
            if kind == "E" { s.to_uppercase() } else { s }
        }
        _ => format!("{:.*}", precision.unwrap_or(6), number()),
    };
    let pad = width.saturating_sub(body.chars().count());
    Ok(match flag {
        "-" => body + &" ".repeat(pad),
        "0" if kind != "s" => "0".repeat(pad) + &body,
        _ => " ".repeat(pad) + &body,
    })
}

/// `wordwrap:N` as ErlyDTL does it, over characters (or the pieces of a list, each counted as
/// one): a new line at a space once the line holds `N`, or before a word that would make it
/// longer; a word longer than a line stays whole.
pub fn wordwrap(input: impl Iterator<Item = String>, wrap_at: usize) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let mut word_len = 0usize;
    let mut line = 0usize;
    for c in input {
        match c.as_str() {
            "\n" => {
                out.push_str(&word);
                out.push('\n');
                word.clear();
                word_len = 0;
                line = 0;
            }
            " " if line == wrap_at => {
                out.push_str(&word);
                out.push('\n');
                word.clear();
                word_len = 0;
                line = 0;
            }
            " " => {
                out.push_str(&word);
                out.push(' ');
                line += 1 + word_len;
                word.clear();
                word_len = 0;
            }
            _ if line == 0 && word_len > wrap_at => {
                word.push_str(&c);
                word_len += 1;
            }
            _ if word_len + line > wrap_at => {
                out.push('\n');
                word.push_str(&c);
                word_len += 1;
                line = 0;
            }
            _ => {
                word.push_str(&c);
                word_len += 1;
            }
        }
    }
    out.push_str(&word);
    out
}
