//! A stuck channel: the alert it raises (which channel, for how long, at least major),
//! its clear when the channel moves again, the switch that turns it off, and its runs
//! across a snapshot.

use super::*;
use crate::alert::{AlertEventKind, ClearReason, Severity};

/// A detector whose error threshold never fires (a floor of 1e9), so only the stuck
/// check can raise.
fn detector(stuck_rows: u32) -> Detector {
    let mut config = build_config("");
    config.threshold.default.floor = 1e9;
    config.alert.stuck_rows = stuck_rows;
    Detector::new(config, 10)
}

/// Reading i of the test signal, with "vib" frozen at its reading 300 from 300 to `to`.
fn reading(i: usize, to: usize) -> [f64; 2] {
    let mut r = build_reading(i);
    if (300..to).contains(&i) {
        r[1] = build_reading(300)[1];
    }
    r
}

fn run(d: &mut Detector, from: usize, to: usize, stuck_to: usize) -> Vec<(usize, Box<AlertEvent>)> {
    let id = SensorId::new("s1");
    (from..to)
        .filter_map(|i| {
            let step = d.process_inline(&id, i as f64, &reading(i, stuck_to), names);
            step.unwrap().event.map(|e| (i, e))
        })
        .collect()
}

#[test]
fn a_stuck_channel_raises_a_major_alert_naming_it_and_clears_when_it_moves() {
    let events = run(&mut detector(64), 0, 700, 500);
    let kinds: Vec<_> = events.iter().map(|(i, e)| (*i, e.event, e.reason)).collect();
    // The 65th reading in a row with one value raises (consecutive = 1); the
    // signal's own runs are single readings. Three windows after "vib" moves, it clears.
    assert_eq!(
        kinds,
        vec![
            (364, AlertEventKind::Raised, None),
            (502, AlertEventKind::Cleared, Some(ClearReason::Recovered)),
        ]
    );
    let raised = &events[0].1;
    assert_eq!(raised.stuck.len(), 1, "{:?}", raised.stuck);
    assert_eq!(
        (
            raised.stuck[0].channel.as_str(),
            raised.stuck[0].rows,
            raised.stuck[0].longest_before
        ),
        ("vib", 65, 1)
    );
    assert!(raised.over_by < 1.0, "the error is not what raised it");
    assert_eq!(raised.severity, Severity::Major);
    let json = raised.to_json();
    assert!(
        json.contains(r#""stuck":[{"channel":"vib","rows":65,"longest_before":1}]"#),
        "{json}"
    );
    assert!(events[1].1.stuck.is_empty(), "the clear has nothing stuck");
}

#[test]
fn stuck_rows_zero_turns_the_check_off() {
    assert!(run(&mut detector(0), 0, 700, 500).is_empty());
}

#[test]
fn a_restored_detector_keeps_each_channels_run() {
    let mut a = detector(64);
    // "vib" frozen since reading 300: 40 readings in when the snapshot is taken.
    assert!(run(&mut a, 0, 340, 500).is_empty());
    let snap = a.snapshot();
    let mut b = detector(64);
    assert_eq!(b.restore(snap.clone()), 1);
    assert_eq!(b.snapshot().sensors[0].stuck, snap.sensors[0].stuck);
    let raised = |events: Vec<(usize, Box<AlertEvent>)>| events.first().map(|(i, _)| *i);
    assert_eq!(raised(run(&mut a, 340, 400, 500)), Some(364));
    assert_eq!(
        raised(run(&mut b, 340, 400, 500)),
        Some(364),
        "not counted afresh"
    );
}
