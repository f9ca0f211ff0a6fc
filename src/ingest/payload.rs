//! Payload parsing: one MQTT message body → zero or more timestamped records.
//!
//! Owns the wire formats (`json`, `number`, SenML per RFC 8428), their limits and the
//! typed [`PayloadError`] whose [`PayloadError::kind`] labels the bad-input metric.
//! JSON fields are top-level keys or RFC 6901 pointers ([`field`]). A record may carry
//! only some of a sensor's channels (a partial update): turning those into full
//! readings is [`super::assemble`]'s job, not the parser's.
//! It is pure and never panics on any input (a proptest checks this). It does not
//! know about MQTT, topics, sensor cardinality caps or ordering: the ingest loop maps
//! the topic to a sensor id and the detector rejects out-of-order timestamps.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde_json::{Map, Value};

use crate::reading::EpochUnit;

pub mod field;
mod senml;

pub use field::{Field, FieldError};

/// Default for [`PayloadParams::max_payload_bytes`]: 64 KiB, far above any sane
/// telemetry message and small enough that a hostile one costs nothing.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Earliest accepted timestamp, 2000-01-01T00:00:00Z in unix seconds. Anything earlier
/// is a device with an unset clock (1970) or a unit mistake.
pub const MIN_TIMESTAMP: f64 = 946_684_800.0;

/// How far (seconds) a timestamp may lie ahead of the gateway clock: one day tolerates
/// skewed device clocks but rejects milliseconds sent as seconds.
pub const MAX_FUTURE_SECS: f64 = 86_400.0;

/// Wire format of a telemetry payload.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// One JSON object: `{"ts": 1700000000.5, "temperature": 21.5, ...}`.
    Json,
    /// One number as text (`"21.5"`), stamped with the arrival time.
    Number,
    /// A SenML JSON array (RFC 8428); one record per distinct resolved time.
    Senml,
}

/// How to read payloads; built by the config module, which owns defaults and checks.
#[derive(Clone, Debug, PartialEq)]
pub struct PayloadParams {
    /// Wire format. Default `json`.
    pub format: PayloadFormat,
    /// JSON field (key or pointer) holding the timestamp (a unix epoch as a number or
    /// numeric string, or an RFC 3339 string). Default `"ts"`. Unused for `number` and
    /// `senml`.
    pub timestamp_field: Field,
    /// Unit of a numeric timestamp (`auto`: seconds, or ms / µs / ns by magnitude).
    pub timestamp_unit: EpochUnit,
    /// When true a JSON payload without `timestamp_field` is rejected with
    /// [`PayloadError::MissingTimestamp`]; when false (default) it is stamped with the
    /// arrival time `now`, which suits gateways whose devices have no clock.
    pub require_timestamp: bool,
    /// Fixed channel list (keys or pointers), in this order; those present must be
    /// numeric, and a record carrying none of them is rejected. `None` (default): every
    /// numeric top-level field except the timestamp and sensor fields, sorted by name;
    /// other scalars are ignored, and a nested object or array is reported in
    /// [`Parsed::unselected`], never read as channels.
    pub channels: Option<Vec<Field>>,
    /// Take the sensor id from this JSON string field (key or pointer) instead of the
    /// topic. For `senml` the only meaningful value is `"bn"`: the base name (trailing
    /// `:`, `/` and `.` trimmed) becomes the sensor id. Default `None`.
    pub sensor_field: Option<Field>,
    /// Channel name for `number` payloads and for SenML records without a name.
    /// Default `"value"`.
    pub number_channel: String,
    /// Larger payloads are rejected before any parsing. Default 64 KiB.
    pub max_payload_bytes: usize,
}

