//! Parse throughput for the common case: one 3-channel JSON payload with a numeric
//! timestamp and default params (channels discovered and sorted by name).

use anomalyd::ingest::payload::{PayloadParams, parse};
use criterion::{Criterion, black_box, criterion_group, criterion_main};

fn bench_parse(c: &mut Criterion) {
    let payload = br#"{"ts":1700000000.1,"current":10.234,"temperature":41.87,"vibration":0.712}"#;
    let params = PayloadParams::default();
    let now = 1_700_000_000.0;
    c.bench_function("parse_json_3ch", |b| {
        b.iter(|| parse(black_box(payload), &params, now))
    });
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
