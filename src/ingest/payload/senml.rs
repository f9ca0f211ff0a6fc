//! SenML JSON (RFC 8428 §4–5) → [`Parsed`] records, one per distinct resolved time.
//!
//! Owns base-field resolution (`bn`, `bt`, `bv`) and time resolution. Records that carry
//! only `vs`/`vb`/`vd`/`s` are skipped, since the detector only takes numbers. Units
//! (`u`, `bu`) and versions are ignored. A pack whose records carry different channels at
//! different times (RFC 8428 §5.1.3: voltage once, current at six times) yields partial
//! updates, which ingest assembles into full readings.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use super::object::{Val, value};
use super::{Parsed, PayloadError, PayloadParams, RecordList, check_timestamp, finite, number, wrong_type};

/// RFC 8428 §4.5.3: times below 2**28 are relative to "now", others are absolute.
const RELATIVE_TIME_LIMIT: f64 = 268_435_456.0;

/// Base fields in force; per RFC 8428 they apply to this and all later records.
#[derive(Default)]
struct Base {
    name: String,
    time: f64,
    value: f64,
}

/// One group: records of the same sensor at the same resolved time.
struct Group {
    sensor: Option<String>,
    ts: f64,
    channels: BTreeMap<String, f64>,
}

pub(super) fn parse<'a>(text: &str, p: &'a PayloadParams, now: f64) -> Result<RecordList<'a>, PayloadError> {
    let records = match value(text)? {
        Val::Array(records) => records,
        other => return Err(wrong_type("<payload>", "a SenML array", other.scalar())),
    };
    let sensor_from_bn = p.sensor_field.as_ref().map(super::Field::as_str) == Some("bn");
    let mut base = Base::default();
    let mut groups: Vec<Group> = Vec::new();
    // (sensor, time bits) → index in `groups`; bits because f64 is not Hash.
    let mut index: HashMap<(Option<String>, u64), usize> = HashMap::new();
    for (i, rec) in records.iter().enumerate() {
        let Val::Object(rec) = rec else {
            return Err(wrong_type(
                &format!("[{i}]"),
                "a SenML record object",
                rec.scalar(),
            ));
        };
        let path = |key: &str| format!("[{i}].{key}");
        if let Some(v) = rec.get("bn") {
            base.name = string(v, &path("bn"))?;
        }
        if let Some(v) = rec.get("bt") {
            base.time = number(v.scalar(), &path("bt"))?;
        }
        if let Some(v) = rec.get("bv") {
            base.value = number(v.scalar(), &path("bv"))?;
        }
        let Some(v) = rec.get("v") else {
            continue; // string/boolean/data/sum-only records carry no numeric value
        };
        let value = finite(base.value + number(v.scalar(), &path("v"))?, &path("v"))?;
        let t = match rec.get("t") {
            Some(t) => base.time + number(t.scalar(), &path("t"))?,
            None => base.time,
        };
        let ts = finite(if t < RELATIVE_TIME_LIMIT { now + t } else { t }, &path("t"))?;
        let ts = check_timestamp(ts, now)?;
        let channel = match rec.get("n") {
            Some(n) => string(n, &path("n"))?,
            None => String::new(),
        };
        let channel = if channel.is_empty() {
            p.number_channel.clone()
        } else {
            channel
        };
        let sensor = if sensor_from_bn {
            let id = base.name.trim_end_matches([':', '/', '.']);
            if id.is_empty() {
                return Err(PayloadError::MissingSensor { field: "bn".into() });
            }
            Some(id.to_owned())
        } else {
            None
        };
        let slot = *index.entry((sensor.clone(), ts.to_bits())).or_insert_with(|| {
            groups.push(Group {
                sensor,
                ts,
                channels: BTreeMap::new(),
            });
            groups.len() - 1
        });
        if groups[slot].channels.insert(channel.clone(), value).is_some() {
            return Err(PayloadError::DuplicateChannel { name: channel });
        }
    }
    if groups.is_empty() {
        return Err(PayloadError::NoChannels);
    }
    // Stable sort keeps payload order among sensors sharing a time.
    groups.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    let wanted = p.channels.as_deref();
    let parsed: RecordList<'a> = (groups.into_iter())
        .filter_map(|g| {
            Some(Parsed {
                sensor: g.sensor.map(Cow::Owned),
                ts: g.ts,
                channels: super::select_channels(g.channels, wanted)?,
                unselected: None,
            })
        })
        .collect();
    match wanted {
        Some(list) if parsed.is_empty() => Err(PayloadError::MissingChannel {
            channels: list
                .iter()
                .map(super::Field::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        }),
        _ => Ok(parsed),
    }
}

fn string(v: &Val<'_>, field: &str) -> Result<String, PayloadError> {
    match v {
        Val::String(s) => Ok(s.to_string()),
        other => Err(wrong_type(field, "a string", other.scalar())),
    }
}
