//! Generator tests: determinism, coverage of every kind, sane values. No broker.

use std::collections::HashSet;

use super::*;
use crate::ingest::payload::{PayloadParams, parse};

const T0: f64 = 1_700_000_000.0;

fn build_params(seed: u64) -> SimParams {
    SimParams {
        sensors: 2,
        rate_hz: 10.0,
        seed,
        anomaly_every: 5.0,
        warmup: 30.0,
        ..SimParams::default()
    }
}

/// Runs `ticks` ticks and returns every reading and every injection.
fn run_ticks(p: SimParams, ticks: usize) -> (Vec<SensorTick>, Vec<Injection>) {
    let mut sim = Simulator::new(p, T0);
    let (mut all, mut injections) = (Vec::new(), Vec::new());
    for _ in 0..ticks {
        let (r, i) = sim.next_tick();
        all.extend(r);
        injections.extend(i);
    }
    (all, injections)
}

fn value(tick: &SensorTick, channel: &str) -> f64 {
    tick.2
        .iter()
        .find(|(n, _)| n == channel)
        .map(|(_, v)| *v)
        .unwrap()
}

fn in_anomaly(tick: &SensorTick, injections: &[Injection]) -> bool {
    injections
        .iter()
        .any(|i| i.sensor == tick.0 && tick.1 >= i.start && tick.1 < i.end)
}

#[test]
fn same_seed_gives_identical_output_and_other_seed_differs() {
    let a = run_ticks(build_params(7), 2_000);
    assert_eq!(a, run_ticks(build_params(7), 2_000));
    assert_ne!(a.0, run_ticks(build_params(8), 2_000).0);
}

#[test]
fn ticks_are_evenly_spaced_with_every_channel_finite() {
    let (ticks, _) = run_ticks(build_params(1), 3_000);
    for (k, t) in ticks.iter().enumerate() {
        let expected_ts = T0 + (k / 2) as f64 * 0.1;
        assert!((t.1 - expected_ts).abs() < 1e-6);
        let names: Vec<&str> = t.2.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, CHANNELS);
        assert!(t.2.iter().all(|(_, v)| v.is_finite()), "{t:?}");
    }
    assert_eq!((ticks[0].0.as_str(), ticks[1].0.as_str()), ("pump-01", "pump-02"));
}

#[test]
fn every_kind_is_injected_within_ten_minutes_after_warmup() {
    let (_, injections) = run_ticks(build_params(3), 6_000);
    let kinds: HashSet<AnomalyKind> = injections.iter().map(|i| i.kind).collect();
    assert_eq!(kinds.len(), AnomalyKind::ALL.len(), "{injections:?}");
    for i in &injections {
        assert!(i.start >= T0 + 30.0, "warmup respected: {i:?}");
        assert!(i.end - i.start >= 2.0 && i.end - i.start <= 40.0, "{i:?}");
    }
}

#[test]
fn three_sensors_open_with_a_spike_a_drift_and_a_broken_correlation() {
    let p = SimParams {
        sensors: 3,
        ..build_params(7)
    };
    let (_, injections) = run_ticks(p, 3_000);
    let first = |sensor: &str| injections.iter().find(|i| i.sensor == sensor).map(|i| i.kind);
    assert_eq!(
        [first("pump-01"), first("pump-02"), first("pump-03")],
        [
            Some(AnomalyKind::Spike),
            Some(AnomalyKind::Drift),
            Some(AnomalyKind::BrokenCorrelation)
        ],
        "{injections:?}"
    );
}

#[test]
fn no_anomalies_when_anomaly_every_is_infinite() {
    let p = SimParams {
        anomaly_every: f64::INFINITY,
        warmup: 0.0,
        ..build_params(1)
    };
    assert!(run_ticks(p, 3_000).1.is_empty());
}

#[test]
fn spike_is_far_outside_the_clean_range() {
    let (ticks, injections) = run_ticks(build_params(5), 6_000);
    let clean_max = ticks
        .iter()
        .filter(|t| !in_anomaly(t, &injections))
        .map(|t| value(t, "current"))
        .fold(f64::MIN, f64::max);
    let spikes: Vec<&Injection> = injections
        .iter()
        .filter(|i| i.kind == AnomalyKind::Spike)
        .collect();
    assert!(!spikes.is_empty());
    for s in spikes {
        let during = ticks
            .iter()
            .filter(|t| t.0 == s.sensor && t.1 >= s.start && t.1 < s.end);
        for t in during {
            assert!(value(t, "current") > clean_max + 3.0, "{t:?} vs max {clean_max}");
        }
    }
}

#[test]
fn vibration_tracks_current_except_when_correlation_is_broken() {
    let (ticks, injections) = run_ticks(build_params(9), 6_000);
    let corr = |broken: bool| {
        let pairs: Vec<(f64, f64)> = ticks
            .iter()
            .filter(|t| {
                let b = injections.iter().any(|i| {
                    i.kind == AnomalyKind::BrokenCorrelation
                        && i.sensor == t.0
                        && t.1 >= i.start
                        && t.1 < i.end
                });
                b == broken && (broken || !in_anomaly(t, &injections))
            })
            .map(|t| (value(t, "current"), value(t, "vibration")))
            .collect();
        pearson(&pairs)
    };
    assert!(corr(false) > 0.9, "clean correlation {}", corr(false));
    assert!(corr(true) < -0.5, "broken correlation {}", corr(true));
}

#[test]
fn a_stuck_vibration_repeats_one_value_and_moves_again_after() {
    let (ticks, injections) = run_ticks(build_params(11), 12_000);
    let stuck: Vec<&Injection> = injections
        .iter()
        .filter(|i| i.kind == AnomalyKind::Stuck)
        .collect();
    assert!(!stuck.is_empty(), "{injections:?}");
    for s in stuck {
        let of_sensor = |from: f64, to: f64| -> Vec<f64> {
            let ticks = ticks
                .iter()
                .filter(|t| t.0 == s.sensor && t.1 >= from && t.1 < to);
            ticks.map(|t| value(t, "vibration")).collect()
        };
        let during = of_sensor(s.start, s.end);
        assert!(
            during.len() > 1 && during.iter().all(|&v| v == during[0]),
            "{s:?}"
        );
        let after = of_sensor(s.end, s.end + 2.0);
        assert!(after.iter().all(|&v| v != during[0]), "moves again: {s:?}");
    }
}

fn pearson(xy: &[(f64, f64)]) -> f64 {
    let n = xy.len() as f64;
    let (mx, my) = xy
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xy {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    sxy / (sxx * syy).sqrt()
}

#[test]
fn json_payload_round_trips_through_the_parser() {
    let channels = vec![("current".to_string(), 10.25), ("temperature".to_string(), -3.0)];
    let text = to_json_payload(T0 + 0.5, &channels);
    assert_eq!(text, r#"{"ts":1700000000.5,"current":10.25,"temperature":-3}"#);
    let params = PayloadParams::default();
    let parsed = parse(text.as_bytes(), &params, T0).unwrap();
    let got: Vec<(String, f64)> = (parsed[0].channels.iter())
        .map(|(n, v)| (n.to_string(), *v))
        .collect();
    assert_eq!((parsed[0].ts, got), (T0 + 0.5, channels));
}

#[test]
fn invalid_params_name_the_field() {
    let p = SimParams {
        sensors: 0,
        ..SimParams::default()
    };
    let err = p.check().unwrap_err().to_string();
    assert!(err.contains("sensors"), "{err}");
}
