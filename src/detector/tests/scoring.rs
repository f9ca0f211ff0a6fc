//! The anomaly score: the onset reference and the ratio strategy, the point and range
//! components, detrending, and the keys that choose them.

use super::*;
use crate::config::{Config, Detrend, ScoreStrategy};

/// The first scored window after the first model.
fn first_scored(extra: &str) -> Scored {
    let mut d = Detector::new(build_config(extra), 10);
    let id = SensorId::new("s1");
    let steps = feed(&mut d, &id, 0, 80);
    steps.iter().find_map(|s| s.scored).unwrap()
}

#[test]
fn the_onset_reference_is_ready_with_the_model_and_the_threshold_is_not() {
    let first = first_scored("");
    assert!(
        first.anomaly_score > 0.0 && first.anomaly_score < 1.0,
        "{first:?}"
    );
    assert!(
        first.threshold.is_none(),
        "the threshold fills from scored windows"
    );
    // `ratio` needs the threshold, so it says 0 until then.
    assert_eq!(first_scored("[score]\nstrategy = \"ratio\"").anomaly_score, 0.0);
}

#[test]
fn ratio_strategy_is_one_half_at_the_threshold() {
    let Spiked { step, .. } = spike_step("", "strategy = \"ratio\"", 40.0);
    let s = step.scored.unwrap();
    let (v, t) = (s.scores.ae, s.threshold.unwrap());
    assert!((s.anomaly_score - v / (v + t)).abs() < 1e-12);
    assert!(
        s.anomaly_score > 0.5,
        "a spike over the threshold: {}",
        s.anomaly_score
    );
}

/// The anomaly score of the window whose newest reading is a moderate spike.
fn spike_anomaly_score(extra: &str) -> f64 {
    spike_step("", extra, 3.0).step.scored.unwrap().anomaly_score
}

/// Reading 400, whose `vib` was raised by `by`.
struct Spiked {
    step: Step,
}

/// Feeds 400 readings, then reading 400 with `vib` raised by `by`; `alert` and `score`
/// are extra keys of `[alert]` and `[score]`.
fn spike_step(alert: &str, score: &str, by: f64) -> Spiked {
    // build_config ends inside [alert] (consecutive 1, clear_after 3, cooldown 10).
    let text = format!("{alert}\n[score]\n{score}");
    // The scoring components are under test, on the whole-window autoencoder (with the
    // skip path the window error alone already scores this spike near 1).
    let mut config = build_config(&text);
    config.model.skip = crate::config::Skip::None;
    let mut detector = Detector::new(config, 10);
    let id = SensorId::new("s1");
    feed(&mut detector, &id, 0, 400);
    let mut r = build_reading(400);
    r[1] += by;
    let step = detector.process_inline(&id, 400.0, &r, names).unwrap();
    Spiked { step }
}

#[test]
fn point_component_lifts_a_new_extreme_reading() {
    let window_only = spike_anomaly_score("point = \"off\"\nrange_margin = 0");
    let with_point = spike_anomaly_score("point = \"z\"\nrange_margin = 0");
    assert!(
        with_point > window_only + 0.05,
        "{with_point} vs window only {window_only}"
    );
}

#[test]
fn a_reading_beyond_the_recent_range_scores_one() {
    // vib spans about [3, 7]: +3 leaves it by far more than 5 % of the range.
    let window_only = spike_anomaly_score("range_margin = 0");
    assert!(window_only < 1.0, "{window_only}");
    // range_rows 1000: warm after 100 readings; the spike comes at reading 400.
    assert_eq!(spike_anomaly_score("range_margin = 0.05\nrange_rows = 1000"), 1.0);
    // A margin wider than the excursion leaves the score to the window component.
    assert_eq!(
        spike_anomaly_score("range_margin = 2.0\nrange_rows = 1000"),
        window_only
    );
    // An alert raised on it names the channel that left its range.
    let event = spike_step("", "range_margin = 0.05\nrange_rows = 1000", 40.0)
        .step
        .event
        .expect("raised");
    assert_eq!(event.outside_range, vec!["vib".to_string()]);
    assert!(event.to_json().contains("\"outside_range\":[\"vib\"]"));
    // With the default 5000 rows the range is still warming up (500 readings) at 400.
    assert_eq!(spike_anomaly_score("range_margin = 0.05"), window_only);
}

#[test]
fn reload_turns_the_range_component_on() {
    let mut d = Detector::new(build_config("[score]\nrange_margin = 0\n"), 10);
    let id = SensorId::new("s1");
    feed(&mut d, &id, 0, 400);
    let on = build_config("[score]\nrange_margin = 0.05\nrange_rows = 1000\n");
    d.reload(on.threshold.clone(), on.alert, on.score, on.learning);
    // The range starts empty at the reload: a spike within its 100-reading warm-up
    // does not score 1 (a range of a few readings is too narrow to judge by)…
    feed(&mut d, &id, 400, 450);
    let spike = |d: &mut Detector, i: usize, by: f64| {
        let mut r = build_reading(i);
        r[1] += by;
        d.process_inline(&id, i as f64, &r, names)
            .unwrap()
            .scored
            .unwrap()
            .anomaly_score
    };
    assert!(spike(&mut d, 450, 6.0) < 1.0);
    // …once warm, a reading beyond everything since the reload does.
    feed(&mut d, &id, 451, 560);
    assert_eq!(spike(&mut d, 560, 20.0), 1.0);
}