impl Default for PayloadParams {
    fn default() -> Self {
        Self {
            format: PayloadFormat::Json,
            timestamp_field: Field::key("ts"),
            timestamp_unit: EpochUnit::Auto,
            require_timestamp: false,
            channels: None,
            sensor_field: None,
            number_channel: "value".to_owned(),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }
}

/// Why a payload was rejected. Per-message: count it under [`PayloadError::kind`],
/// log rate-limited, carry on.
#[derive(thiserror::Error, Debug, PartialEq)]
pub enum PayloadError {
    /// The payload exceeds [`PayloadParams::max_payload_bytes`].
    #[error("payload is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Payload size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The payload is not UTF-8 text.
    #[error("payload is not valid UTF-8")]
    NotUtf8,
    /// The payload is not JSON (for `json` and `senml`).
    #[error("payload is not valid JSON: {message}")]
    NotJson {
        /// The JSON parser's message, with line and column.
        message: String,
    },
    /// A field (or the whole payload, `<payload>`) has the wrong JSON type.
    #[error("field `{field}` must be {expected}, got {got}")]
    WrongType {
        /// Field name, `<payload>`, or a SenML path such as `[2].v`.
        field: String,
        /// What was expected, e.g. "a number".
        expected: &'static str,
        /// What was found, e.g. "a string".
        got: &'static str,
    },
    /// A number overflows f64 (e.g. `1e400`) or is NaN/infinite.
    #[error("field `{field}` is not a finite number")]
    NotFinite {
        /// Field name; for JSON overflow, the key just before the bad number.
        field: String,
    },
    /// No timestamp field while [`PayloadParams::require_timestamp`] is set.
    #[error("timestamp field `{field}` is missing")]
    MissingTimestamp {
        /// The configured timestamp field.
        field: String,
    },
    /// A timestamp string that is neither a number nor RFC 3339.
    #[error("timestamp {value:?} is neither unix seconds nor RFC 3339")]
    BadTimestamp {
        /// The offending text (truncated to 64 bytes).
        value: String,
    },
    /// A timestamp before 2000-01-01 or more than a day ahead of the gateway clock.
    #[error(
        "timestamp {ts} is before 2000-01-01 or more than a day in the future \
         (milliseconds instead of seconds?)"
    )]
    AbsurdTimestamp {
        /// The timestamp in unix seconds.
        ts: f64,
    },
    /// None of the configured channels is in the payload.
    #[error("none of the configured channels ({channels}) is in the payload")]
    MissingChannel {
        /// The configured channels, comma separated.
        channels: String,
    },
    /// The payload holds no numeric channel at all.
    #[error("payload has no numeric channels")]
    NoChannels,
    /// No numeric top-level field, only a nested object or array that no `channels`
    /// entry selects (e.g. Telegraf's `fields`).
    #[error(
        "payload has no numeric top-level channels and `{key}` is a nested object or array \
         that no configuration selects (list its fields in `channels` as JSON pointers, \
         e.g. \"/{key}/<name>\")"
    )]
    OnlyNested {
        /// The top-level key of the first nested value (truncated to 64 bytes).
        key: String,
    },
    /// [`PayloadParams::sensor_field`] is set but absent or empty in the payload.
    #[error("sensor field `{field}` is missing or empty")]
    MissingSensor {
        /// The configured sensor field.
        field: String,
    },
    /// A channel appears twice for the same time (SenML).
    #[error("channel `{name}` appears twice at the same time")]
    DuplicateChannel {
        /// The channel name.
        name: String,
    },
}

impl PayloadError {
    /// Short snake_case label for the bad-input metric, e.g. `"not_json"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::NotUtf8 => "not_utf8",
            Self::NotJson { .. } => "not_json",
            Self::WrongType { .. } => "wrong_type",
            Self::NotFinite { .. } => "not_finite",
            Self::MissingTimestamp { .. } => "missing_timestamp",
            Self::BadTimestamp { .. } => "bad_timestamp",
            Self::AbsurdTimestamp { .. } => "absurd_timestamp",
            Self::MissingChannel { .. } => "missing_channel",
            Self::NoChannels | Self::OnlyNested { .. } => "no_channels",
            Self::MissingSensor { .. } => "missing_sensor",
            Self::DuplicateChannel { .. } => "duplicate_channel",
        }
    }

    /// The top-level key of a nested value no configuration selects, when that is why
    /// the payload was rejected.
    pub fn unselected(&self) -> Option<&str> {
        match self {
            Self::OnlyNested { key } => Some(key),
            _ => None,
        }
    }
}

