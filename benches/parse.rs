//! Parse throughput for the common case: one 3-channel JSON payload with a numeric
//! timestamp and default params (channels discovered and sorted by name); and the same
//! message through what ingest does after parsing (admission and partial-update
//! assembly of a known sensor), the per-message cost before the readings queue.

use anomalyd::cluster::Partition;
use anomalyd::ingest::assemble::{DEFAULT_HOLD_SECS, Held};
use anomalyd::ingest::payload::{Parsed, PayloadParams, parse};
use anomalyd::ingest::sensors::Admission;
use anomalyd::reading::{ChannelSet, Reading, SensorId};
use criterion::{Criterion, black_box, criterion_group, criterion_main};

const PAYLOAD: &[u8] = br#"{"ts":1700000000.1,"current":10.234,"temperature":41.87,"vibration":0.712}"#;
const NOW: f64 = 1_700_000_000.0;

fn bench_parse(c: &mut Criterion) {
    let params = PayloadParams::default();
    c.bench_function("parse_json_3ch", |b| {
        b.iter(|| parse(black_box(PAYLOAD), &params, NOW))
    });
}

/// Parses the payload and admits its record as ingest does, then runs `then` on the
/// admitted sensor and the record.
fn admit_one<R>(
    admission: &mut Admission,
    params: &PayloadParams,
    then: impl FnOnce(&SensorId, &ChannelSet, &mut Held, &Parsed<'_>) -> R,
) -> R {
    let records = parse(black_box(PAYLOAD), params, NOW).expect("parses");
    let record = &records[0];
    let names = record.channels.iter().map(|(n, _)| n.as_ref());
    let set = || (record.channels.iter().map(|(n, _)| n.to_string()).collect(), true);
    let admitted = |id: &SensorId, set: &ChannelSet, held: &mut Held| then(id, set, held, record);
    admission.admit("pump-1", names, set, admitted).expect("admitted")
}

fn bench_ingest(c: &mut Criterion) {
    let params = PayloadParams::default();
    let mut admission = Admission::new(Partition::default(), 10, []);
    // What ingest did per message before partial updates: the reading built directly.
    c.bench_function("parse_admit_json_3ch", |b| {
        b.iter(|| {
            admit_one(&mut admission, &params, |sensor, channels, _, record| {
                black_box(Reading {
                    sensor: sensor.clone(),
                    ts: record.ts,
                    channels: channels.clone(),
                    values: record.channels.iter().map(|(_, v)| *v).collect(),
                })
            })
        })
    });
    c.bench_function("parse_admit_assemble_json_3ch", |b| {
        b.iter(|| {
            admit_one(&mut admission, &params, |id, set, held, record| {
                let out = held.update(id, set, record.ts, &record.channels, (DEFAULT_HOLD_SECS, NOW));
                black_box(out.readings().count())
            })
        })
    });
}

criterion_group!(benches, bench_parse, bench_ingest);
criterion_main!(benches);