/// AE scores just before and 200 readings after a lasting +40 shift of channel `vib`.
fn shift_scores(detrend: Detrend, channels: &[&str]) -> (f64, f64) {
    let mut config = build_config("");
    config.detrend = detrend;
    config.detrend_channels = channels.iter().map(|c| c.to_string()).collect();
    let mut d = Detector::new(config, 10);
    let id = SensorId::new("s1");
    let mut at = [0.0; 2];
    for i in 0..600 {
        let mut r = build_reading(i);
        if i >= 400 {
            r[1] += 40.0;
        }
        let step = d.process_inline(&id, i as f64, &r, names).unwrap();
        match i {
            399 => at[0] = step.scored.unwrap().scores.ae,
            599 => at[1] = step.scored.unwrap().scores.ae,
            _ => {}
        }
    }
    (at[0], at[1])
}

#[test]
fn detrend_follows_a_lasting_level_shift() {
    let (before, after) = shift_scores(Detrend::None, &[]);
    assert!(after > 100.0 * before, "no detrend: {before} {after}");
    for detrend in [Detrend::Ema { rows: 20 }, Detrend::WindowMean] {
        let (before, after) = shift_scores(detrend, &[]);
        assert!(after < 10.0 * before.max(1e-3), "{detrend:?}: {before} {after}");
    }
    // Only the listed channels are detrended.
    let (before, after) = shift_scores(Detrend::Ema { rows: 20 }, &["temp"]);
    assert!(after > 100.0 * before, "vib not detrended: {before} {after}");
    let (before, after) = shift_scores(Detrend::Ema { rows: 20 }, &["vib"]);
    assert!(after < 10.0 * before.max(1e-3), "vib detrended: {before} {after}");
}

#[test]
fn detrend_and_strategy_keys_parse() {
    let ScoreStrategy::Onset(o) = build_config("[score]\npoint = \"off\"\nrange_margin = 0").score else {
        panic!("onset is the default strategy");
    };
    assert!(!o.point && o.range.is_none());
    let ScoreStrategy::Onset(o) = build_config("").score else {
        panic!("onset is the default strategy");
    };
    assert!(o.point && o.range.is_some_and(|r| r.margin == 0.05 && r.rows.get() == 5000));
    assert_eq!(build_config("").detrend, Detrend::None);
    let text = "[window]\ndetrend = \"ema\"\ndetrend_rows = 50\ndetrend_channels = [\"a\"]";
    let c = Config::from_toml_str(text).unwrap().detector;
    assert_eq!(c.detrend, Detrend::Ema { rows: 50 });
    assert_eq!(c.detrend_channels, vec!["a".to_string()]);
    assert!(Config::from_toml_str("[window]\ndetrend = \"bogus\"").is_err());
    assert!(Config::from_toml_str("[score]\npoint = \"bogus\"").is_err());
    assert!(Config::from_toml_str("[score]\nstrategy = \"bogus\"").is_err());
}

#[test]
fn a_model_rescored_where_it_trained_scores_as_one_rebuilt_on_install() {
    // The daemon's path: the job trains elsewhere while the sensor's buffer takes more
    // windows, and the model comes back with its scores of the job's windows. What
    // follows is bit for bit what a rebuild from scratch gives; the scores of another
    // sensor's job are not taken for this one's.
    let config = build_config("");
    let source = config.threshold.score;
    let (mut a, mut b, mut c) = (
        Detector::new(config.clone(), 10),
        Detector::new(config.clone(), 10),
        Detector::new(config, 10),
    );
    let id = SensorId::new("s1");
    let mut job = None;
    let mut i = 0;
    while job.is_none() {
        for d in [&mut b, &mut c] {
            d.process(&id, i as f64, &build_reading(i), names).unwrap();
        }
        job = a.process(&id, i as f64, &build_reading(i), names).unwrap().train;
        i += 1;
    }
    let job = job.unwrap();
    let model = crate::trainer::train(&job, &a.config().model).unwrap();
    for j in i..i + 40 {
        for d in [&mut a, &mut b, &mut c] {
            assert!(
                d.process(&id, j as f64, &build_reading(j), names)
                    .unwrap()
                    .train
                    .is_none()
            );
        }
    }
    let rescored = Rescored::new(&job.windows, &model, source);
    a.install(&id, Some(model.clone()));
    b.install_rescored(&id, Some(model.clone()), Some(&rescored));
    // c's buffer is its own: a's job's scores do not fit it.
    c.install_rescored(&id, Some(model), Some(&rescored));
    let bits = |d: &mut Detector| -> Vec<(u64, Option<u64>)> {
        feed(d, &id, i + 40, i + 140)
            .iter()
            .filter_map(|s| s.scored)
            .map(|s| (s.anomaly_score.to_bits(), s.threshold.map(f64::to_bits)))
            .collect()
    };
    let want = bits(&mut a);
    assert_eq!(want.len(), 100);
    assert!(
        want.iter().any(|&(s, _)| f64::from_bits(s) > 0.0),
        "the references score"
    );
    assert_eq!(bits(&mut b), want);
    assert_eq!(bits(&mut c), want);
}
