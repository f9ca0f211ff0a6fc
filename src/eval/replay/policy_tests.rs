//! The learning policy's promises, checked on replays with the shipped defaults
//! (`config/anomalyd.toml`): a fault that comes back alerts again, one fault raises once
//! or twice and its recovery clears it, a lasting level shift is accepted.

use super::*;
use crate::config::Config;
use crate::detector::SensorState;

/// Two coupled channels at one reading a second; `fault(i)` decouples the second one
/// (+3, about six of its standard deviations) at row i. Deterministic noise.
fn series(rows: usize, fault: impl Fn(usize) -> bool) -> Series {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 10_000) as f64 / 10_000.0 - 0.5
    };
    let mut values = Vec::with_capacity(rows * 2);
    for i in 0..rows {
        let x = (i as f64 * std::f64::consts::TAU / 50.0).sin() + 0.1 * noise();
        let y = 0.5 * x + 0.05 * noise() + if fault(i) { 3.0 } else { 0.0 };
        values.extend([x, y]);
    }
    Series {
        time_column: "t".into(),
        channels: vec!["flow".into(), "pressure".into()],
        time_text: (0..rows).map(|i| i.to_string()).collect(),
        ts: (0..rows).map(|i| i as f64).collect(),
        values,
    }
}

fn defaults() -> DetectorConfig {
    Config::from_toml_str(include_str!("../../../config/anomalyd.toml"))
        .expect("shipped config is valid")
        .detector
}

/// Rows where an alert was raised (`alert` turns 1).
fn raises(rows: &[ReplayRow]) -> Vec<usize> {
    (0..rows.len())
        .filter(|&i| rows[i].alert && (i == 0 || !rows[i - 1].alert))
        .collect()
}

#[test]
fn a_fault_that_comes_back_alerts_again_and_each_recovery_clears_it() {
    // The reproduction: 3,000 normal rows, 300 faulty, 800 normal, the same
    // fault for 150 rows, then normal again.
    let s = series(4700, |i| (3000..3300).contains(&i) || (4100..4250).contains(&i));
    let (rows, summary) = replay(&s, &defaults(), "pump");
    let raised = raises(&rows);
    let in_first = raised.iter().filter(|&&i| (3000..3300).contains(&i)).count();
    let in_second = raised.iter().filter(|&&i| (4100..4250).contains(&i)).count();
    assert!((1..=2).contains(&in_first), "first fault: {raised:?}");
    assert!((1..=2).contains(&in_second), "the fault came back: {raised:?}");
    assert!(raised.len() <= 5, "no storm: {raised:?}");
    assert!(!rows[4000].alert && !rows[4699].alert, "recovered both times");
    assert_eq!(rows[4699].state, SensorState::Normal);
    assert_eq!(summary.accepted, 0, "150 and 300 s are short of an hour");
}

#[test]
fn a_lasting_level_shift_raises_once_and_is_accepted() {
    let s = series(9000, |i| i >= 3000);
    let (rows, summary) = replay(&s, &defaults(), "pump");
    let raised = raises(&rows);
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert!((3000..3100).contains(&raised[0]), "{raised:?}");
    assert_eq!(summary.accepted, 1);
    let accepted = rows
        .iter()
        .position(|r| r.state == SensorState::Accepted)
        .expect("accepted");
    // One hour of reading time after the raise, well before 8,000 windows.
    assert_eq!(accepted, raised[0] + 3600);
    assert!(!rows[accepted].alert);
    assert!(
        rows[accepted + 1..].iter().all(|r| !r.alert),
        "the new level is normal"
    );
    assert_eq!(rows[8999].state, SensorState::Normal);
}
