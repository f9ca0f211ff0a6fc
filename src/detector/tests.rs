use super::*;
use crate::alert::{AlertEventKind, ClearReason};
use crate::config::{Config, Detrend, ScoreStrategy};

pub(super) fn build_config(extra: &str) -> DetectorConfig {
    let text = format!(
        "[window]\nsize = 8\n[model]\nhidden = [6]\nlatent = 2\nepochs = 5\n\
         [training]\nmin_windows = 64\nretrain_every = 0\nbuffer = 256\n\
         [threshold]\nwindow = 200\nmin_scores = 20\nquantile = 0.99\n\
         [alert]\nconsecutive = 1\nclear_after = 3\ncooldown = 10\n{extra}"
    );
    Config::from_toml_str(&text).unwrap().detector
}

/// Two channels: a sine and its scaled copy, with a little deterministic wobble.
pub(super) fn build_reading(i: usize) -> [f64; 2] {
    let x = (i as f64 * 0.3).sin() + 0.01 * ((i * 7919) % 13) as f64;
    [x, 2.0 * x + 5.0]
}

pub(super) fn names() -> Vec<String> {
    vec!["temp".into(), "vib".into()]
}

pub(super) fn feed(d: &mut Detector, id: &SensorId, from: usize, to: usize) -> Vec<Step> {
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
fn a_snapshot_model_of_another_architecture_is_not_restored() {
    let mut a = Detector::new(build_config(""), 10);
    let id = SensorId::new("s1");
    feed(&mut a, &id, 0, 300);
    let snap = a.snapshot();
    // Same window width, another [model]: the old weights are not what is asked for.
    for model in [
        "hidden = [6]\nlatent = 3",
        "hidden = [5]\nlatent = 2",
        "hidden = [6]\nlatent = 2\nactivation = \"relu\"",
    ] {
        let text = format!(
            "[window]\nsize = 8\n[model]\nepochs = 5\n{model}\n\
             [training]\nmin_windows = 64\nretrain_every = 0\nbuffer = 256\n"
        );
        let mut b = Detector::new(Config::from_toml_str(&text).unwrap().detector, 10);
        assert_eq!(
            b.restore(snap.clone()),
            1,
            "{model}: the sensor's history is kept"
        );
        assert_eq!(b.pipeline(&id).unwrap().model_version(), 0, "{model}: no model");
    }
    // The same architecture is restored.
    let mut c = Detector::new(build_config(""), 10);
    c.restore(snap);
    assert_eq!(c.pipeline(&id).unwrap().model_version(), 1);
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
fn snapshot_keeps_point_history_and_detrend_state() {
    let mut config = build_config("[score]\npoint = \"z\"");
    config.detrend = Detrend::Ema { rows: 20 };
    let mut a = Detector::new(config.clone(), 10);
    let id = SensorId::new("s1");
    feed(&mut a, &id, 0, 120);
    let snap = a.snapshot();
    let s = &snap.sensors[0];
    assert!(
        s.point_scorer.as_ref().is_some_and(|p| !p.is_empty()),
        "point reference saved"
    );
    assert_eq!(s.ema.len(), 2, "EMA saved");
    let mut b = Detector::new(config, 10);
    assert_eq!(b.restore(snap.clone()), 1);
    let again = b.snapshot();
    assert_eq!(again.sensors[0].point_scorer, s.point_scorer);
    assert_eq!(again.sensors[0].ema, s.ema);
}

/// Runs readings 0..`to` where `fault(i)` says whether reading i carries the fault (vib
/// +40), with `learning` as the `[learning]` section; returns every step.
/// Three windows raise, and the threshold is the largest recent score, so the test
/// signal's own periodic peaks do not alarm.
fn run_faults(learning: &str, to: usize, fault: impl Fn(usize) -> bool) -> Vec<Step> {
    let mut config = build_config(&format!("[learning]\n{learning}"));
    config.alert.consecutive = 3;
    config.threshold.default.quantile = crate::config::Quantile::try_from(1.0).unwrap();
    let mut d = Detector::new(config, 10);
    let id = SensorId::new("s1");
    (0..to)
        .map(|i| {
            let mut r = build_reading(i);
            if fault(i) {
                r[1] += 40.0;
            }
            d.process_inline(&id, i as f64, &r, names).unwrap()
        })
        .collect()
}

fn events(steps: &[Step]) -> Vec<(usize, AlertEventKind, Option<ClearReason>)> {
    steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.event.as_ref().map(|e| (i, e.event, e.reason)))
        .collect()
}

#[test]
fn a_fault_that_comes_back_alerts_again() {
    let steps = run_faults("", 900, |i| (400..450).contains(&i) || (700..750).contains(&i));
    let raised: Vec<usize> = events(&steps)
        .into_iter()
        .filter(|e| e.1 == AlertEventKind::Raised)
        .map(|e| e.0)
        .collect();
    assert_eq!(raised, vec![402, 702], "{:?}", events(&steps));
    let id = |i: usize| steps[i].event.as_ref().unwrap().alert_id.clone();
    assert_ne!(id(402), id(702), "a fault that comes back is a new alert");
    // The threshold did not learn the first fault.
    let t = |i: usize| steps[i].scored.unwrap().threshold.unwrap();
    assert!(
        (t(699) - t(399)).abs() <= 0.5 * t(399),
        "{} vs {}",
        t(699),
        t(399)
    );
}

#[test]
fn one_fault_raises_once_and_its_recovery_clears_it() {
    let steps = run_faults("", 800, |i| (400..600).contains(&i));
    let ev = events(&steps);
    assert_eq!(ev[0].0, 402, "{ev:?}");
    assert_eq!(ev[0].1, AlertEventKind::Raised);
    assert_eq!(
        ev.iter().filter(|e| e.1 == AlertEventKind::Raised).count(),
        1,
        "{ev:?}"
    );
    // Cleared once the window no longer holds a faulty reading (8 rows) plus
    // clear_after (3) windows.
    let cleared = ev
        .iter()
        .find(|e| e.1 == AlertEventKind::Cleared)
        .expect("cleared");
    assert_eq!(cleared.2, Some(ClearReason::Recovered));
    assert!((600..620).contains(&cleared.0), "{ev:?}");
    assert_eq!(steps[500].state, SensorState::Alert);
    assert_eq!(steps[799].state, SensorState::Normal);
    // Raised events say the windows are not learned; the clear says they are again.
    let raised = steps[402].event.as_ref().unwrap();
    assert!(!raised.learning);
    assert!(steps[cleared.0].event.as_ref().unwrap().learning);
    assert!(!steps[450].scored.unwrap().learned);
    // The clear names the raise: same id, same severity (from over_by at the raise).
    let clear = steps[cleared.0].event.as_ref().unwrap();
    assert_eq!(clear.alert_id, raised.alert_id);
    assert_eq!(clear.severity, raised.severity);
    let bands = crate::alert::SeverityBands::default();
    assert_eq!(raised.severity, bands.classify(raised.over_by), "{raised:?}");
    // A 40-unit fault is far past five times the threshold; the clear's own over_by is
    // under 1, yet it repeats the raise's severity.
    assert_eq!(clear.severity, crate::alert::Severity::Critical, "{clear:?}");
    assert!(clear.over_by < 1.0, "{clear:?}");
}

#[test]
fn a_lasting_shift_is_accepted_after_accept_after_secs() {
    let steps = run_faults("accept_after_secs = 100", 1000, |i| i >= 400);
    let ev = events(&steps);
    assert_eq!(
        ev.iter().filter(|e| e.1 == AlertEventKind::Raised).count(),
        1,
        "raised once: {ev:?}"
    );
    let (at, _, reason) = ev[1];
    assert_eq!(reason, Some(ClearReason::Accepted));
    assert_eq!(at, 502, "accepted 100 s of reading time after the raise at 402");
    assert_eq!(steps[at].state, SensorState::Accepted);
    // Re-baselined inline: a new model, a threshold rebuilt from its errors, and the
    // new level scores as normal from then on.
    let after = steps[at + 1].scored.unwrap();
    assert!(after.model_version > steps[at - 1].scored.unwrap().model_version);
    assert!(!after.over && after.learned, "{after:?}");
    assert_eq!(steps[999].state, SensorState::Normal);
    // Without acceptance the same shift stays an alert.
    let never = run_faults("accept_after_secs = 0", 1000, |i| i >= 400);
    assert_eq!(events(&never).len(), 1, "{:?}", events(&never));
    assert_eq!(never[999].state, SensorState::Alert);
}

/// Peak window-only `anomaly_score` of a +`by` spike on `vib` at readings 800..804,
/// after a +40 shift from reading 400 was accepted (100 s after its raise).
fn spike_after_accepted_shift(by: f64) -> f64 {
    let mut config =
        build_config("[learning]\naccept_after_secs = 100\n[score]\npoint = \"off\"\nrange_margin = 0");
    config.alert.consecutive = 3;
    config.threshold.default.quantile = crate::config::Quantile::try_from(1.0).unwrap();
    let mut d = Detector::new(config, 10);
    let id = SensorId::new("s1");
    let mut peak = 0.0_f64;
    for i in 0..820 {
        let mut r = build_reading(i);
        if i >= 400 {
            r[1] += 40.0;
        }
        if (800..804).contains(&i) {
            r[1] += by;
        }
        let step = d.process_inline(&id, i as f64, &r, names).unwrap();
        if i >= 800 {
            peak = peak.max(step.scored.unwrap().anomaly_score);
        }
    }
    peak
}

#[test]
fn after_an_accepted_shift_a_smaller_event_still_scores_as_an_event() {
    // The re-baseline's reference leaves out the accepted alert's windows (the step of
    // 40), so a spike half that size is still an event (0.5 or more; 0.36 when the
    // reference kept them).
    let peak = spike_after_accepted_shift(20.0);
    assert!(peak >= 0.5, "{peak}");
    assert!(spike_after_accepted_shift(0.0) < 0.5, "no spike, no event");
}

#[test]
fn the_state_goes_from_warming_up_to_normal() {
    let steps = run_faults("", 200, |_| false);
    assert_eq!(steps[0].state, SensorState::WarmingUp);
    // The model comes at reading 70; the threshold needs 20 scores.
    assert_eq!(steps[80].state, SensorState::WarmingUp);
    assert_eq!(steps[199].state, SensorState::Normal);
}
