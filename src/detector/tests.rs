use super::*;
use crate::alert::AlertEventKind;
use crate::config::Config;

fn build_config(extra: &str) -> DetectorConfig {
    let text = format!(
        "[window]\nsize = 8\n[model]\nhidden = [6]\nlatent = 2\nepochs = 5\n\
         [training]\nmin_windows = 64\nretrain_every = 0\nbuffer = 256\n\
         [threshold]\nwindow = 200\nmin_scores = 20\nquantile = 0.99\n\
         [alert]\nconsecutive = 1\nclear_after = 3\ncooldown = 10\n{extra}"
    );
    Config::from_toml_str(&text).unwrap().detector
}

/// Two channels: a sine and its scaled copy, with a little deterministic wobble.
fn build_reading(i: usize) -> [f64; 2] {
    let x = (i as f64 * 0.3).sin() + 0.01 * ((i * 7919) % 13) as f64;
    [x, 2.0 * x + 5.0]
}

fn names() -> Vec<String> {
    vec!["temp".into(), "vib".into()]
}

fn feed(d: &mut Detector, id: &SensorId, from: usize, to: usize) -> Vec<Step> {
    (from..to)
        .map(|i| d.process_inline(id, i as f64, &build_reading(i), names).unwrap())
        .collect()
}

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
    let mut d = Detector::new(build_config("").tap_retrain(50), 10);
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
fn a_restored_detector_scores_like_the_original() {
    let mut a = Detector::new(build_config(""), 10);
    let id = SensorId::new("s1");
    feed(&mut a, &id, 0, 300);
    let snap = a.snapshot();
    let mut b = Detector::new(build_config(""), 10);
    assert_eq!(b.restore(snap.clone()), 1);
    // b's window is empty: feed both the same next readings and compare once b is full.
    let sa = feed(&mut a, &id, 300, 340);
    let sb = feed(&mut b, &id, 300, 340);
    let (x, y) = (
        sa.last().unwrap().scored.unwrap(),
        sb.last().unwrap().scored.unwrap(),
    );
    assert_eq!(x.scores, y.scores);
    assert_eq!(x.threshold, y.threshold, "threshold history restored");
    assert_eq!(y.model_version, 1);
    assert!(
        sb.iter().take(7).all(|s| s.scored.is_none()),
        "window refills first"
    );
}

