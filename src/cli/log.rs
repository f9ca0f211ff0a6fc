//! Logging at the binary edge: where log lines go and how they look.
//!
//! - `text` (default): tracing's human format on stderr, with ANSI colour only when
//!   stderr is a terminal and `NO_COLOR` is unset. When stderr is the journal
//!   (`JOURNAL_STREAM` names stderr's device and inode, as systemd sets it) each line
//!   starts with its syslog priority instead (`<3>` error … `<7>` debug), which journald
//!   turns into the entry's PRIORITY; the journal adds the time itself.
//! - `json`: one JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`,
//!   `message`, `fields` (the event's key/values, typed), and `spans` when inside one.
//!
//! The filter is `--log` (or `ANOMALYD_LOG`), else `RUST_LOG`, else the command's default.
//! [`fatal`] reports the error that ends the process in the same format.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines (priority-prefixed under journald).
    Text,
    /// One JSON object per line.
    Json,
}

/// What the process ended up writing: the format, resolved against the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Text { ansi: bool },
    Journal,
    Json,
}

static STYLE: OnceLock<Style> = OnceLock::new();

/// Installs the global subscriber. `filter` is `--log`; `default` the command's default.
pub(crate) fn init(format: LogFormat, filter: Option<&str>, default: &str) {
    let style = match format {
        LogFormat::Json => Style::Json,
        LogFormat::Text if stderr_is_journal() => Style::Journal,
        LogFormat::Text => Style::Text {
            ansi: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        },
    };
    let _ = STYLE.set(style);
    let rust_log = std::env::var("RUST_LOG").ok();
    let (env_filter, problem) = choose_filter(filter, rust_log.as_deref(), default);
    if let Some(problem) = problem {
        // The subscriber is not installed yet: say it on stderr, in the chosen style.
        eprintln!("{}", line(style, Level::WARN, &problem));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    match style {
        Style::Text { ansi } => builder.with_ansi(ansi).init(),
        Style::Journal => builder.with_ansi(false).event_format(LineFormat::Journal).init(),
        Style::Json => builder.with_ansi(false).event_format(LineFormat::Json).init(),
    }
}

/// The filter: `--log` (or `ANOMALYD_LOG`), else a non-empty `RUST_LOG`, else
/// `default`; an invalid one falls back to `default` with the problem to report.
fn choose_filter(flag: Option<&str>, rust_log: Option<&str>, default: &str) -> (EnvFilter, Option<String>) {
    let wanted = flag.or(rust_log.filter(|s| !s.trim().is_empty()));
    match wanted.map(|w| (w, EnvFilter::try_new(w))) {
        Some((_, Ok(f))) => (f, None),
        None => (EnvFilter::new(default), None),
        Some((w, Err(e))) => (
            EnvFilter::new(default),
            Some(format!("ignoring log filter {w:?}: {e}")),
        ),
    }
}

/// Prints the error that ends the process: `error: …` on a terminal or file, a `<3>`
/// line in the journal, a JSON `ERROR` object under `--log-format json`.
pub(crate) fn fatal(error: &anyhow::Error) {
    let style = STYLE.get().copied().unwrap_or(Style::Text { ansi: false });
    eprintln!("{}", line(style, Level::ERROR, &error_chain(error)));
}

/// One line in `style` outside the subscriber (before it exists, or for [`fatal`]).
fn line(style: Style, level: Level, message: &str) -> String {
    match style {
        Style::Text { .. } => format!("{}: {message}", level.as_str().to_ascii_lowercase()),
        Style::Journal => format!("<{}>{}", priority(level), one_line(message)),
        Style::Json => json_line(level, "anomalyd", message.into(), Map::new(), Vec::new()),
    }
}

/// The `{:#}` chain without repeats: an error whose message already ends with its
/// source's text (`"cannot read x: No such file (os error 2)"` wrapping that io error)
/// would otherwise print the cause twice.
pub(crate) fn error_chain(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) || out.contains(&format!("{text}: ")) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// True when systemd connected stderr to the journal: `JOURNAL_STREAM` is
/// `<device>:<inode>` of stderr (a child that inherited the variable but writes
/// elsewhere must not get journal lines).
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let meta = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| std::fs::File::from(fd).metadata());
    match meta {
        Ok(m) => journal_stream_is(&value.to_string_lossy(), m.dev(), m.ino()),
        Err(_) => false,
    }
}

/// Whether a `JOURNAL_STREAM` value names the file with this device and inode.
fn journal_stream_is(value: &str, dev: u64, ino: u64) -> bool {
    let mut parts = value.trim().splitn(2, ':').map(str::parse::<u64>);
    matches!((parts.next(), parts.next()), (Some(Ok(d)), Some(Ok(i))) if d == dev && i == ino)
}

/// syslog priority of a tracing level (sd-daemon(3)).
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// journald splits entries at newlines; a multi-line message stays one entry.
fn one_line(s: &str) -> String {
    s.replace('\n', "\\n")
}

/// The two line formats tracing-subscriber lacks: journal lines
/// (`<N>target: message key=value…`) and JSON lines (see the module docs).
#[derive(Clone, Copy)]
enum LineFormat {
    Journal,
    Json,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if let LineFormat::Journal = self {
            let mut body = String::new();
            ctx.field_format().format_fields(Writer::new(&mut body), event)?;
            let prio = priority(*meta.level());
            return writeln!(writer, "<{prio}>{}: {}", meta.target(), one_line(&body));
        }
        let mut visitor = JsonFields::default();
        event.record(&mut visitor);
        let spans = ctx
            .event_scope()
            .map(|scope| scope.from_root().map(|s| s.name().to_string()).collect())
            .unwrap_or_default();
        let message = visitor.message.unwrap_or_default();
        writeln!(
            writer,
            "{}",
            json_line(*meta.level(), meta.target(), message, visitor.fields, spans)
        )
    }
}

