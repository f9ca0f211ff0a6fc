use std::path::PathBuf;

use super::*;
use crate::config::Config;

fn small_config() -> DetectorConfig {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small.toml");
    Config::load(&path).unwrap().detector
}

/// Two related channels: a sine, the same sine scaled plus a little noise.
fn recording(rows: usize, channels: usize) -> Series {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut values = Vec::with_capacity(rows * channels);
    for i in 0..rows {
        let s = (i as f64 * 0.15).sin();
        for c in 0..channels {
            let noise: f64 = rng.sample(StandardNormal);
            values.push((c + 1) as f64 * s + 0.05 * noise);
        }
    }
    Series {
        time_column: "timestamp".into(),
        channels: (0..channels).map(|c| format!("c{c}")).collect(),
        time_text: (0..rows).map(|i| i.to_string()).collect(),
        ts: (0..rows).map(|i| i as f64).collect(),
        values,
    }
}

fn spec() -> Spec {
    Spec {
        onsets: 4,
        rows: 40,
        grace: 16,
    }
}

fn result(run: &InjectRun, fault: Fault) -> &FaultResult {
    run.faults
        .iter()
        .find(|r| r.fault == fault)
        .expect("fault measured")
}

#[test]
fn faults_are_written_as_their_names_say() {
    let clean = |row: usize| row as f64;
    let mut rng = SmallRng::seed_from_u64(1);
    let sigma = 2.0;
    let place = Place {
        onset: 10,
        span: 5,
        sigma,
        n: 100,
    };
    let at = |f: Fault, k: usize, rng: &mut SmallRng| f.value(clean, place, k, rng);
    assert_eq!(at(Fault::Spike, 0, &mut rng), 10.0 + 12.0);
    assert_eq!(Fault::Spike.span(200), 1, "a spike is one reading");
    assert_eq!(at(Fault::Shift, 3, &mut rng), 13.0 + 4.0);
    assert_eq!(at(Fault::Drift, 0, &mut rng), 10.0 + 6.0 / 5.0);
    assert_eq!(at(Fault::Drift, 4, &mut rng), 14.0 + 6.0, "the drift ends at 3σ");
    assert_eq!(at(Fault::Stuck, 4, &mut rng), 10.0, "held at the onset's reading");
    assert_eq!(
        at(Fault::Decouple, 2, &mut rng),
        62.0,
        "the reading half a recording away"
    );
    let noisy: Vec<f64> = (0..200)
        .map(|k| at(Fault::Noise, 0, &mut rng) - 10.0 + 0.0 * k as f64)
        .collect();
    let std = (noisy.iter().map(|v| v * v).sum::<f64>() / 200.0).sqrt();
    assert!((std - sigma).abs() < 0.4, "noise of 1σ, got {std}");
}

#[test]
fn clear_faults_on_a_related_pair_are_caught_soon() {
    let series = recording(3000, 2);
    let run = run_inject(&small_config(), &series, spec(), 2);
    assert_eq!(
        run.faults.len(),
        Fault::ALL.len(),
        "every kind applies to two channels"
    );
    for fault in [Fault::Spike, Fault::Shift, Fault::Decouple] {
        let r = result(&run, fault);
        assert!(
            r.injected >= 3,
            "{fault:?}: onsets found on a quiet recording: {r:?}"
        );
        assert_eq!(r.caught, r.injected, "{fault:?}: {r:?}");
        assert!(r.median_delay().unwrap() < 40.0, "{fault:?}: {r:?}");
    }
    assert!(run.clean_alert_share < 0.05, "{run:?}");
}

#[test]
fn a_detector_that_never_alerts_catches_nothing() {
    let mut config = small_config();
    config.threshold.margin = 1e12;
    let run = run_inject(&config, &recording(2000, 2), spec(), 1);
    assert_eq!(run.clean_alerts, 0);
    for r in &run.faults {
        assert!(r.injected > 0, "{r:?}");
        assert_eq!((r.caught, r.rate(), r.median_delay()), (0, 0.0, None), "{r:?}");
    }
}

#[test]
fn one_channel_is_never_decoupled() {
    let run = run_inject(&small_config(), &recording(1500, 1), spec(), 1);
    let kinds: Vec<Fault> = run.faults.iter().map(|r| r.fault).collect();
    assert!(!kinds.contains(&Fault::Decouple), "{kinds:?}");
    assert_eq!(kinds.len(), Fault::ALL.len() - 1);
}

#[test]
fn median_delay_is_the_middle_of_the_caught() {
    let r = FaultResult {
        fault: Fault::Shift,
        injected: 5,
        caught: 4,
        delays: vec![9, 1, 5, 3],
    };
    assert_eq!(r.median_delay(), Some(4.0));
    assert_eq!(r.rate(), 0.8);
}
