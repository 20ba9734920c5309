//! Kazoo's stored templates: Django syntax as ErlyDTL renders it (the notification bodies and
//! subjects, and the LOA, that operators and resellers keep in CouchDB).
//!
//! A stored template is data an account admin wrote, so rendering it reads no file, runs no
//! code and is bounded: the source, the nesting, the work done and the output all have limits,
//! and going over one is an error like a syntax error (the caller falls back to another
//! template). Undefined values render as nothing, as in Kazoo.
//!
//! What it knows: `{{ a.b.c|filter:"arg" }}`; `{% if %}` / `elif` / `else` with `or`, `and`,
//! `not`, comparisons and `in`; `{% ifequal %}` / `ifnotequal`; `{% for x in xs %}` (with
//! `reversed`, `empty` and `forloop`); `{% firstof %}`; `{% with %}`; `{% autoescape %}`;
//! `{% now %}`; `{% comment %}` and `{# #}`; `{% spaceless %}`; the filters in `filters.rs`.
//! Tags that read other templates (`extends`, `include`, `ssi`, `load`) are refused.

mod date;
mod filters;
mod parse;

use parse::{Cond, Expr, Node, Operand};
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// What a template may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest source accepted.
    pub max_source: usize,
    /// Longest output produced.
    pub max_output: usize,
    /// Most nodes, loop rounds and filters evaluated in one render.
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_source: 256 * 1024, max_output: 2 * 1024 * 1024, max_steps: 200_000 }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DtlError {
    #[error("template does not parse: {0}")]
    Parse(String),
    #[error("template does not render: {0}")]
    Render(String),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    limits: Limits,
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, DtlError> {
        Self::parse_with(source, Limits::default())
    }

    pub fn parse_with(source: &str, limits: Limits) -> Result<Self, DtlError> {
        if source.len() > limits.max_source {
            return Err(DtlError::Parse(format!("longer than {} bytes", limits.max_source)));
        }
        Ok(Self { nodes: parse::parse(source)?, limits })
    }

    /// Renders with `data`; `autoescape` as Kazoo does it (on for account templates and
    /// subjects, off for the system's bodies).
    pub fn render(&self, data: &Value, autoescape: bool) -> Result<String, DtlError> {
        let mut r = Renderer { out: String::new(), steps: 0, limits: self.limits, scopes: vec![] };
        r.nodes(&self.nodes, data, autoescape)?;
        Ok(r.out)
    }
}

/// Parses and renders in one go.
pub fn render(source: &str, data: &Value, autoescape: bool) -> Result<String, DtlError> {
    Template::parse(source)?.render(data, autoescape)
}

/// A value with whether it is already safe to print (escaped, or marked `safe`).
#[derive(Debug, Clone)]
pub(crate) struct Val {
    pub v: Value,
    pub safe: bool,
}

impl Val {
    pub fn new(v: Value) -> Self {
        Self { v, safe: false }
    }
}

/// ErlyDTL's truth: nothing, false, 0, `"0"`, and empty strings, lists and objects are false.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() != Some(0),
        Value::String(s) => !s.is_empty() && s != "0",
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A value as printed: lists are printed as their items one after the other (Erlang prints
/// an iolist so), objects as nothing.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null | Value::Object(_) => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect(),
    }
}

/// `& < > " '` as Kazoo's templates escape them.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            c => out.push(c),
        }
    }
    out
}

struct Renderer {
    out: String,
    steps: u64,
    limits: Limits,
    /// Names bound by `for` and `with`, innermost last.
    scopes: Vec<Map<String, Value>>,
}

