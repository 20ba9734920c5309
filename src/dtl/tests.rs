use super::*;
use serde_json::json;

fn data() -> Value {
    json!({
        "account": {"name": "Acme & Sons", "id": "a1"},
        "port_request": {
            "name": "Move <main>",
            "numbers": ["+14155550100", "+14155550101", "+14155550102"],
            "created": {"local": "2026-03-05 14:07:09", "timezone": "America/Los_Angeles"},
            "signee_name": "",
            "transition_reason": {"content": "bill's name", "date": {"local": "2026-12-25 00:00:00"}},
            "zero": "0",
        },
        "items": [{"n": 1}, {"n": 2}],
    })
}

fn r(src: &str) -> String {
    render(src, &data(), false).unwrap()
}

fn esc(src: &str) -> String {
    render(src, &data(), true).unwrap()
}

#[test]
fn variables_dotted_undefined_and_escaped() {
    assert_eq!(r("Hi {{ account.name }}!"), "Hi Acme & Sons!");
    assert_eq!(esc("Hi {{account.name}}!"), "Hi Acme &amp; Sons!");
    assert_eq!(esc("{{ port_request.name|safe }}"), "Move <main>");
    assert_eq!(r("[{{ nothing.at.all }}][{{ account.name.deeper }}]"), "[][]");
    assert_eq!(esc("{{ port_request.transition_reason.content }}"), "bill&#039;s name");
    assert_eq!(r("{{ items.1.n }}"), "2");
    assert_eq!(r("a { b } {x"), "a { b } {x");
}

#[test]
fn conditions() {
    let t = "{% if port_request.signee_name or port_request.created %}yes{% else %}no{% endif %}";
    assert_eq!(r(t), "yes");
    assert_eq!(r("{% if port_request.signee_name %}a{% elif nothing %}b{% else %}c{% endif %}"), "c");
    assert_eq!(r("{% if not nothing and account.id == \"a1\" %}ok{% endif %}"), "ok");
    assert_eq!(r("{% if port_request.zero %}true{% else %}false{% endif %}"), "false");
    assert_eq!(r("{% if \"+14155550101\" in port_request.numbers %}in{% endif %}"), "in");
    assert_eq!(r("{% if 3 > 2 %}gt{% endif %}{% if items|length >= 2 %}ge{% endif %}"), "gtge");
    assert_eq!(r("{% ifequal account.id \"a1\" %}eq{% else %}ne{% endifequal %}"), "eq");
}

#[test]
fn loops_firstof_with_and_comments() {
    assert_eq!(
        r("{% for i in items %}{{ forloop.counter }}:{{ i.n }}{% if not forloop.last %},{% endif %}{% endfor %}"),
        "1:1,2:2"
    );
    assert_eq!(r("{% for i in nothing %}x{% empty %}none{% endfor %}"), "none");
    assert_eq!(r("{% for i in items reversed %}{{ i.n }}{% endfor %}"), "21");
    assert_eq!(r("{% for k, v in account %}{{ k }}={{ v }};{% endfor %}"), "id=a1;name=Acme & Sons;");
    assert_eq!(r("{% firstof port_request.signee_name \"-\" %}"), "-");
    assert_eq!(esc("{% firstof nothing account.name %}"), "Acme &amp; Sons");
    assert_eq!(r("{% firstof port_request.created.local|date:\"j M\" %}"), "5 Mar");
    assert_eq!(r("{% with n=account.name %}{{ n|upper }}{% endwith %}"), "ACME & SONS");
    assert_eq!(r("a{# note #}b{% comment %}gone {{ x }}{% endcomment %}c"), "abc");
    assert_eq!(
        render("{% autoescape off %}{{ account.name }}{% endautoescape %}", &data(), true).unwrap(),
        "Acme & Sons"
    );
}

