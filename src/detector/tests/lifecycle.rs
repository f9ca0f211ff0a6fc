//! A sensor's life in the detector: the first model and score, an alert naming its
//! channel, retraining, deterministic replays, the sensor cap, refused readings and reload.

use super::*;
use crate::alert::AlertEventKind;

#[test]
fn no_scores_before_min_windows_then_a_model() {
    let mut d = Detector::new(build_config(""), 10);
    let id = SensorId::new("s1");
    let steps = feed(&mut d, &id, 0, 80);
    // 8 readings fill the first window; window 64 triggers the first model.
    let first_scored = steps.iter().position(|s| s.scored.is_some()).unwrap();
    assert_eq!(first_scored, 7 + 64, "first score right after the model trained");
    assert_eq!(d.pipeline(&id).unwrap().model_version(), 1);
}

#[test]
fn a_spike_on_one_channel_raises_an_alert_naming_it() {
    let mut d = Detector::new(build_config(""), 10);
    let id = SensorId::new("s1");
    feed(&mut d, &id, 0, 400);
    let mut raised = None;
    for i in 400..420 {
        let mut r = build_reading(i);
        if i == 405 {
            r[1] += 40.0;
        }
        let step = d.process_inline(&id, i as f64, &r, names).unwrap();
        if let Some(e) = step.event.filter(|e| e.event == AlertEventKind::Raised) {
            raised.get_or_insert(e);
        }
    }
    let e = raised.expect("spike raised an alert");
    assert_eq!(e.ts, 405.0);
    assert!(e.score > e.threshold && e.over_by > 1.0);
    let top = e
        .channels
        .iter()
        .max_by(|a, b| a.share.total_cmp(&b.share))
        .unwrap();
    assert_eq!(top.channel, "vib");
    assert!((e.channels.iter().map(|c| c.share).sum::<f64>() - 1.0).abs() < 1e-9);
    assert_eq!(e.window_end, 405.0);
    assert_eq!(e.window_start, 398.0);
}

#[test]
fn retraining_makes_new_versions() {
    let mut config = build_config("").tap_retrain(50);
    config.training.drift_tolerance = None;
    let mut d = Detector::new(config, 10);
    let id = SensorId::new("s1");
    feed(&mut d, &id, 0, 300);
    assert!(d.pipeline(&id).unwrap().model_version() >= 4);
}

#[test]
fn replays_are_deterministic() {
    let run = || {
        let mut d = Detector::new(build_config("").tap_retrain(50), 10);
        let id = SensorId::new("s1");
        feed(&mut d, &id, 0, 300)
            .into_iter()
            .filter_map(|s| s.scored)
            .map(|s| s.scores.ae)
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn sensor_cap_refuses_new_sensors_only() {
    let mut d = Detector::new(build_config(""), 1);
    d.process(&SensorId::new("a"), 0.0, &[1.0, 2.0], names).unwrap();
    let err = d
        .process(&SensorId::new("b"), 0.0, &[1.0, 2.0], names)
        .unwrap_err();
    assert!(matches!(err, DetectError::TooManySensors { limit: 1, .. }));
    assert!(d.process(&SensorId::new("a"), 1.0, &[1.0, 2.0], names).is_ok());
}

#[test]
fn bad_readings_are_refused_without_harm() {
    let mut d = Detector::new(build_config(""), 4);
    let id = SensorId::new("s1");
    d.process(&id, 5.0, &[1.0, 2.0], names).unwrap();
    assert!(d.process(&id, 4.0, &[1.0, 2.0], names).is_err(), "out of order");
    assert!(d.process(&id, 6.0, &[1.0], names).is_err(), "wrong channel count");
    assert!(d.process(&id, 6.0, &[f64::NAN, 1.0], names).is_err(), "nan");
    assert!(d.process(&id, 6.0, &[1.0, 2.0], names).is_ok());
}

#[test]
fn reload_changes_the_quantile_but_keeps_the_model() {
    let mut d = Detector::new(build_config(""), 10);
    let id = SensorId::new("s1");
    feed(&mut d, &id, 0, 300);
    let before = feed(&mut d, &id, 300, 301)[0].scored.unwrap().threshold.unwrap();
    let mut c = build_config("");
    c.threshold.default.quantile = crate::config::Quantile::try_from(0.5).unwrap();
    d.reload(c.threshold, c.alert, c.score, c.learning);
    let after = feed(&mut d, &id, 301, 302)[0].scored.unwrap().threshold.unwrap();
    assert!(
        after < before,
        "median threshold {after} below the 0.99 one {before}"
    );
    assert_eq!(d.pipeline(&id).unwrap().model_version(), 1);
}

trait TapRetrain {
    fn tap_retrain(self, every: usize) -> Self;
}

impl TapRetrain for DetectorConfig {
    fn tap_retrain(mut self, every: usize) -> Self {
        self.training.retrain_every = Some(every);
        self
    }
}
