//! Snapshots: what a restored detector keeps (model, threshold history, point history,
//! detrend state) and the model it refuses (another architecture).

use super::*;
use crate::config::{Config, Detrend};

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

#[test]
fn snapshot_keeps_the_likelihood_statistics() {
    let config = build_config("[score]\nlikelihood_tail = 0.001");
    let mut a = Detector::new(config.clone(), 10);
    let id = SensorId::new("s1");
    feed(&mut a, &id, 0, 300);
    let snap = a.snapshot();
    let saved = snap.sensors[0].likelihood.clone().expect("likelihood saved");
    assert!(saved.count() >= 30, "enough history to score: {saved:?}");
    let mut b = Detector::new(config, 10);
    assert_eq!(b.restore(snap), 1);
    assert_eq!(b.snapshot().sensors[0].likelihood, Some(saved));
    // Scored alike from the first full window after the restart.
    let sa = feed(&mut a, &id, 300, 340);
    let sb = feed(&mut b, &id, 300, 340);
    let last = |s: &[Step]| s.last().unwrap().scored.unwrap().anomaly_score;
    assert_eq!(last(&sa), last(&sb));
    // Off: nothing saved.
    let mut off = Detector::new(build_config("[score]\nlikelihood_tail = 0"), 10);
    feed(&mut off, &id, 0, 300);
    assert_eq!(off.snapshot().sensors[0].likelihood, None);
}
