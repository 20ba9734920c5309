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

pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

fn load(dir: &Path, kind: &str, escape: bool) -> anyhow::Result<Handlebars<'static>> {
    let mut hb = Handlebars::new();
    if !escape {
        hb.register_escape_fn(handlebars::no_escape);
    }
    for partial in ["_layout", "_reason", "_summary"] {
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
            html: r(&self.html, "HTML")?,
            text: r(&self.text, "text")?,
        })
    }

    /// Sends one message.
    pub async fn send(
        &self,
        envelope: &Envelope<'_>,
        to: &[String],
        reply_to: Option<&str>,
        msg: &Rendered,
        files: Vec<File>,
    ) -> Result<(), String> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(msg.subject.clone())
            .message_id(Some(format!("<{}@{}>", envelope.message_id, self.from.email.domain())));
        for addr in to {
            builder = builder.to(addr.parse::<Mailbox>().map_err(|e| format!("bad recipient {addr}: {e}"))?);
        }
        if let Some(r) = reply_to.and_then(|r| r.parse::<Mailbox>().ok()) {
            builder = builder.reply_to(r);
        }
        let alternative = MultiPart::alternative()
            .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(msg.text.clone()))
            .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(msg.html.clone()));
        let body = if files.is_empty() {
            alternative
        } else {
            files.into_iter().fold(MultiPart::mixed().multipart(alternative), |mp, f| {
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
