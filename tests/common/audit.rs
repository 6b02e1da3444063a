//! The audit lines (`target: authgate::audit`) the in-process gates of a
//! test binary emit, captured by a global tracing subscriber: as fields
//! ([`install`], [`for_request`]) or as the JSON an operator reads
//! ([`json_log`], [`json_lines`]). One subscriber per test binary: a binary
//! uses one of the two.

use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

/// One audit line: its fields as text.
pub type Line = std::collections::BTreeMap<String, String>;

static LINES: Mutex<Vec<Line>> = Mutex::new(Vec::new());

struct Capture;

struct Fields<'a>(&'a mut Line);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            format!("{value:?}").trim_matches('"').to_string(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "authgate::audit" {
            return;
        }
        let mut line = Line::new();
        event.record(&mut Fields(&mut line));
        if let Ok(mut l) = LINES.lock() {
            l.push(line);
        }
    }
}

/// Installs the capture (once per test binary).
pub fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ =
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture));
    });
}

/// The audit lines with this request id.
pub fn for_request(id: &str) -> Vec<Line> {
    LINES
        .lock()
        .map(|l| {
            l.iter()
                .filter(|x| x.get("request_id").map(String::as_str) == Some(id))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Audit lines of every gate in this test binary (JSON, one per line).
pub fn json_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("authgate::audit=info"))
            .with_writer(move || Writer(Arc::clone(&w)))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("one subscriber per test binary");
        buf
    })
    .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The fields of every [`json_log`] line of `event`.
pub fn json_lines(event: &str) -> Vec<serde_json::Value> {
    let log = json_log();
    let text = String::from_utf8_lossy(&log.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["fields"].clone())
        .filter(|v| v["event"] == event)
        .collect()
}