/// One parsed record before the sensor id is attached: channel names and values in a
/// stable order (the configured list, else sorted by name). It may hold only some of
/// the sensor's channels (a partial update).
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    /// Sensor id from the payload when [`PayloadParams::sensor_field`] is set; else
    /// `None` and the caller uses the topic.
    pub sensor: Option<String>,
    /// Unix seconds; checked to be in [2000-01-01, now + 1 day].
    pub ts: f64,
    /// `(channel, value)` pairs, all values finite, never empty. A pointer channel is
    /// named by its last token ([`Field::name`]).
    pub channels: Vec<(String, f64)>,
    /// The top-level key of a nested object or array that automatic channel discovery
    /// left out (the first one; truncated to 64 bytes): reported, never read. Always
    /// `None` with configured `channels` and for `number` and `senml`.
    pub unselected: Option<String>,
}

/// Parses one payload received at `now` (unix seconds, the gateway clock).
///
/// `json` and `number` yield exactly one record; `senml` one per distinct time,
/// sorted by time.
///
/// # Errors
/// Any [`PayloadError`]; the whole payload is rejected, never partially accepted.
pub fn parse(bytes: &[u8], p: &PayloadParams, now: f64) -> Result<Vec<Parsed>, PayloadError> {
    if bytes.len() > p.max_payload_bytes {
        return Err(PayloadError::TooLarge {
            size: bytes.len(),
            limit: p.max_payload_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| PayloadError::NotUtf8)?;
    match p.format {
        PayloadFormat::Json => parse_json(text, p, now).map(|r| vec![r]),
        PayloadFormat::Number => parse_number(text, p, now).map(|r| vec![r]),
        PayloadFormat::Senml => senml::parse(text, p, now),
    }
}

fn parse_number(text: &str, p: &PayloadParams, now: f64) -> Result<Parsed, PayloadError> {
    let field = &p.number_channel;
    let value: f64 = text.trim().parse().map_err(|_| PayloadError::WrongType {
        field: field.clone(),
        expected: "a number",
        got: "text",
    })?;
    // Rust's parser accepts "NaN", "inf" and overflows to infinity.
    let value = finite(value, field)?;
    Ok(Parsed {
        sensor: None,
        ts: now,
        channels: vec![(field.clone(), value)],
        unselected: None,
    })
}

fn parse_json(text: &str, p: &PayloadParams, now: f64) -> Result<Parsed, PayloadError> {
    let obj = match parse_json_value(text)? {
        Value::Object(obj) => obj,
        other => return Err(wrong_type("<payload>", "a JSON object", &other)),
    };
    let ts_field = &p.timestamp_field;
    let ts = match ts_field.get(&obj) {
        Some(v) => timestamp(v, ts_field.as_str(), p.timestamp_unit, now)?,
        None if p.require_timestamp => {
            return Err(PayloadError::MissingTimestamp {
                field: ts_field.as_str().to_owned(),
            });
        }
        None => now,
    };
    let sensor = match &p.sensor_field {
        Some(field) => Some(sensor_from(&obj, field)?),
        None => None,
    };
    let (channels, unselected) = match &p.channels {
        Some(list) => (configured_channels(&obj, list)?, None),
        None => discovered_channels(&obj, p)?,
    };
    Ok(Parsed {
        sensor,
        ts,
        channels,
        unselected,
    })
}

/// The configured channels present, in the configured order; none present is an error.
fn configured_channels(obj: &Map<String, Value>, list: &[Field]) -> Result<Vec<(String, f64)>, PayloadError> {
    let mut channels = Vec::with_capacity(list.len());
    for field in list {
        if let Some(v) = field.get(obj) {
            channels.push((field.name().to_owned(), number(v, field.as_str())?));
        }
    }
    if channels.is_empty() {
        let names: Vec<&str> = list.iter().map(Field::as_str).collect();
        return Err(PayloadError::MissingChannel {
            channels: names.join(", "),
        });
    }
    Ok(channels)
}

/// `(channel, value)` pairs of one record.
type Channels = Vec<(String, f64)>;

/// Every numeric top-level field but the timestamp and sensor fields, sorted by name,
/// and the first nested object or array that none of them selects.
fn discovered_channels(
    obj: &Map<String, Value>,
    p: &PayloadParams,
) -> Result<(Channels, Option<String>), PayloadError> {
    let mut channels = Vec::new();
    let mut unselected = None;
    for (name, v) in obj {
        let selected = name == p.timestamp_field.top_key()
            || p.sensor_field.as_ref().is_some_and(|f| f.top_key() == name);
        match v {
            _ if selected => {}
            Value::Number(_) => channels.push((name.clone(), number(v, name)?)),
            Value::Object(_) | Value::Array(_) if unselected.is_none() => {
                unselected = Some(truncate(name, 64).to_owned());
            }
            _ => {}
        }
    }
    if channels.is_empty() {
        return Err(match unselected {
            Some(key) => PayloadError::OnlyNested { key },
            None => PayloadError::NoChannels,
        });
    }
    // Sort explicitly: serde_json's map keeps insertion order if any crate in the build
    // enables its `preserve_order` feature.
    channels.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((channels, unselected))
}

fn sensor_from(obj: &Map<String, Value>, field: &Field) -> Result<String, PayloadError> {
    match field.get(obj) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None => Err(PayloadError::MissingSensor {
            field: field.as_str().to_owned(),
        }),
        Some(other) => Err(wrong_type(field.as_str(), "a string", other)),
    }
}

/// Parses JSON, mapping serde_json's "number out of range" (e.g. `1e400`) to
/// [`PayloadError::NotFinite`] named after the key just before it.
pub(super) fn parse_json_value(text: &str) -> Result<Value, PayloadError> {
    serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        if message.starts_with("number out of range") {
            PayloadError::NotFinite {
                field: key_before(text, e.line(), e.column()),
            }
        } else {
            PayloadError::NotJson { message }
        }
    })
}

