//! `format = "json"`: one object → one record, or a Telegraf batch → one record per
//! element. Owns where the timestamp, sensor id and channels are found (configured keys
//! or pointers, else discovery of the numeric top-level fields), the report of nested
//! values discovery leaves out, and what counts as a batch. It reads the payload as a
//! borrowed [`Object`], so a record's names and sensor id borrow from the payload.

use std::borrow::Cow;

use super::object::{Object, Val, object};
use super::{
    Channels, Field, Parsed, PayloadError, PayloadParams, Records, number, timestamp, truncate, wrong_type,
};

/// The one key of a Telegraf batch: its JSON serializer with `batch = true` sends
/// `{"metrics": [<metric>, ...]}`, each metric shaped as an unbatched message.
const BATCH_KEY: &str = "metrics";

pub(super) fn parse<'a>(text: &'a str, p: &'a PayloadParams, now: f64) -> Result<Records<'a>, PayloadError> {
    let obj = object(text)?;
    match batch(&obj) {
        Some(elements) => Ok(parse_batch(elements, p, now)),
        None => Ok(Records {
            records: smallvec::smallvec![record(&obj, p, now)?],
            rejected: Vec::new(),
        }),
    }
}

/// The elements of a Telegraf batch: an object whose only key is `metrics`, holding an
/// array. Nothing else is one, so a sensor's own `metrics` field beside its other
/// fields is read as before.
fn batch<'o, 'a>(obj: &'o Object<'a>) -> Option<&'o [Val<'a>]> {
    match obj.get(BATCH_KEY) {
        Some(Val::Array(elements)) if obj.len() == 1 => Some(elements),
        _ => None,
    }
}

/// Each element read as one unbatched message; an element that cannot be read is
/// rejected on its own, named by its index, and the others are kept.
fn parse_batch<'a>(elements: &[Val<'a>], p: &'a PayloadParams, now: f64) -> Records<'a> {
    let mut out = Records {
        records: smallvec::SmallVec::with_capacity(elements.len()),
        rejected: Vec::new(),
    };
    for (index, element) in elements.iter().enumerate() {
        let read = match element {
            Val::Object(obj) => record(obj, p, now),
            other => Err(wrong_type("<element>", "a JSON object", other.scalar())),
        };
        match read {
            Ok(record) => out.records.push(record),
            Err(error) => out.rejected.push(PayloadError::InElement {
                index,
                error: Box::new(error),
            }),
        }
    }
    out
}

/// One metric object → one record.
fn record<'a>(obj: &Object<'a>, p: &'a PayloadParams, now: f64) -> Result<Parsed<'a>, PayloadError> {
    let ts_field = &p.timestamp_field;
    let ts = match ts_field.get(obj) {
        Some(v) => timestamp(v.scalar(), ts_field.as_str(), p.timestamp_unit, now)?,
        None if p.require_timestamp => {
            return Err(PayloadError::MissingTimestamp {
                field: ts_field.as_str().to_owned(),
            });
        }
        None => now,
    };
    let sensor = match &p.sensor_field {
        Some(field) => Some(sensor_from(obj, field)?),
        None => None,
    };
    let (channels, unselected) = match &p.channels {
        Some(list) => (configured_channels(obj, list)?, None),
        None => discovered_channels(obj, p)?,
    };
    Ok(Parsed {
        sensor,
        ts,
        channels,
        unselected,
    })
}

