//! Django template syntax into a tree: the source is cut into text, `{{ }}`, `{% %}` and
//! `{# #}`; tags and variables are read with a small tokenizer that keeps quoted strings whole.

use super::DtlError;
use serde_json::Value;

/// How deep blocks may nest (a bound on the parser's and the renderer's stack).
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone)]
pub enum Node {
    Text(String),
    Var(Expr),
    If { branches: Vec<(Cond, Vec<Node>)>, otherwise: Vec<Node> },
    For { names: Vec<String>, items: Expr, reversed: bool, body: Vec<Node>, empty: Vec<Node> },
    Firstof(Vec<Expr>),
    With(Vec<(String, Expr)>, Vec<Node>),
    Autoescape(bool, Vec<Node>),
    Spaceless(Vec<Node>),
    Now(String),
}

#[derive(Debug, Clone)]
pub enum Operand {
    Literal(Value),
    Path(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub name: String,
    pub arg: Option<Operand>,
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub base: Operand,
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    In,
    NotIn,
}

#[derive(Debug, Clone)]
pub enum Cond {
    Or(Box<Cond>, Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Cmp(Expr, Op, Expr),
    Test(Expr),
}

enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
    Tag(&'a str),
}

fn err(msg: impl Into<String>) -> DtlError {
    DtlError::Parse(msg.into())
}

/// Cuts the source into text, variables and tags (comments dropped).
fn pieces(src: &str) -> Result<Vec<Piece<'_>>, DtlError> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find('{') {
        let (open, close) = match rest[i..].as_bytes().get(1) {
            Some(b'{') => ("{{", "}}"),
            Some(b'%') => ("{%", "%}"),
            Some(b'#') => ("{#", "#}"),
            _ => {
                out.push(Piece::Text(&rest[..=i]));
                rest = &rest[i + 1..];
                continue;
            }
        };
        if i > 0 {
            out.push(Piece::Text(&rest[..i]));
        }
        let after = &rest[i + 2..];
        let end = after.find(close).ok_or_else(|| err(format!("{open} without {close}")))?;
        let inner = after[..end].trim();
        match open {
            "{{" => out.push(Piece::Var(inner)),
            "{%" => out.push(Piece::Tag(inner)),
            _ => {}
        }
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Num(Value),
    Name(String),
    Pipe,
    Colon,
    Comma,
    Assign,
    Cmp(&'static str),
}

/// Tokens of a tag or variable: quoted strings (with `\` escapes), numbers, names (dotted
/// paths, keywords), `|`, `:`, `,`, `=` and comparison operators.
fn tokens(s: &str) -> Result<Vec<Tok>, DtlError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '"' | '\'' => {
                let mut lit = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err("a string without its closing quote")),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some('n') => lit.push('\n'),
                                Some('r') => lit.push('\r'),
                                Some('t') => lit.push('\t'),
                                Some(n) => lit.push(*n),
                                None => {}
                            }
                            i += 2;
                        }
                        Some(q) if *q == c => {
                            i += 1;
                            break;
                        }
                        Some(other) => {
                            lit.push(*other);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(lit));
            }
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '=' | '!' | '<' | '>' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = match two.as_str() {
                    "==" => "==",
                    "!=" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    _ => match c {
                        '<' => "<",
                        '>' => ">",
                        '=' => "=",
                        _ => return Err(err("a lone '!'")),
                    },
                };
                i += op.len();
                out.push(if op == "=" { Tok::Assign } else { Tok::Cmp(op) });
            }
            c if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let n: String = chars[start..i].iter().collect();
                let v = if let Ok(int) = n.parse::<i64>() {
                    Value::from(int)
                } else {
                    n.parse::<f64>().map(Value::from).map_err(|_| err(format!("bad number {n}")))?
                };
                out.push(Tok::Num(v));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Name(chars[start..i].iter().collect()));
            }
            other => return Err(err(format!("unexpected {other:?}"))),
        }
    }
    Ok(out)
}

/// A cursor over one tag's tokens.
struct Toks {
    toks: Vec<Tok>,
    at: usize,
}