#[test]
fn kazoo_filters() {
    assert_eq!(r(r#"{{ port_request.created.local|date:"l, F j, Y h:i A" }}"#), "Thursday, March 5, 2026 02:07 PM");
    assert_eq!(
        r(r#"{{ port_request.transition_reason.date.local|date:"F j, Y \\a\\t h:i A" }}"#),
        "December 25, 2026 at 12:00 AM"
    );
    assert_eq!(r(r#"{{ port_request.numbers|join:", " }}"#), "+14155550100, +14155550101, +14155550102");
    assert_eq!(
        r(r#"{{ port_request.numbers|join:", "|stringformat:"s"|wordwrap:20 }}"#),
        "+14155550100, \n+14155550101, \n+14155550102"
    );
    assert_eq!(r(r#"{{ nothing|default:"none" }}|{{ account.id|default:"x" }}"#), "none|a1");
    assert_eq!(
        r(r#"{{ 5|stringformat:"03d" }}|{{ 2.5|stringformat:".2f" }}|{{ "a"|stringformat:"-3s" }}|"#),
        "005|2.50|a  |"
    );
    assert_eq!(r("{{ items|length }} item{{ items|pluralize }}"), "2 items");
    assert_eq!(r(r#"{{ account.name|truncatechars:7 }}"#), "Acme...");
}

#[test]
fn date_letters() {
    let t = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap().and_hms_opt(0, 0, 5).unwrap();
    assert_eq!(
        date::format(&t, "D d M y, N, P, f a, S, t, L, w, G:i:s"),
        "Tue 01 Sep 26, Sept., midnight, 12 a.m., st, 30, False, 2, 0:00:05"
    );
    let noon = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap().and_hms_opt(12, 30, 0).unwrap();
    assert_eq!(date::format(&noon, "P, c, U, L, \\Y"), "12:30 p.m., 2024-02-29T12:30:00, 1709209800, True, Y");
}

#[test]
fn wordwrap_as_erlydtl() {
    let chars = |s: &str| s.chars().map(String::from).collect::<Vec<_>>().into_iter();
    assert_eq!(filters::wordwrap(chars("aaa bbb"), 4), "aaa \nbbb");
    assert_eq!(filters::wordwrap(chars("one two\nthree"), 100), "one two\nthree");
    assert_eq!(filters::wordwrap(chars("abcdefghij"), 3), "abcdefghij");
    // a joined list is wrapped by its pieces until stringformat flattens it
    assert_eq!(r(r#"{{ port_request.numbers|join:", "|wordwrap:20 }}"#), "+14155550100, +14155550101, +14155550102");
}

#[test]
fn broken_or_dangerous_templates_are_errors() {
    for bad in [
        "{% if x %}never closed",
        "{{ x|no_such_filter }}",
        "{% include \"/etc/passwd\" %}",
        "{% extends \"base.html\" %}",
        "{% load something %}",
        "{{ unclosed",
        "{% for in %}{% endfor %}",
        "{% frobnicate %}",
        "{{ \"unterminated }}",
        "{% endif %}",
    ] {
        assert!(matches!(Template::parse(bad), Err(DtlError::Parse(_))), "{bad}");
    }
    let deep = "{% if x %}".repeat(100) + &"{% endif %}".repeat(100);
    assert!(Template::parse(&deep).is_err(), "nesting is bounded");
    let big = json!({"xs": (0..1000).collect::<Vec<_>>()});
    let bomb = "{% for a in xs %}{% for b in xs %}{% for c in xs %}x{% endfor %}{% endfor %}{% endfor %}";
    assert!(matches!(render(bomb, &big, false), Err(DtlError::Render(_))), "work is bounded");
    let limits = Limits { max_output: 100, ..Limits::default() };
    let wide = Template::parse_with("{% for a in xs %}{{ a }}{% endfor %}", limits).unwrap();
    assert!(matches!(wide.render(&big, false), Err(DtlError::Render(_))), "output is bounded");
    assert!(Template::parse_with("x".repeat(10).as_str(), Limits { max_source: 5, ..Limits::default() }).is_err());
}
