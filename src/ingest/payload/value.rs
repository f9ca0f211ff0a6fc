//! JSON values → checked numbers and times, shared by the `json` and `senml` parsers:
//! finite numbers, timestamps in [2000-01-01, now + 1 day], and the typed errors that
//! name the field. Both parsers hand their values over as a [`Scalar`].

use chrono::DateTime;

use super::{MAX_FUTURE_SECS, MIN_TIMESTAMP, PayloadError, truncate};
use crate::reading::EpochUnit;

/// What the checks here see of a JSON value: its type, and a scalar's number or text.
#[derive(Clone, Copy, Debug)]
pub(super) enum Scalar<'v> {
    Null,
    Bool,
    Number(f64),
    String(&'v str),
    Array,
    Object,
}

/// serde_json's "number out of range" (e.g. `1e400`) is [`PayloadError::NotFinite`]
/// named after the key just before it; any other error is [`PayloadError::NotJson`].
pub(super) fn json_error(text: &str, e: &serde_json::Error) -> PayloadError {
    let message = e.to_string();
    if message.starts_with("number out of range") {
        PayloadError::NotFinite {
            field: key_before(text, e.line(), e.column()),
        }
    } else {
        PayloadError::NotJson { message }
    }
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
pub(super) fn timestamp(v: Scalar<'_>, field: &str, unit: EpochUnit, now: f64) -> Result<f64, PayloadError> {
    let ts = match v {
        Scalar::Number(x) => unit.to_secs(finite(x, field)?),
        Scalar::String(s) => match s.trim().parse::<f64>() {
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
pub(super) fn number(v: Scalar<'_>, field: &str) -> Result<f64, PayloadError> {
    match v {
        Scalar::Number(x) => finite(x, field),
        other => Err(wrong_type(field, "a number", other)),
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

pub(super) fn wrong_type(field: &str, expected: &'static str, got: Scalar<'_>) -> PayloadError {
    let got = match got {
        Scalar::Null => "null",
        Scalar::Bool => "a boolean",
        Scalar::Number(_) => "a number",
        Scalar::String(_) => "a string",
        Scalar::Array => "an array",
        Scalar::Object => "an object",
    };
    PayloadError::WrongType {
        field: field.to_owned(),
        expected,
        got,
    }
}