impl Toks {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn is_name(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Name(n)) if n == word)
    }

    fn done(&self) -> bool {
        self.at >= self.toks.len()
    }

    fn operand(&mut self) -> Result<Operand, DtlError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Operand::Literal(Value::String(s))),
            Some(Tok::Num(n)) => Ok(Operand::Literal(n)),
            Some(Tok::Name(n)) => match n.as_str() {
                "true" | "True" => Ok(Operand::Literal(Value::Bool(true))),
                "false" | "False" => Ok(Operand::Literal(Value::Bool(false))),
                "None" | "undefined" => Ok(Operand::Literal(Value::Null)),
                _ => {
                    if n.split('.').any(str::is_empty) {
                        return Err(err(format!("bad variable {n}")));
                    }
                    Ok(Operand::Path(n.split('.').map(str::to_owned).collect()))
                }
            },
            other => Err(err(format!("expected a value, found {other:?}"))),
        }
    }

    fn expr(&mut self) -> Result<Expr, DtlError> {
        let base = self.operand()?;
        let mut filters = Vec::new();
        while self.peek() == Some(&Tok::Pipe) {
            self.next();
            let Some(Tok::Name(name)) = self.next() else { return Err(err("a filter without its name")) };
            super::filters::check(&name).map_err(err)?;
            let arg = if self.peek() == Some(&Tok::Colon) {
                self.next();
                Some(self.operand()?)
            } else {
                None
            };
            filters.push(Filter { name, arg });
        }
        Ok(Expr { base, filters })
    }

    fn cond(&mut self) -> Result<Cond, DtlError> {
        let mut left = self.and()?;
        while self.is_name("or") {
            self.next();
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, DtlError> {
        let mut left = self.not()?;
        while self.is_name("and") {
            self.next();
            left = Cond::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Cond, DtlError> {
        if self.is_name("not") {
            self.next();
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        let left = self.expr()?;
        let op = match self.peek() {
            Some(Tok::Cmp(o)) => match *o {
                "==" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                ">" => Op::Gt,
                "<=" => Op::Le,
                _ => Op::Ge,
            },
            Some(Tok::Name(n)) if n == "in" => Op::In,
            Some(Tok::Name(n))
                if n == "not" && matches!(self.toks.get(self.at + 1), Some(Tok::Name(i)) if i == "in") =>
            {
                self.next();
                Op::NotIn
            }
            _ => return Ok(Cond::Test(left)),
        };
        self.next();
        Ok(Cond::Cmp(left, op, self.expr()?))
    }
}

fn toks(s: &str) -> Result<Toks, DtlError> {
    Ok(Toks { toks: tokens(s)?, at: 0 })
}

/// The parser: pieces in order, blocks read recursively up to the tag that ends them.
struct Parser<'a> {
    pieces: Vec<Piece<'a>>,
    at: usize,
    depth: usize,
}

/// What ended a block: the tag's name and the rest of it.
type End = Option<(String, String)>;

impl<'a> Parser<'a> {
    /// Nodes up to one of `ends` (returned), or to the end of the source when `ends` is empty.
    fn block(&mut self, ends: &[&str]) -> Result<(Vec<Node>, End), DtlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(format!("blocks nested deeper than {MAX_DEPTH}")));
        }
        let mut nodes = Vec::new();
        while self.at < self.pieces.len() {
            let piece = std::mem::replace(&mut self.pieces[self.at], Piece::Text(""));
            self.at += 1;
            match piece {
                Piece::Text(t) => nodes.push(Node::Text(t.to_owned())),
                Piece::Var(v) => {
                    let mut t = toks(v)?;
                    let e = t.expr()?;
                    if !t.done() {
                        return Err(err(format!("unexpected text in {{{{ {v} }}}}")));
                    }
                    nodes.push(Node::Var(e));
                }
                Piece::Tag(tag) => {
                    let (name, rest) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
                    let rest = rest.trim();
                    if ends.contains(&name) {
                        self.depth -= 1;
                        return Ok((nodes, Some((name.to_owned(), rest.to_owned()))));
                    }
                    nodes.push(self.tag(name, rest)?);
                }
            }
        }
        if !ends.is_empty() {
            return Err(err(format!("missing {{% {} %}}", ends.last().unwrap_or(&""))));
        }
        self.depth -= 1;
        Ok((nodes, None))
    }

    fn tag(&mut self, name: &str, rest: &str) -> Result<Node, DtlError> {
        match name {
            "if" => {
                let mut branches = Vec::new();
                let mut cond = whole_cond(rest)?;
                loop {
                    let (body, end) = self.block(&["elif", "else", "endif"])?;
                    branches.push((cond, body));
                    match end {
                        Some((e, r)) if e == "elif" => cond = whole_cond(&r)?,
                        Some((e, _)) if e == "else" => {
                            let (otherwise, _) = self.block(&["endif"])?;
                            return Ok(Node::If { branches, otherwise });
                        }
                        _ => return Ok(Node::If { branches, otherwise: vec![] }),
                    }
                }
            }
            "ifequal" | "ifnotequal" => {
                let mut t = toks(rest)?;
                let (a, b) = (t.expr()?, t.expr()?);
                let op = if name == "ifequal" { Op::Eq } else { Op::Ne };
                let end = format!("end{name}");
                let (body, e) = self.block(&["else", &end])?;
                let otherwise = match e {
                    Some((e, _)) if e == "else" => self.block(&[&end])?.0,
                    _ => vec![],
                };
                Ok(Node::If { branches: vec![(Cond::Cmp(a, op, b), body)], otherwise })
            }
            "for" => {
                let mut t = toks(rest)?;
                let mut names = Vec::new();
                loop {
                    match t.next() {
                        Some(Tok::Name(n)) if n == "in" && !names.is_empty() => break,
                        Some(Tok::Name(n)) if !n.contains('.') => names.push(n),
                        Some(Tok::Comma) => {}
                        other => return Err(err(format!("bad for loop at {other:?}"))),
                    }
                }
                let items = t.expr()?;
                let reversed = t.is_name("reversed");
                if reversed {
                    t.next();
                }
                if !t.done() {
                    return Err(err("unexpected text after the for loop's list"));
                }
                let (body, end) = self.block(&["empty", "endfor"])?;
                let empty = match end {
                    Some((e, _)) if e == "empty" => self.block(&["endfor"])?.0,
                    _ => vec![],
                };
                Ok(Node::For { names, items, reversed, body, empty })
            }
            "firstof" => {
                let mut t = toks(rest)?;
                let mut options = Vec::new();
                while !t.done() {
                    options.push(t.expr()?);
                }
                Ok(Node::Firstof(options))
            }
            "with" => {
                let mut t = toks(rest)?;
                let mut bindings = Vec::new();
                while !t.done() {
                    let Some(Tok::Name(n)) = t.next() else { return Err(err("bad with")) };
                    if t.next() != Some(Tok::Assign) {
                        return Err(err("with needs name=value"));
                    }
                    bindings.push((n, t.expr()?));
                }
                let (body, _) = self.block(&["endwith"])?;
                Ok(Node::With(bindings, body))
            }
            "autoescape" => {
                let on = match rest {
                    "on" => true,
                    "off" => false,
                    _ => return Err(err("autoescape takes on or off")),
                };
                Ok(Node::Autoescape(on, self.block(&["endautoescape"])?.0))
            }
            "spaceless" => Ok(Node::Spaceless(self.block(&["endspaceless"])?.0)),
            "comment" => {
                self.block(&["endcomment"])?;
                Ok(Node::Text(String::new()))
            }
            "now" => match toks(rest)?.next() {
                Some(Tok::Str(f)) => Ok(Node::Now(f)),
                _ => Err(err("now takes a quoted format")),
            },
            "block" => Ok(Node::With(vec![], self.block(&["endblock"])?.0)),
            "extends" | "include" | "ssi" | "load" => Err(err(format!("{{% {name} %}} is not allowed here"))),
            other => Err(err(format!("unknown tag {{% {other} %}}"))),
        }
    }
}