impl Renderer {
    fn step(&mut self) -> Result<(), DtlError> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(DtlError::Render(format!("more than {} steps", self.limits.max_steps)));
        }
        Ok(())
    }

    fn emit(&mut self, s: &str) -> Result<(), DtlError> {
        if self.out.len() + s.len() > self.limits.max_output {
            return Err(DtlError::Render(format!("output longer than {} bytes", self.limits.max_output)));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn lookup(&self, path: &[String], data: &Value) -> Value {
        let Some((first, rest)) = path.split_first() else { return Value::Null };
        let root = self.scopes.iter().rev().find_map(|s| s.get(first)).or_else(|| data.get(first.as_str()));
        let mut at = match root {
            Some(v) => v,
            None => return Value::Null,
        };
        for key in rest {
            let next = match at {
                Value::Object(o) => o.get(key.as_str()),
                Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
            match next {
                Some(v) => at = v,
                None => return Value::Null,
            }
        }
        at.clone()
    }

    fn operand(&self, o: &Operand, data: &Value) -> Val {
        match o {
            // literals in a template are the author's own text: safe
            Operand::Literal(v) => Val { v: v.clone(), safe: true },
            Operand::Path(p) => Val::new(self.lookup(p, data)),
        }
    }

    fn expr(&mut self, e: &Expr, data: &Value, autoescape: bool) -> Result<Val, DtlError> {
        let mut val = self.operand(&e.base, data);
        for f in &e.filters {
            self.step()?;
            let arg = f.arg.as_ref().map(|a| self.operand(a, data).v);
            val = filters::apply(&f.name, val, arg.as_ref(), autoescape).map_err(DtlError::Render)?;
        }
        Ok(val)
    }

    fn print(&mut self, val: Val, autoescape: bool) -> Result<(), DtlError> {
        let s = text(&val.v);
        if autoescape && !val.safe { self.emit(&escape(&s)) } else { self.emit(&s) }
    }

    fn cond(&mut self, c: &Cond, data: &Value, autoescape: bool) -> Result<bool, DtlError> {
        self.step()?;
        Ok(match c {
            Cond::Or(a, b) => self.cond(a, data, autoescape)? || self.cond(b, data, autoescape)?,
            Cond::And(a, b) => self.cond(a, data, autoescape)? && self.cond(b, data, autoescape)?,
            Cond::Not(a) => !self.cond(a, data, autoescape)?,
            Cond::Test(e) => truthy(&self.expr(e, data, autoescape)?.v),
            Cond::Cmp(a, op, b) => {
                let (a, b) = (self.expr(a, data, autoescape)?.v, self.expr(b, data, autoescape)?.v);
                parse::compare(&a, *op, &b)
            }
        })
    }

    fn nodes(&mut self, nodes: &[Node], data: &Value, autoescape: bool) -> Result<(), DtlError> {
        for n in nodes {
            self.node(n, data, autoescape)?;
        }
        Ok(())
    }

    fn node(&mut self, n: &Node, data: &Value, autoescape: bool) -> Result<(), DtlError> {
        self.step()?;
        match n {
            Node::Text(t) => self.emit(t),
            Node::Var(e) => {
                let v = self.expr(e, data, autoescape)?;
                self.print(v, autoescape)
            }
            Node::If { branches, otherwise } => {
                for (c, body) in branches {
                    if self.cond(c, data, autoescape)? {
                        return self.nodes(body, data, autoescape);
                    }
                }
                self.nodes(otherwise, data, autoescape)
            }
            Node::For { names, items, reversed, body, empty } => {
                let list = self.expr(items, data, autoescape)?.v;
                let mut rounds: Vec<Value> = match list {
                    Value::Array(a) => a,
                    Value::Object(o) => o.into_iter().map(|(k, v)| Value::Array(vec![Value::String(k), v])).collect(),
                    Value::Null => vec![],
                    other => vec![other],
                };
                if *reversed {
                    rounds.reverse();
                }
                if rounds.is_empty() {
                    return self.nodes(empty, data, autoescape);
                }
                let len = rounds.len();
                let parent = self.scopes.iter().rev().find_map(|s| s.get("forloop")).cloned().unwrap_or(Value::Null);
                for (i, item) in rounds.into_iter().enumerate() {
                    self.step()?;
                    let mut scope = Map::new();
                    scope.insert(
                        "forloop".into(),
                        serde_json::json!({
                            "counter": i + 1, "counter0": i, "revcounter": len - i, "revcounter0": len - i - 1,
                            "first": i == 0, "last": i + 1 == len, "parentloop": parent,
                        }),
                    );
                    if names.len() == 1 {
                        scope.insert(names[0].clone(), item);
                    } else {
                        let parts = match item {
                            Value::Array(a) => a,
                            other => vec![other],
                        };
                        for (k, name) in names.iter().enumerate() {
                            scope.insert(name.clone(), parts.get(k).cloned().unwrap_or(Value::Null));
                        }
                    }
                    self.scopes.push(scope);
                    let done = self.nodes(body, data, autoescape);
                    self.scopes.pop();
                    done?;
                }
                Ok(())
            }
            Node::Firstof(options) => {
                for o in options {
                    let v = self.expr(o, data, autoescape)?;
                    if truthy(&v.v) {
                        return self.print(v, autoescape);
                    }
                }
                Ok(())
            }
            Node::With(bindings, body) => {
                let mut scope = Map::new();
                for (name, e) in bindings {
                    scope.insert(name.clone(), self.expr(e, data, autoescape)?.v);
                }
                self.scopes.push(scope);
                let done = self.nodes(body, data, autoescape);
                self.scopes.pop();
                done
            }
            Node::Autoescape(on, body) => self.nodes(body, data, *on),
            Node::Spaceless(body) => {
                let start = self.out.len();
                self.nodes(body, data, autoescape)?;
                let inner = self.out.split_off(start);
                let squeezed = parse::spaceless(&inner);
                self.emit(&squeezed)
            }
            Node::Now(format) => {
                let now = chrono::Utc::now().naive_utc();
                let mut s = String::new();
                let _ = write!(s, "{}", date::format(&now, format));
                self.emit(&s)
            }
        }
    }
}

#[cfg(test)]
mod tests;
