//! The message of `benches/parse.rs` through the same paths, a fixed number of times:
//! instruction counts that do not depend on the machine's load, for when the
//! benchmark's timings are too noisy to compare builds.
//!
//! `cargo build --release --example parse_loop`, then
//! `valgrind --tool=callgrind --callgrind-out-file=/dev/null
//! target/release/examples/parse_loop <parse|admit|assemble> <N>`: the difference in
//! instructions between N = 100000 and N = 0, divided by 100000, is one message's.

use anomalyd::cluster::Partition;
use anomalyd::ingest::assemble::DEFAULT_HOLD_SECS;
use anomalyd::ingest::payload::{PayloadParams, parse};
use anomalyd::ingest::sensors::Admission;
use std::hint::black_box;

const PAYLOAD: &[u8] = br#"{"ts":1700000000.1,"current":10.234,"temperature":41.87,"vibration":0.712}"#;
const NOW: f64 = 1_700_000_000.0;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let params = PayloadParams::default();
    let mut admission = Admission::new(Partition::default(), 10, []);
    let mut readings = 0;
    for _ in 0..n {
        let records = parse(black_box(PAYLOAD), &params, NOW).expect("parses");
        if path == "parse" {
            black_box(&records);
            continue;
        }
        let record = &records[0];
        let names = record.channels.iter().map(|(n, _)| n.as_ref());
        let set = || (record.channels.iter().map(|(n, _)| n.to_string()).collect(), true);
        let assemble = path == "assemble";
        let admitted = admission.admit("pump-1", names, set, |id, set, held| {
            assemble.then(|| held.update(id, set, record.ts, &record.channels, (DEFAULT_HOLD_SECS, NOW)))
        });
        readings += admitted
            .expect("admitted")
            .map_or(0, |out| out.readings().count());
    }
    println!("{path} x{n}: {readings} readings");
}