/// The configured channels present, in the configured order, named as configured;
/// none present is an error.
fn configured_channels<'a>(obj: &Object<'_>, list: &'a [Field]) -> Result<Channels<'a>, PayloadError> {
    let mut channels = Channels::new();
    for field in list {
        if let Some(v) = field.get(obj) {
            channels.push((Cow::Borrowed(field.name()), number(v.scalar(), field.as_str())?));
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

/// Every numeric top-level field but the timestamp and sensor fields, sorted by name
/// (as the object keeps its keys), and the first nested object or array that none of
/// them selects.
fn discovered_channels<'a>(
    obj: &Object<'a>,
    p: &PayloadParams,
) -> Result<(Channels<'a>, Option<String>), PayloadError> {
    let mut channels = Channels::new();
    let mut unselected = None;
    for (name, v) in obj.iter() {
        let selected = name == p.timestamp_field.top_key()
            || p.sensor_field.as_ref().is_some_and(|f| f.top_key() == name);
        match v {
            _ if selected => {}
            Val::Number(_) => channels.push((name.clone(), number(v.scalar(), name)?)),
            Val::Object(_) | Val::Array(_) if unselected.is_none() => {
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
    Ok((channels, unselected))
}

fn sensor_from<'a>(obj: &Object<'a>, field: &Field) -> Result<Cow<'a, str>, PayloadError> {
    match field.get(obj) {
        Some(Val::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Val::String(_)) | None => Err(PayloadError::MissingSensor {
            field: field.as_str().to_owned(),
        }),
        Some(other) => Err(wrong_type(field.as_str(), "a string", other.scalar())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::read;
    use super::*;

    const NOW: f64 = 1_700_000_100.0;

    fn telegraf() -> PayloadParams {
        let field = |s: &str| Field::parse(s).expect("field");
        PayloadParams {
            timestamp_field: field("/timestamp"),
            sensor_field: Some(field("/tags/host")),
            channels: Some(vec![field("/fields/t")]),
            ..PayloadParams::default()
        }
    }

    fn metric(host: &str, t: f64, ts: u64) -> String {
        format!(r#"{{"fields":{{"t":{t}}},"name":"m","tags":{{"host":"{host}"}},"timestamp":{ts}}}"#)
    }

    /// `(sensor, ts, value)` of a record.
    type Got = (String, f64, f64);

    /// `(sensor, ts, value)` of each record, and `kind: message` of each rejection.
    fn outcome(payload: &str, p: &PayloadParams) -> (Vec<Got>, Vec<String>) {
        let read = read(payload.as_bytes(), p, NOW).unwrap_or_else(|e| panic!("{e}: {payload}"));
        let records = (read.records.iter())
            .map(|r| {
                (
                    r.sensor.clone().unwrap_or_default().into_owned(),
                    r.ts,
                    r.channels[0].1,
                )
            })
            .collect();
        let errors = (read.rejected.iter())
            .map(|e| format!("{}: {e}", e.kind()))
            .collect();
        (records, errors)
    }

    #[test]
    fn batch_elements_are_read_alone_and_a_bad_one_is_named_by_its_index() {
        let good = |host: &str, t, ts: u64| (host.to_owned(), ts as f64, t);
        let cases: [(&str, String, Vec<Got>, Vec<&str>); 5] = [
            (
                "every element good, in order",
                format!(
                    r#"{{"metrics":[{},{}]}}"#,
                    metric("a", 1.0, 1_700_000_000),
                    metric("b", 2.0, 1_700_000_001)
                ),
                vec![good("a", 1.0, 1_700_000_000), good("b", 2.0, 1_700_000_001)],
                vec![],
            ),
            (
                "a bad element between good ones",
                format!(
                    r#"{{"metrics":[{},{},{}]}}"#,
                    metric("a", 1.0, 1_700_000_000),
                    metric("", 2.0, 1_700_000_000),
                    metric("c", 3.0, 1_700_000_000)
                ),
                vec![good("a", 1.0, 1_700_000_000), good("c", 3.0, 1_700_000_000)],
                vec!["missing_sensor: `metrics[1]`: sensor field `/tags/host` is missing or empty"],
            ),
            (
                "an element that is not an object",
                format!(r#"{{"metrics":[7,{}]}}"#, metric("a", 1.0, 1_700_000_000)),
                vec![good("a", 1.0, 1_700_000_000)],
                vec!["wrong_type: `metrics[0]`: field `<element>` must be a JSON object, got a number"],
            ),
            (
                "a bad timestamp in the last element",
                format!(
                    r#"{{"metrics":[{},{}]}}"#,
                    metric("a", 1.0, 1_700_000_000),
                    metric("a", 2.0, 5)
                ),
                vec![good("a", 1.0, 1_700_000_000)],
                vec![
                    "absurd_timestamp: `metrics[1]`: timestamp 5 is before 2000-01-01 or more than a day in the future (milliseconds instead of seconds?)",
                ],
            ),
            ("an empty batch", r#"{"metrics":[]}"#.to_owned(), vec![], vec![]),
        ];
        for (name, payload, records, errors) in cases {
            let (got_records, got_errors) = outcome(&payload, &telegraf());
            assert_eq!(got_records, records, "{name}");
            assert_eq!(got_errors, errors, "{name}");
        }
    }

    #[test]
    fn a_metrics_field_beside_others_is_no_batch() {
        let p = PayloadParams::default();
        let read = read(br#"{"ts":1700000000,"metrics":[1,2],"t":1.5}"#, &p, NOW).expect("read");
        assert_eq!(read.records.len(), 1);
        assert_eq!(read.records[0].channels.as_slice(), [(Cow::from("t"), 1.5)]);
        assert_eq!(read.records[0].unselected.as_deref(), Some("metrics"));
        // All or nothing through `parse`: the first bad element rejects the payload.
        let batch = format!(r#"{{"metrics":[{},7]}}"#, metric("a", 1.0, 1_700_000_000));
        let err = super::super::parse(batch.as_bytes(), &telegraf(), NOW).unwrap_err();
        assert!(matches!(err, PayloadError::InElement { index: 1, .. }), "{err}");
    }
}
