//! [`PayloadError`]: why a payload was rejected, and the `kind` label it is counted
//! under in `anomalyd_payload_errors_total`.

/// Why a payload was rejected. Per-message: count it under [`PayloadError::kind`],
/// log rate-limited, carry on.
#[derive(thiserror::Error, Debug, PartialEq)]
pub enum PayloadError {
    /// The payload exceeds [`super::PayloadParams::max_payload_bytes`].
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
    /// No timestamp field while [`super::PayloadParams::require_timestamp`] is set.
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
    /// [`super::PayloadParams::sensor_field`] is set but absent or empty in the payload.
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
    /// One element of a Telegraf batch (`{"metrics": [...]}`) could not be read; the
    /// other elements were.
    #[error("`metrics[{index}]`: {error}")]
    InElement {
        /// The element's position in `metrics`, from 0.
        index: usize,
        /// What was wrong with it (its own message, not a `source`: the text above
        /// already includes it, and an error chain would print it twice).
        error: Box<PayloadError>,
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
            Self::InElement { error, .. } => error.kind(),
        }
    }

    /// The top-level key of a nested value no configuration selects, when that is why
    /// the payload was rejected.
    pub fn unselected(&self) -> Option<&str> {
        match self {
            Self::OnlyNested { key } => Some(key),
            Self::InElement { error, .. } => error.unselected(),
            _ => None,
        }
    }
}