#[test]
fn reload_changes_the_quantile_but_keeps_the_model() {
    let mut d = Detector::new(build_config(""), 10);
    let id = SensorId::new("s1");
    feed(&mut d, &id, 0, 300);
    let before = feed(&mut d, &id, 300, 301)[0].scored.unwrap().threshold.unwrap();
    let mut c = build_config("");
    c.threshold.default.quantile = crate::config::Quantile::try_from(0.5).unwrap();
    d.reload(c.threshold, c.alert, c.score);
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

/// The score of the window where a spike is the newest reading, and of the window two
/// readings later.
fn spike_scores(extra: &str) -> (f64, f64) {
    let mut d = Detector::new(build_config(extra), 10);
    let id = SensorId::new("s1");
    feed(&mut d, &id, 0, 400);
    let mut at = [0.0; 2];
    for i in 400..410 {
        let mut r = build_reading(i);
        if i == 405 {
            r[1] += 40.0;
        }
        let step = d.process_inline(&id, i as f64, &r, names).unwrap();
        match i {
            405 => at[0] = step.scored.unwrap().scores.ae,
            407 => at[1] = step.scored.unwrap().scores.ae,
            _ => {}
        }
    }
    (at[0], at[1])
}

#[test]
fn tail_rows_scores_only_the_newest_readings() {
    let (now, later) = spike_scores("[score]\ntail_rows = 1");
    assert!(now > 1.0 && later < now / 10.0, "{now} {later}");
    // The whole-window error still sees the spike two readings later.
    let (now, later) = spike_scores("");
    assert!(later > now / 10.0, "{now} {later}");
}

/// Thresholds in force after a long run of high scores.
fn threshold_after_a_shift(learn_flagged: bool) -> (f64, f64) {
    let mut config = build_config("");
    config.threshold.learn_flagged = learn_flagged;
    let mut d = Detector::new(config, 10);
    let id = SensorId::new("s1");
    let steps = feed(&mut d, &id, 0, 400);
    let before = steps.last().unwrap().scored.unwrap().threshold.unwrap();
    let mut after = 0.0;
    for i in 400..600 {
        let mut r = build_reading(i);
        r[1] += 40.0;
        let step = d.process_inline(&id, i as f64, &r, names).unwrap();
        after = step.scored.unwrap().threshold.unwrap();
    }
    (before, after)
}

#[test]
fn unflagged_learning_keeps_a_long_anomaly_out_of_the_threshold() {
    let (before, after) = threshold_after_a_shift(false);
    assert!((after - before).abs() < 1e-12, "{before} {after}");
    let (before, after) = threshold_after_a_shift(true);
    assert!(after > 10.0 * before, "{before} {after}");
}

/// The first scored window after the first model.
fn first_scored(reseed: bool) -> Scored {
    let mut config = build_config("");
    config.score.reseed = reseed;
    config.threshold.reseed = reseed;
    let mut d = Detector::new(config, 10);
    let id = SensorId::new("s1");
    let steps = feed(&mut d, &id, 0, 80);
    steps.iter().find_map(|s| s.scored).unwrap()
}

#[test]
fn reseeding_makes_reference_and_threshold_ready_with_the_model() {
    let cold = first_scored(false);
    assert_eq!(cold.anomaly_score, 0.0);
    assert!(cold.threshold.is_none());
    let warm = first_scored(true);
    assert!(warm.anomaly_score > 0.0 && warm.anomaly_score < 1.0);
    assert!(warm.threshold.is_some_and(|t| t > 0.0));
}

/// The anomaly score of the window whose newest reading is a moderate spike.
fn spike_anomaly_score(extra: &str) -> f64 {
    spike_step("", extra, 3.0).step.scored.unwrap().anomaly_score
}

/// A detector after reading 400, whose `vib` was raised by `by`.
struct Spiked {
    detector: Detector,
    /// Alert events of readings 0–399.
    before: Vec<AlertEvent>,
    /// Reading 400.
    step: Step,
}

/// Feeds 400 readings, then reading 400 with `vib` raised by `by`; `alert` and `score`
/// are extra keys of `[alert]` and `[score]` (which has `reseed = true`).
fn spike_step(alert: &str, score: &str, by: f64) -> Spiked {
    // build_config ends inside [alert] (consecutive 1, clear_after 3, cooldown 10).
    let text = format!("{alert}\n[score]\nreseed = true\n{score}");
    let mut detector = Detector::new(build_config(&text), 10);
    let id = SensorId::new("s1");
    let before = feed(&mut detector, &id, 0, 400)
        .into_iter()
        .filter_map(|s| s.event)
        .collect();
    let mut r = build_reading(400);
    r[1] += by;
    let step = detector.process_inline(&id, 400.0, &r, names).unwrap();
    Spiked {
        detector,
        before,
        step,
    }
}

#[test]
fn point_component_lifts_a_new_extreme_reading() {
    let window_only = spike_anomaly_score("");
    for point in ["z", "ae"] {
        let with_point = spike_anomaly_score(&format!("point = \"{point}\""));
        assert!(
            with_point > window_only + 0.05,
            "{point}: {with_point} vs window only {window_only}"
        );
    }
}

#[test]
fn a_reading_beyond_the_recent_range_scores_one() {
    // vib spans about [3, 7]: +3 leaves it by far more than 5 % of the range.
    let window_only = spike_anomaly_score("");
    assert!(window_only < 1.0, "{window_only}");
    // range_rows 1000: warm after 100 readings; the spike comes at reading 400.
    assert_eq!(spike_anomaly_score("range_margin = 0.05\nrange_rows = 1000"), 1.0);
    // A margin wider than the excursion leaves the score to the window component.
    assert_eq!(
        spike_anomaly_score("range_margin = 2.0\nrange_rows = 1000"),
        window_only
    );
    // An alert raised on it names the channel that left its range.
    let event = spike_step(
        "trigger = \"anomaly_score\"",
        "range_margin = 0.05\nrange_rows = 1000",
        3.0,
    )
    .step
    .event
    .expect("raised");
    assert_eq!(event.outside_range, vec!["vib".to_string()]);
    assert!(event.to_json().contains("\"outside_range\":[\"vib\"]"));
    // With the default 5000 rows the range is still warming up (500 readings) at 400.
    assert_eq!(spike_anomaly_score("range_margin = 0.05"), window_only);
}

/// Alert events from a large spike at reading 400 under `[alert]` settings `alert`.
fn spike_events(alert: &str) -> Vec<AlertEvent> {
    let Spiked {
        mut detector,
        mut before,
        step,
    } = spike_step(alert, "", 40.0);
    before.extend(step.event);
    let id = SensorId::new("s1");
    before.extend(
        feed(&mut detector, &id, 401, 420)
            .into_iter()
            .filter_map(|s| s.event),
    );
    before
}

#[test]
fn anomaly_score_trigger_raises_on_the_anomaly_score_alone() {
    let on_score = spike_events("trigger = \"anomaly_score\"\nanomaly_threshold = 0.6");
    let raised: Vec<_> = on_score
        .iter()
        .filter(|e| e.event == AlertEventKind::Raised)
        .collect();
    assert_eq!(raised.len(), 1, "{on_score:?}");
    assert_eq!(raised[0].ts, 400.0);
    assert!(raised[0].anomaly_score >= 0.6, "{}", raised[0].anomaly_score);
    // Cleared after clear_after (3) windows whose (onset-only) anomaly score is lower.
    assert!(
        on_score
            .iter()
            .any(|e| e.event == AlertEventKind::Cleared && e.ts == 403.0)
    );
    // A cut no anomaly score reaches raises nothing, even where the threshold would.
    let unreachable = spike_events("trigger = \"anomaly_score\"\nanomaly_threshold = 1.0");
    assert!(unreachable.is_empty(), "{unreachable:?}");
    let on_threshold = spike_events("");
    assert!(
        on_threshold
            .iter()
            .any(|e| e.event == AlertEventKind::Raised && e.ts == 400.0)
    );
}

#[test]
fn reload_turns_the_range_component_on() {
    let mut d = Detector::new(build_config("[score]\nreseed = true\n"), 10);
    let id = SensorId::new("s1");
    feed(&mut d, &id, 0, 400);
    let on = build_config("[score]\nreseed = true\nrange_margin = 0.05\nrange_rows = 1000\n");
    d.reload(on.threshold.clone(), on.alert, on.score);
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
fn detrend_and_point_keys_parse() {
    let c = build_config("[score]\npoint = \"z\"\ncombine = \"mean\"");
    assert_eq!(c.score.point, PointScore::Z);
    assert_eq!(c.score.combine, Combine::Mean);
    let d = build_config("");
    assert_eq!((d.score.point, d.detrend), (PointScore::Off, Detrend::None));
    let text = "[window]\ndetrend = \"ema\"\ndetrend_rows = 50\ndetrend_channels = [\"a\"]";
    let c = Config::from_toml_str(text).unwrap().detector;
    assert_eq!(c.detrend, Detrend::Ema { rows: 50 });
    assert_eq!(c.detrend_channels, vec!["a".to_string()]);
    assert!(Config::from_toml_str("[window]\ndetrend = \"bogus\"").is_err());
    assert!(Config::from_toml_str("[score]\npoint = \"bogus\"").is_err());
}

#[test]
fn snapshot_keeps_point_history_and_detrend_state() {
    let mut config = build_config("[score]\npoint = \"z\"\nreseed = true");
    config.detrend = Detrend::Ema { rows: 20 };
    let mut a = Detector::new(config.clone(), 10);
    let id = SensorId::new("s1");
    feed(&mut a, &id, 0, 120);
    let snap = a.snapshot();
    let s = &snap.sensors[0];
    assert!(!s.point_scorer.is_empty(), "point history saved");
    assert_eq!(s.ema.len(), 2, "EMA saved");
    let mut b = Detector::new(config, 10);
    assert_eq!(b.restore(snap.clone()), 1);
    let again = b.snapshot();
    assert_eq!(again.sensors[0].point_scorer, s.point_scorer);
    assert_eq!(again.sensors[0].ema, s.ema);
}