fn whole_cond(s: &str) -> Result<Cond, DtlError> {
    let mut t = toks(s)?;
    let c = t.cond()?;
    if !t.done() {
        return Err(err(format!("unexpected text in the condition {s:?}")));
    }
    Ok(c)
}

pub fn parse(src: &str) -> Result<Vec<Node>, DtlError> {
    let mut p = Parser { pieces: pieces(src)?, at: 0, depth: 0 };
    let (nodes, _) = p.block(&[])?;
    Ok(nodes)
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn compare(a: &Value, op: Op, b: &Value) -> bool {
    let ordering = || match (number(a), number(b)) {
        (Some(x), Some(y)) if !a.is_string() || !b.is_string() => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        },
    };
    let contains = || match b {
        Value::Array(items) => items.contains(a),
        Value::Object(o) => a.as_str().is_some_and(|k| o.contains_key(k)),
        Value::String(s) => a.as_str().is_some_and(|x| s.contains(x)),
        _ => false,
    };
    let equal = || {
        a == b || matches!((number(a), number(b)), (Some(x), Some(y)) if x == y && !(a.is_string() && b.is_string()))
    };
    match op {
        Op::Eq => equal(),
        Op::Ne => !equal(),
        Op::Lt => ordering().is_some_and(|o| o.is_lt()),
        Op::Gt => ordering().is_some_and(|o| o.is_gt()),
        Op::Le => ordering().is_some_and(|o| o.is_le()),
        Op::Ge => ordering().is_some_and(|o| o.is_ge()),
        Op::In => contains(),
        Op::NotIn => !contains(),
    }
}

/// `{% spaceless %}`: whitespace between tags removed.
pub fn spaceless(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending = String::new();
    let mut last_was_gt = false;
    for c in s.trim().chars() {
        if c.is_whitespace() && last_was_gt {
            pending.push(c);
            continue;
        }
        if c != '<' {
            out.push_str(&pending);
        }
        pending.clear();
        last_was_gt = c == '>';
        out.push(c);
    }
    out
}