fn json_line(
    level: Level,
    target: &str,
    message: String,
    fields: Map<String, Value>,
    spans: Vec<String>,
) -> String {
    let mut obj = Map::new();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    obj.insert("timestamp".into(), now.into());
    obj.insert("level".into(), level.as_str().into());
    obj.insert("target".into(), target.into());
    obj.insert("message".into(), message.into());
    obj.insert("fields".into(), Value::Object(fields));
    if !spans.is_empty() {
        obj.insert("spans".into(), spans.into());
    }
    Value::Object(obj).to_string()
}

/// An event's fields as typed JSON values; `message` apart.
#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl JsonFields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for JsonFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and ±∞ have no JSON number: they go as text.
        let v = serde_json::Number::from_f64(value).map_or_else(|| value.to_string().into(), Value::Number);
        self.put(field, v);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that keeps everything for the test to read.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Emits a fixed set of events through `format` and returns the output.
    fn capture<F>(format: F) -> String
    where
        F: FormatEvent<tracing_subscriber::Registry, tracing_subscriber::fmt::format::DefaultFields>
            + Send
            + Sync
            + 'static,
    {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .with_writer(move || writer.clone())
            .event_format(format)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("detector", shard = 0);
            let _guard = span.enter();
            tracing::warn!(
                sensor = "pump 1",
                value = 3.5,
                count = 2u64,
                ok = false,
                "Dropped a reading."
            );
            tracing::error!(error = %std::io::Error::other("broker\ngone"), "Connection lost.");
            tracing::debug!("Detail.");
        });
        buf.text()
    }

    #[test]
    fn json_lines_carry_timestamp_level_target_message_and_typed_fields() {
        let out = capture(LineFormat::Json);
        let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3, "{out}");
        let w = &lines[0];
        assert_eq!(w["level"], "WARN");
        assert_eq!(w["target"], module_path!());
        assert_eq!(w["message"], "Dropped a reading.");
        assert_eq!(w["fields"]["sensor"], "pump 1");
        assert_eq!(w["fields"]["value"], 3.5);
        assert_eq!(w["fields"]["count"], 2);
        assert_eq!(w["fields"]["ok"], false);
        assert_eq!(w["spans"][0], "detector");
        let ts = w["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert_eq!(lines[1]["fields"]["error"], "broker\ngone");
        assert_eq!(lines[2]["level"], "DEBUG");
    }

    #[test]
    fn journal_lines_start_with_the_syslog_priority_and_stay_one_line() {
        let out = capture(LineFormat::Journal);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(
            lines[0].starts_with("<4>") && lines[0].contains("Dropped a reading."),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("sensor=\"pump 1\""), "{}", lines[0]);
        assert!(
            lines[1].starts_with("<3>") && lines[1].contains("broker\\ngone"),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("<7>"));
        assert!(!out.contains('\x1b'), "no ANSI in the journal");
    }

    #[test]
    fn log_flag_beats_rust_log_which_beats_the_default() {
        let text = |f: (EnvFilter, Option<String>)| (f.0.to_string(), f.1.is_some());
        assert_eq!(
            text(choose_filter(Some("debug"), Some("warn"), "info")),
            ("debug".into(), false)
        );
        assert_eq!(
            text(choose_filter(None, Some("warn"), "info")),
            ("warn".into(), false)
        );
        assert_eq!(
            text(choose_filter(None, Some(" "), "info")),
            ("info".into(), false)
        );
        assert_eq!(text(choose_filter(None, None, "info")), ("info".into(), false));
        assert_eq!(
            text(choose_filter(Some("=[bad"), None, "info")),
            ("info".into(), true)
        );
    }

    #[test]
    fn journal_stream_must_name_stderr_itself() {
        assert!(journal_stream_is("8:12345", 8, 12345));
        assert!(!journal_stream_is("8:12345", 8, 12346));
        assert!(!journal_stream_is("8", 8, 12345));
        assert!(!journal_stream_is("x:y", 8, 12345));
    }

    #[test]
    fn error_chain_prints_an_os_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x.toml: {source}")]
        struct ReadError {
            source: std::io::Error,
        }
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let os_text = io.to_string();
        let e = anyhow::Error::new(ReadError { source: io }).context("invalid config x.toml");
        let text = error_chain(&e);
        assert_eq!(text.matches(&os_text).count(), 1, "{text}");
        assert!(
            text.starts_with("invalid config x.toml: cannot read x.toml: "),
            "{text}"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&plain), "outer: inner");
    }

    #[test]
    fn fatal_lines_follow_the_style() {
        assert_eq!(
            line(Style::Text { ansi: true }, Level::ERROR, "boom"),
            "error: boom"
        );
        assert_eq!(line(Style::Journal, Level::ERROR, "a\nb"), "<3>a\\nb");
        let v: Value = serde_json::from_str(&line(Style::Json, Level::ERROR, "boom")).unwrap();
        assert_eq!(
            (v["level"].as_str(), v["message"].as_str()),
            (Some("ERROR"), Some("boom"))
        );
    }
}
