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
//!
//! A record borrows what it can from the payload and the params: channel names are
//! `&str`s into the payload text (or the configured names), and a message of a few
//! channels is held inline, so a flat JSON message costs no heap allocation (`object`
//! reads it); only escaped names, nested values, SenML and large messages allocate.
//!
//! Here: the formats, the params, the record type and the entry point; `json` and
//! `senml` parse their formats, `object` reads a JSON payload borrowed, `value`
//! checks numbers and times for both, `error` holds [`PayloadError`], [`field`] reads
//! keys and pointers.

use std::borrow::Cow;
use std::collections::BTreeMap;

use smallvec::SmallVec;

use crate::reading::EpochUnit;

mod error;
pub mod field;
mod json;
mod object;
mod senml;
mod value;

pub use error::PayloadError;
pub use field::{Field, FieldError};
use value::{check_timestamp, finite, number, timestamp, wrong_type};

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

/// One channel of a record: its name (borrowed from the payload or the params where
/// it can be) and its value.
pub type Channel<'a> = (Cow<'a, str>, f64);

/// Channels a record holds without allocating: more than most sensors send.
pub const INLINE_CHANNELS: usize = 8;

/// A record's channels, inline up to [`INLINE_CHANNELS`].
pub type Channels<'a> = SmallVec<[Channel<'a>; INLINE_CHANNELS]>;

/// A payload's records, inline when there is one (the common case).
pub type RecordList<'a> = SmallVec<[Parsed<'a>; 1]>;

/// One parsed record before the sensor id is attached: channel names and values in a
/// stable order (the configured list, else sorted by name). It may hold only some of
/// the sensor's channels (a partial update). It borrows from the payload and the
/// params it was read with.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed<'a> {
    /// Sensor id from the payload when [`PayloadParams::sensor_field`] is set; else
    /// `None` and the caller uses the topic.
    pub sensor: Option<Cow<'a, str>>,
    /// Unix seconds; checked to be in [2000-01-01, now + 1 day].
    pub ts: f64,
    /// `(channel, value)` pairs, all values finite, never empty. A pointer channel is
    /// named by its last token ([`Field::name`]).
    pub channels: Channels<'a>,
    /// The top-level key of a nested object or array that automatic channel discovery
    /// left out (the first one; truncated to 64 bytes): reported, never read. Always
    /// `None` with configured `channels` and for `number` and `senml`.
    pub unselected: Option<String>,
}

/// What one payload gave: every record that could be read and, for a payload of
/// several independent messages (a Telegraf batch), each one that could not.
#[derive(Debug, Default, PartialEq)]
pub struct Records<'a> {
    /// The records read, in payload order (SenML: sorted by time).
    pub records: RecordList<'a>,
    /// The batch elements that could not be read, each a [`PayloadError::InElement`]
    /// naming its index. Always empty for anything but a batch.
    pub rejected: Vec<PayloadError>,
}

/// Reads one payload received at `now` (unix seconds, the gateway clock), keeping what
/// can be read of a batch.
///
/// `json` yields one record, or one per element of a Telegraf batch
/// (`{"metrics": [...]}`, each element read as an unbatched message); `number` one;
/// `senml` one per distinct time, sorted by time.
///
/// # Errors
/// Any [`PayloadError`] that rejects the whole payload (too large, not JSON, a single
/// message that cannot be read). A bad batch element is in [`Records::rejected`].
pub fn read<'a>(bytes: &'a [u8], p: &'a PayloadParams, now: f64) -> Result<Records<'a>, PayloadError> {
    if bytes.len() > p.max_payload_bytes {
        return Err(PayloadError::TooLarge {
            size: bytes.len(),
            limit: p.max_payload_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| PayloadError::NotUtf8)?;
    let one = |records| Records {
        records,
        rejected: Vec::new(),
    };
    match p.format {
        PayloadFormat::Json => json::parse(text, p, now),
        PayloadFormat::Number => parse_number(text, p, now).map(|r| one(smallvec::smallvec![r])),
        PayloadFormat::Senml => senml::parse(text, p, now).map(one),
    }
}

/// [`read`], all or nothing: the records, or the first error.
///
/// # Errors
/// Any [`PayloadError`]; the whole payload is rejected, never partially accepted.
pub fn parse<'a>(bytes: &'a [u8], p: &'a PayloadParams, now: f64) -> Result<RecordList<'a>, PayloadError> {
    let Records { records, rejected } = read(bytes, p, now)?;
    match rejected.into_iter().next() {
        Some(error) => Err(error),
        None => Ok(records),
    }
}

fn parse_number<'a>(text: &str, p: &'a PayloadParams, now: f64) -> Result<Parsed<'a>, PayloadError> {
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
        channels: smallvec::smallvec![(Cow::Borrowed(field.as_str()), value)],
        unselected: None,
    })
}

/// The configured channels present (in order), or all of them (sorted, as BTreeMap
/// is). `None` when the configured ones are all absent: the record is no update.
pub(super) fn select_channels<'a>(
    all: BTreeMap<String, f64>,
    wanted: Option<&'a [Field]>,
) -> Option<Channels<'a>> {
    let Some(list) = wanted else {
        return Some(all.into_iter().map(|(name, v)| (Cow::Owned(name), v)).collect());
    };
    let picked: Channels<'a> = (list.iter())
        .filter_map(|f| all.get(f.name()).map(|&v| (Cow::Borrowed(f.name()), v)))
        .collect();
    (!picked.is_empty()).then_some(picked)
}

/// The first `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
