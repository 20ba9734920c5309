//! The Letter of Authorization PDF: an HTML template found by Kazoo's lookup order (Kazoo's own
//! ErlyDTL `.tmpl` overrides, or this service's handlebars `.hbs`), rendered to PDF by wkhtmltopdf — without a shell, with a timeout, a few at a time, on
//! temporary files that are always removed. PDFs are cached by the HTML they come from, so a
//! repeat request for the same request revision does not render again.

use crate::app::error::AppError;
use crate::domain::attachments::check_name;
use crate::domain::ids::AccountId;
use crate::store::dbs;
use crate::store::directory::Directory;
use bytes::Bytes;
use handlebars::Handlebars;
use moka::future::Cache;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::Semaphore;

const TEMPLATE_DOC: &str = "pdf.loa";
/// What Erlang's `http_uri:encode` escapes (Kazoo names a carrier's LOA template so).
const URI_COMPONENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b';')
    .add(b'/')
    .add(b'?')
    .add(b':')
    .add(b'@')
    .add(b'&')
    .add(b'=')
    .add(b'+')
    .add(b'$')
    .add(b',')
    .add(b'<')
    .add(b'>')
    .add(b'#')
    .add(b'%')
    .add(b'"')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'[')
    .add(b']')
    .add(b'`');
const DEFAULT_TEMPLATE: &str = "loa.hbs";
const EVIDENCE_TEMPLATE: &str = "evidence.hbs";

pub struct LoaRenderer {
    program: String,
    templates_dir: PathBuf,
    timeout: Duration,
    permits: Semaphore,
    pdfs: Cache<[u8; 32], Letter>,
    compiled: Cache<String, Arc<Compiled>>,
}

/// A rendered letter: the PDF, and the SHA-256 of the HTML it was made from, which names its
/// content (a PDF renderer need not make the same bytes twice).
#[derive(Clone)]
pub struct Letter {
    pub pdf: Bytes,
    pub content_sha256: String,
}

/// A compiled template and where it came from (for errors and cache keys).
pub struct Template {
    pub origin: String,
    registry: Arc<Compiled>,
}

