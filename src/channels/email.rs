//! Port emails: handlebars templates (HTML and plain text) under `templates/email/`, sent with
//! lettre over `SMTP_URL`.

use crate::configuration::Settings;
use crate::domain::notifications::{TEMPLATES, subject};
use anyhow::{Context, anyhow};
use handlebars::Handlebars;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    html: Handlebars<'static>,
    text: Handlebars<'static>,
    subjects: Handlebars<'static>,
}

/// A file to attach.
pub struct File {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// How a message names itself: its Message-ID (so a repeat is recognisable), and the delivery
/// record and event it is for (headers `X-Kazoo-Port-Delivery` and `X-Kazoo-Port-Event`).
pub struct Envelope<'a> {
    pub message_id: &'a str,
    pub delivery: &'a str,
    pub event: &'a str,
}

/// A mail's subject and bodies (a stored template may have only one of the two).
pub struct Rendered {
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
}

/// One message: recipients, sender (the default one unless given), and what it says.
pub struct Outgoing<'a> {
    pub to: &'a [String],
    pub cc: &'a [String],
    pub bcc: &'a [String],
    pub from: Option<&'a str>,
    pub reply_to: Option<String>,
    pub rendered: &'a Rendered,
    pub files: Vec<File>,
}

fn mailbox(addr: &str) -> Result<Mailbox, String> {
    addr.parse::<Mailbox>().map_err(|e| format!("bad address {addr}: {e}"))
}

fn load(dir: &Path, kind: &str, escape: bool) -> anyhow::Result<Handlebars<'static>> {
    let mut hb = Handlebars::new();
    if !escape {
        hb.register_escape_fn(handlebars::no_escape);
    }
    for partial in ["_layout", "_reason", "_rejection", "_summary"] {
        let path = dir.join(format!("{partial}.{kind}.hbs"));
        if path.exists() {
            hb.register_template_file(partial, &path).with_context(|| format!("email template {}", path.display()))?;
        }
    }
    for name in TEMPLATES {
        let path = dir.join(format!("{name}.{kind}.hbs"));
        hb.register_template_file(name, &path).with_context(|| format!("email template {}", path.display()))?;
    }
    Ok(hb)
}

impl Mailer {
    /// Reads every template now, so a missing one stops the start, not a delivery.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let dir = settings.templates_dir.join("email");
        let html = load(&dir, "html", true)?;
        let text = load(&dir, "text", false)?;
        let mut subjects = Handlebars::new();
        subjects.register_escape_fn(handlebars::no_escape);
        for name in TEMPLATES {
            subjects.register_template_string(name, subject(name)).map_err(|e| anyhow!("subject of {name}: {e}"))?;
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.smtp_url.expose())
            .map_err(|e| anyhow!("SMTP_URL is not valid: {e}"))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let from: Mailbox = settings.email_from.parse().map_err(|e| anyhow!("EMAIL_FROM is not valid: {e}"))?;
        Ok(Self { transport, from, html, text, subjects })
    }

    pub fn render(&self, template: &str, data: &Value) -> Result<Rendered, String> {
        let r = |hb: &Handlebars<'static>, what: &str| {
            hb.render(template, data).map_err(|e| format!("rendering the {what} of {template}: {e}"))
        };
        Ok(Rendered {
            subject: r(&self.subjects, "subject")?,
            html: Some(r(&self.html, "HTML")?),
            text: Some(r(&self.text, "text")?),
        })
    }

    /// Sends one message.
    pub async fn send(&self, envelope: &Envelope<'_>, out: Outgoing<'_>) -> Result<(), String> {
        // a stored `from` that is not an address is Kazoo's default sender's
        let from = out.from.and_then(|f| f.parse::<Mailbox>().ok()).unwrap_or_else(|| self.from.clone());
        let msg = out.rendered;
        let mut builder = Message::builder()
            .subject(msg.subject.clone())
            .message_id(Some(format!("<{}@{}>", envelope.message_id, from.email.domain())))
            .from(from);
        for addr in out.to {
            builder = builder.to(mailbox(addr)?);
        }
        for addr in out.cc {
            builder = builder.cc(mailbox(addr)?);
        }
        for addr in out.bcc {
            builder = builder.bcc(mailbox(addr)?);
        }
        if let Some(r) = out.reply_to.as_deref().and_then(|r| r.parse::<Mailbox>().ok()) {
            builder = builder.reply_to(r);
        }
        let text = || SinglePart::builder().header(ContentType::TEXT_PLAIN).body(msg.text.clone().unwrap_or_default());
        let html = || SinglePart::builder().header(ContentType::TEXT_HTML).body(msg.html.clone().unwrap_or_default());
        let alternative = match (&msg.html, &msg.text) {
            (Some(_), Some(_)) => MultiPart::alternative().singlepart(text()).singlepart(html()),
            (Some(_), None) => MultiPart::alternative().singlepart(html()),
            _ => MultiPart::alternative().singlepart(text()),
        };
        let body = if out.files.is_empty() {
            alternative
        } else {
            out.files.into_iter().fold(MultiPart::mixed().multipart(alternative), |mp, f| {
                let ct = ContentType::parse(&f.content_type)
                    .unwrap_or(ContentType::parse("application/octet-stream").expect("valid"));
                mp.singlepart(Attachment::new(f.name).body(f.bytes, ct))
            })
        };
        let mut message = builder.multipart(body).map_err(|e| format!("building the message: {e}"))?;
        let headers = message.headers_mut();
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Kazoo-Port-Delivery"),
            envelope.delivery.to_owned(),
        ));
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Kazoo-Port-Event"),
            envelope.event.to_owned(),
        ));
        self.transport.send(message).await.map(|_| ()).map_err(|e| format!("SMTP: {e}"))
    }
}