/// Best-effort name of the object key preceding (line, column), both 1-based bytes.
fn key_before(text: &str, line: usize, column: usize) -> String {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let end = line_start + column;
    let head = text.get(..end).unwrap_or(text);
    let key = head
        .rfind(':')
        .map(|colon| head[..colon].trim_end())
        .and_then(|h| h.strip_suffix('"'))
        .and_then(|h| h.rfind('"').map(|q| &h[q + 1..]));
    key.unwrap_or("<number>").to_owned()
}

/// Reads a timestamp: a number or numeric string (an epoch in `unit`), or an RFC 3339
/// string.
pub(super) fn timestamp(v: &Value, field: &str, unit: EpochUnit, now: f64) -> Result<f64, PayloadError> {
    let ts = match v {
        Value::Number(_) => unit.to_secs(number(v, field)?),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(ts) => unit.to_secs(finite(ts, field)?),
            Err(_) => {
                let dt = DateTime::parse_from_rfc3339(s.trim()).map_err(|_| PayloadError::BadTimestamp {
                    value: truncate(s, 64).to_owned(),
                })?;
                dt.timestamp() as f64 + f64::from(dt.timestamp_subsec_nanos()) * 1e-9
            }
        },
        other => {
            return Err(wrong_type(field, "unix seconds or an RFC 3339 string", other));
        }
    };
    check_timestamp(ts, now)
}

/// Rejects timestamps before 2000 or more than [`MAX_FUTURE_SECS`] ahead of `now`.
pub(super) fn check_timestamp(ts: f64, now: f64) -> Result<f64, PayloadError> {
    if (MIN_TIMESTAMP..=now + MAX_FUTURE_SECS).contains(&ts) {
        Ok(ts)
    } else {
        Err(PayloadError::AbsurdTimestamp { ts })
    }
}

/// A JSON number as a finite f64.
pub(super) fn number(v: &Value, field: &str) -> Result<f64, PayloadError> {
    match v.as_f64() {
        Some(x) if v.is_number() => finite(x, field),
        _ => Err(wrong_type(field, "a number", v)),
    }
}

pub(super) fn finite(x: f64, field: &str) -> Result<f64, PayloadError> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(PayloadError::NotFinite {
            field: field.to_owned(),
        })
    }
}

pub(super) fn wrong_type(field: &str, expected: &'static str, got: &Value) -> PayloadError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    PayloadError::WrongType {
        field: field.to_owned(),
        expected,
        got,
    }
}

/// The configured channels present (in order), or all of them (sorted, as BTreeMap
/// is). `None` when the configured ones are all absent: the record is no update.
pub(super) fn select_channels(
    all: BTreeMap<String, f64>,
    wanted: Option<&[Field]>,
) -> Option<Vec<(String, f64)>> {
    let Some(list) = wanted else {
        return Some(all.into_iter().collect());
    };
    let picked: Vec<(String, f64)> = (list.iter())
        .filter_map(|f| all.get(f.name()).map(|&v| (f.name().to_owned(), v)))
        .collect();
    (!picked.is_empty()).then_some(picked)
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