/// Which syntax, hence which data, a template takes.
enum Engine {
    /// This service's: handlebars with `domain::loa::template_data`.
    Handlebars(Handlebars<'static>),
    /// Kazoo's `.tmpl`: ErlyDTL syntax with Kazoo's data (`domain::loa::kazoo_data`), escaped.
    Django(crate::dtl::Template),
}

/// A compiled template and the hash of its source.
struct Compiled {
    engine: Engine,
    version: String,
}

const NAME: &str = "loa";

/// Compiles `source`, the template `name` (`.tmpl`: Kazoo's syntax) from `origin`.
fn compile(name: &str, origin: &str, source: &str) -> Result<Arc<Compiled>, AppError> {
    let version = hex::encode(Sha256::digest(source.as_bytes()));
    let engine = if name.ends_with(".tmpl") {
        Engine::Django(
            crate::dtl::Template::parse(source)
                .map_err(|e| AppError::Unavailable(format!("the LOA template {origin} cannot be used: {e}")))?,
        )
    } else {
        let mut registry = Handlebars::new();
        registry
            .register_template_string(NAME, source)
            .map_err(|e| AppError::Unavailable(format!("the LOA template {origin} is not valid handlebars: {e}")))?;
        Engine::Handlebars(registry)
    };
    Ok(Arc::new(Compiled { engine, version }))
}

impl Template {
    /// Kazoo's kind of template, which takes Kazoo's data.
    pub fn is_kazoos(&self) -> bool {
        matches!(self.registry.engine, Engine::Django(_))
    }
}

impl LoaRenderer {
    pub fn new(program: &str, templates_dir: PathBuf, timeout: Duration, cache_ttl: Duration) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            program: program.to_owned(),
            templates_dir,
            timeout,
            permits: Semaphore::new(cores),
            pdfs: Cache::builder()
                .max_capacity(16 * 1024 * 1024)
                .weigher(|_, v: &Letter| v.pdf.len().try_into().unwrap_or(u32::MAX))
                .build(),
            compiled: Cache::builder().max_capacity(256).time_to_live(cache_ttl).build(),
        }
    }

    /// The template attachment `name` of `pdf.loa` in `db`, if there is one.
    async fn stored_template(&self, directory: &Directory, db: &str, name: &str) -> Result<Option<Template>, AppError> {
        let Some(doc) = directory.doc(db, TEMPLATE_DOC).await? else { return Ok(None) };
        let Some(stub) = doc.get("_attachments").and_then(|a| a.get(name)) else { return Ok(None) };
        let digest = stub.get("digest").and_then(Value::as_str).unwrap_or_default();
        let key = format!("{db}/{name}/{digest}");
        if let Some(registry) = self.compiled.get(&key).await {
            return Ok(Some(Template { origin: key, registry }));
        }
        let Some((_, bytes)) = directory.couch().get_attachment(db, TEMPLATE_DOC, name).await? else { return Ok(None) };
        let registry = compile(name, &key, &String::from_utf8_lossy(&bytes))?;
        self.compiled.insert(key.clone(), registry.clone()).await;
        Ok(Some(Template { origin: key, registry }))
    }

    async fn file_template(&self, name: &str) -> Result<Option<Template>, AppError> {
        let path = self.templates_dir.join("loa").join(name);
        let key = path.display().to_string();
        if let Some(registry) = self.compiled.get(&key).await {
            return Ok(Some(Template { origin: key, registry }));
        }
        let Ok(source) = tokio::fs::read_to_string(&path).await else { return Ok(None) };
        let registry = compile(name, &key, &source)?;
        self.compiled.insert(key.clone(), registry.clone()).await;
        Ok(Some(Template { origin: key, registry }))
    }

    /// The letter cached under `key` (see `cache_key`), if any.
    pub async fn cached(&self, key: &[u8; 32]) -> Option<Letter> {
        let hit = self.pdfs.get(key).await;
        if hit.is_some() {
            crate::metrics::get().loa_cache_hits.inc();
        }
        hit
    }

    /// Kazoo's order: the reseller's `pdf.loa`, then the same in `system_config`, each with
    /// Kazoo's `<carrier>.tmpl` (the carrier lower-cased and URI-encoded), ours `<carrier>.hbs`,
    /// then `loa.tmpl` and `loa.hbs`; then the shipped files under `templates/loa/`. A stored
    /// template that cannot be compiled is passed over (and logged): the letter is still made.
    pub async fn find_templates(
        &self,
        directory: &Directory,
        reseller: &AccountId,
        carrier: Option<&str>,
    ) -> Result<Vec<Template>, AppError> {
        let mut names = Vec::new();
        if let Some(c) = carrier.map(|c| c.trim().to_lowercase()).filter(|c| !c.is_empty()) {
            names.push(format!("{}.tmpl", utf8_percent_encode(&c, URI_COMPONENT)));
            names.push(format!("{c}.hbs"));
        }
        names.extend(["loa.tmpl".to_owned(), DEFAULT_TEMPLATE.to_owned()]);
        names.retain(|n| check_name(n).is_ok());
        let mut found = Vec::new();
        for db in [reseller.db_name(), dbs::SYSTEM_CONFIG.to_owned()] {
            for name in &names {
                match self.stored_template(directory, &db, name).await {
                    Ok(Some(t)) => found.push(t),
                    Ok(None) => {}
                    Err(AppError::Unavailable(why)) => tracing::warn!(%why, "a stored LOA template is passed over"),
                    Err(e) => return Err(e),
                }
            }
        }
        for name in names.iter().filter(|n| n.ends_with(".hbs")) {
            if let Some(t) = self.file_template(name).await? {
                found.push(t);
                return Ok(found);
            }
        }
        if found.is_empty() {
            return Err(AppError::Unavailable(format!(
                "no LOA template: none in CouchDB and no {} (TEMPLATES_DIR)",
                self.templates_dir.join("loa").join(DEFAULT_TEMPLATE).display()
            )));
        }
        Ok(found)
    }

    /// The letter's HTML from `template`: Kazoo's templates get Kazoo's data (`kazoo`), ours
    /// ours (`data`).
    pub fn render_html(template: &Template, data: &Value, kazoo: &Value) -> Result<String, AppError> {
        let failed =
            |e: String| AppError::Unavailable(format!("the LOA template {} cannot be rendered: {e}", template.origin));
        match &template.registry.engine {
            Engine::Handlebars(registry) => registry.render(NAME, data).map_err(|e| failed(e.to_string())),
            Engine::Django(t) => t.render(kazoo, true).map_err(|e| failed(e.to_string())),
        }
    }

    /// The evidence page of a signed letter (`templates/loa/evidence.hbs`), from the LOA's data
    /// with its `signature`.
    pub fn evidence_html(&self, data: &Value) -> Result<String, AppError> {
        let path = self.templates_dir.join("loa").join(EVIDENCE_TEMPLATE);
        let source = std::fs::read_to_string(&path).map_err(|e| {
            AppError::Unavailable(format!("the evidence template {} cannot be read: {e}", path.display()))
        })?;
        let mut registry = Handlebars::new();
        registry.set_strict_mode(false);
        registry
            .render_template(&source, data)
            .map_err(|e| AppError::Unavailable(format!("the evidence template cannot be rendered: {e}")))
    }

    /// Renders `html` to PDF and keeps it under `key`.
    pub async fn render_cached(&self, key: [u8; 32], html: &str) -> Result<Letter, AppError> {
        let m = crate::metrics::get();
        let timer = m.loa_render_seconds.start_timer();
        let rendered = self.render(html).await;
        timer.observe_duration();
        m.loa_renders.with_label_values(&[if rendered.is_ok() { "ok" } else { "error" }]).inc();
        let letter = Letter { pdf: rendered?, content_sha256: hex::encode(Sha256::digest(html.as_bytes())) };
        self.pdfs.insert(key, letter.clone()).await;
        Ok(letter)
    }

    /// What the PDF depends on: the revisions of the documents it is made from, the template
    /// and the day it is printed on. Cheap to compute, so a cached PDF costs one lookup.
    pub fn cache_key(parts: &[&str], template: &Template) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts.iter().copied().chain([template.origin.as_str()]) {
            h.update(p.as_bytes());
            h.update([0]);
        }
        h.update(template.registry.version.as_bytes());
        h.finalize().into()
    }

    async fn render(&self, html: &str) -> Result<Bytes, AppError> {
        let _permit = self.permits.acquire().await.map_err(|_| AppError::Unavailable("shutting down".into()))?;
        // removed when dropped, whatever happens below
        let dir = tempfile::Builder::new()
            .prefix("kpr-loa-")
            .tempdir()
            .map_err(|e| AppError::Unavailable(format!("cannot create a temporary directory: {e}")))?;
        let (input, output) = (dir.path().join("loa.html"), dir.path().join("loa.pdf"));
        tokio::fs::write(&input, html)
            .await
            .map_err(|e| AppError::Unavailable(format!("cannot write a temporary file: {e}")))?;
        let child = Command::new(&self.program)
            .args(["--quiet", "--encoding", "utf-8", "--page-size", "Letter", "--disable-javascript"])
            .args(["--disable-local-file-access", "--margin-top", "14mm", "--margin-bottom", "14mm"])
            .args(["--margin-left", "16mm", "--margin-right", "16mm"])
            .arg(&input)
            .arg(&output)
            .env("QT_QPA_PLATFORM", "offscreen")
            .env("XDG_RUNTIME_DIR", dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => AppError::Unavailable(format!(
                    "the LOA renderer '{}' cannot be run ({e}); install wkhtmltopdf or set WKHTMLTOPDF",
                    self.program
                )),
                _ => AppError::Unavailable(format!("the LOA renderer cannot be started: {e}")),
            })?;
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(AppError::RendererFailed(format!("the LOA renderer failed: {e}"))),
            Err(_) => {
                return Err(AppError::Unavailable(format!(
                    "the LOA renderer did not finish within {} s",
                    self.timeout.as_secs()
                )));
            }
        };
        // wkhtmltopdf exits 1 for a blocked resource yet writes a good PDF: trust the file
        match tokio::fs::read(&output).await {
            Ok(pdf) if pdf.starts_with(b"%PDF") => Ok(Bytes::from(crate::domain::loa::same_bytes_each_render(pdf))),
            _ => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let why = stderr.lines().rev().find(|l| !l.trim().is_empty() && !l.contains("XDG_RUNTIME_DIR"));
                Err(AppError::RendererFailed(format!(
                    "the LOA renderer failed ({}): {}",
                    out.status,
                    why.unwrap_or("no PDF was written")
                )))
            }
        }
    }
}
