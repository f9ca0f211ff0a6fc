//! `format = "json"`: one object → one record. Owns where the timestamp, sensor id and
//! channels are found (configured keys or pointers, else discovery of the numeric
//! top-level fields) and the report of nested values discovery leaves out.

use serde_json::{Map, Value};

use super::{
    Field, Parsed, PayloadError, PayloadParams, number, parse_json_value, timestamp, truncate, wrong_type,
};

pub(super) fn parse(text: &str, p: &PayloadParams, now: f64) -> Result<Parsed, PayloadError> {
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
