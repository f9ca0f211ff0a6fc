//! Unit tests of the alert lifecycle, the event payload, channel contributions and
//! topic rendering.

use super::topic::MAX_TOPIC_LEVEL_BYTES;
use super::*;

fn params(consecutive: u32, clear_after: u32, cooldown: u32) -> AlertParams {
    AlertParams {
        consecutive,
        clear_after,
        cooldown,
        severity: SeverityBands::default(),
        stuck_rows: 0,
        subside: 0.0,
    }
}

/// Runs a signal ("1" = over, "0" = under) and renders events as "R", "C" or ".".
fn run(p: &AlertParams, signal: &str) -> String {
    let mut s = AlertState::default();
    signal
        .chars()
        .map(|c| glyph(s.update(p, c == '1', if c == '1' { 2.0 } else { 0.5 }, 0.0)))
        .collect()
}

/// One character per window: what it did to the lifecycle.
fn glyph(step: Option<AlertStep>) -> char {
    match step {
        Some(AlertStep::Raised) => 'R',
        Some(AlertStep::Recovered) => 'C',
        Some(AlertStep::Subsided) => 'S',
        Some(AlertStep::Settled) => 'E',
        None => '.',
    }
}

#[test]
fn lifecycle_follows_the_table() {
    let cases = [
        (
            "raises after exactly `consecutive` windows",
            params(3, 1, 0),
            "11111",
            "..R..",
        ),
        (
            "an interrupted run does not raise",
            params(3, 1, 0),
            "1101101",
            ".......",
        ),
        ("zero consecutive behaves as one", params(0, 1, 0), "1", "R"),
        (
            "a single blip below does not clear",
            params(1, 2, 0),
            "1101",
            "R...",
        ),
        (
            "clears after `clear_after` windows under",
            params(1, 3, 0),
            "1000",
            "R..C",
        ),
        (
            "no re-raise during cooldown",
            params(1, 1, 3),
            "1011111",
            "RC...R.",
        ),
        (
            "a run through the cooldown raises when it ends",
            params(2, 1, 2),
            "11011110",
            ".RC..R.C",
        ),
        (
            "raise again right after a clear without cooldown",
            params(1, 1, 0),
            "1010",
            "RCRC",
        ),
    ];
    for (name, p, signal, want) in cases {
        assert_eq!(run(&p, signal), want, "{name}");
    }
}

#[test]
fn alternating_signal_raises_at_most_once_per_cooldown() {
    let cooldown = 10;
    let p = params(1, 1, cooldown);
    let signal: String = (0..200).map(|i| if i % 2 == 0 { '1' } else { '0' }).collect();
    let events = run(&p, &signal);
    let raises: Vec<usize> = events.match_indices('R').map(|(i, _)| i).collect();
    assert!(raises.len() > 1);
    for pair in raises.windows(2) {
        assert!(pair[1] - pair[0] > cooldown as usize, "raises at {pair:?}");
    }
}

#[test]
fn state_reports_raised_until_cleared() {
    let p = params(1, 1, 0);
    let mut s = AlertState::default();
    assert!(!s.is_raised());
    s.update(&p, true, 2.0, 10.0);
    assert!(s.is_raised());
    assert_eq!(s.raised_at(), Some(10.0));
    s.set_severity(Severity::Critical);
    assert_eq!(s.severity(), Some(Severity::Critical));
    s.update(&p, false, 0.5, 11.0);
    assert!(!s.is_raised());
    assert_eq!(s.raised_at(), None);
    assert_eq!(s.severity(), None);
}

/// An episode over a threshold of 1 (largest score `peak`), cleared by two windows
/// under, then `back` for five windows, inside a cooldown of 50.
fn fault_cleared_then_back(peak: f64, back: f64) -> (String, AlertState) {
    let mut scores = vec![0.5; 2];
    scores.extend([2.0, peak, 2.0, 2.0]);
    scores.extend([0.5; 2]);
    scores.extend([back; 5]);
    run_scores(&params(3, 2, 50), &scores)
}

#[test]
fn a_fault_back_worse_than_the_cleared_alert_raises_inside_the_cooldown() {
    let (steps, s) = fault_cleared_then_back(3.0, 4.0);
    assert_eq!(steps, "....R..C..R..", "raised at the third window over 3");
    assert!(s.is_raised());
}

#[test]
fn a_fault_back_no_worse_than_the_cleared_alert_waits_out_the_cooldown() {
    // The largest score of the episode counts, not its last: 2.5 is under the 3 it saw.
    for back in [2.5, 3.0] {
        let (steps, s) = fault_cleared_then_back(3.0, back);
        assert_eq!(steps, "....R..C.....", "back at {back}");
        assert!(!s.is_raised());
    }
}

#[test]
fn after_an_acceptance_the_cooldown_holds_whatever_the_score() {
    // An accepted alert re-baselines the model: its scores are no measure of the next.
    let p = params(1, 2, 5);
    let mut s = AlertState::default();
    assert_eq!(s.update(&p, true, 2.0, 0.0), Some(AlertStep::Raised));
    s.clear(&p);
    let steps: String = (0..6).map(|_| glyph(s.update(&p, true, 100.0, 0.0))).collect();
    assert_eq!(steps, ".....R", "raised only when the cooldown ends");
}

/// Feeds scores against a threshold of 1 and renders steps as `run` does.
fn run_scores(p: &AlertParams, scores: &[f64]) -> (String, AlertState) {
    let mut s = AlertState::default();
    let steps = scores
        .iter()
        .map(|&v| glyph(s.update(p, v > 1.0, v, 0.0)))
        .collect();
    (steps, s)
}

fn subsiding(subside: f64) -> AlertParams {
    AlertParams {
        subside,
        ..params(3, 4, 8)
    }
}

/// A fault at 10 that falls back to 3, still three times the threshold.
fn fault_then_offset() -> Vec<f64> {
    let mut v = vec![0.5; 5];
    v.extend([10.0; 30]);
    v.extend([3.0; 20]);
    v
}

#[test]
fn a_fault_that_falls_well_below_its_peak_clears_as_subsided_and_holds() {
    let (steps, s) = run_scores(&subsiding(0.4), &fault_then_offset());
    // Raised at the third window over; the level is 10, so 3 < 4 counts as low from
    // window 35, and the cooldown's eighth low window (42) clears.
    assert_eq!(steps.find('R'), Some(7), "{steps}");
    assert_eq!(steps.find('S'), Some(42), "{steps}");
    assert_eq!(steps.matches(['R', 'S', 'C']).count(), 2, "{steps}");
    assert!(!s.is_raised());
    assert!(
        s.in_episode(),
        "the hold keeps the episode for the learning policy"
    );
    assert_eq!(s.episode_since(), Some(0.0));
    assert_eq!(s.raised_at(), None);
}

#[test]
fn without_subside_the_same_fault_stays_raised() {
    let (steps, s) = run_scores(&subsiding(0.0), &fault_then_offset());
    assert_eq!(steps.matches(['R', 'S', 'C']).count(), 1, "{steps}");
    assert!(s.is_raised());
}

#[test]
fn a_score_over_the_held_level_raises_again_without_a_cooldown() {
    let mut scores = fault_then_offset();
    scores.extend([3.0, 3.5, 3.6, 3.7]);
    let (steps, s) = run_scores(&subsiding(0.4), &scores);
    assert_eq!(steps.rfind('R'), Some(58), "{steps}");
    assert!(s.is_raised());
}

#[test]
fn a_hold_ends_when_the_score_stays_under_the_threshold() {
    let mut scores = fault_then_offset();
    scores.extend([0.5; 4]);
    scores.extend([1.5; 10]);
    let (steps, s) = run_scores(&subsiding(0.4), &scores);
    assert_eq!(steps.find('E'), Some(58), "{steps}");
    // After the hold, the usual cooldown is not in force: 1.5 is over the threshold and
    // raises after `consecutive` windows.
    assert_eq!(steps.rfind('R'), Some(61), "{steps}");
    assert!(s.is_raised(), "the new raise begins a new episode");
}

#[test]
fn a_dip_shorter_than_the_cooldown_does_not_subside() {
    let mut scores = vec![0.5; 5];
    for _ in 0..4 {
        scores.extend([10.0; 20]);
        scores.extend([2.0; 7]);
    }
    let (steps, s) = run_scores(&subsiding(0.4), &scores);
    assert_eq!(steps.matches(['R', 'S', 'C']).count(), 1, "{steps}");
    assert!(s.is_raised());
}

#[test]
fn a_stuck_window_never_subsides() {
    let mut scores = vec![0.5; 5];
    scores.extend([10.0; 30]);
    scores.extend([f64::INFINITY; 20]);
    let (steps, s) = run_scores(&subsiding(0.4), &scores);
    assert!(!steps.contains('S'), "{steps}");
    assert!(s.is_raised());
}

#[test]
fn acceptance_clears_a_hold() {
    let p = subsiding(0.4);
    let (_, mut s) = run_scores(&p, &fault_then_offset());
    s.clear(&p);
    assert!(!s.in_episode());
    assert_eq!(s.episode_since(), None);
}

fn build_event() -> AlertEvent {
    AlertEvent {
        alert_id: severity::alert_id(severity::IdFamily::Raised, "pump/1", 1_714_564_800.25),
        sensor: "pump/1".into(),
        event: AlertEventKind::Raised,
        severity: Severity::Major,
        reason: None,
        learning: false,
        ts: 1_714_564_800.25,
        ts_rfc3339: rfc3339(1_714_564_800.25),
        score: 2.0,
        threshold: 0.5,
        quantile: 0.995,
        over_by: 4.0,
        pca_score: None,
        anomaly_score: 0.9,
        outside_range: Vec::new(),
        stuck: Vec::new(),
        model_version: 3,
        channels: channel_contributions(&["a", "b"], &[0.0, 0.0, 1.0, 1.0], &[1.0, 0.0, 1.0, 2.0]),
        window_start: 1_714_564_790.0,
        window_end: 1_714_564_800.25,
    }
}

#[test]
fn json_has_every_field() {
    let v: serde_json::Value = serde_json::from_str(&build_event().to_json()).unwrap();
    let keys = [
        "alert_id",
        "sensor",
        "event",
        "severity",
        "ts",
        "ts_rfc3339",
        "score",
        "threshold",
        "quantile",
        "over_by",
        "pca_score",
        "model_version",
        "channels",
        "window_start",
        "window_end",
    ];
    for k in keys {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["event"], "raised");
    assert_eq!(v["severity"], "major");
    assert_eq!(v["ts_rfc3339"], "2024-05-01T12:00:00.250Z");
    assert!(v["pca_score"].is_null());
    assert_eq!(v["channels"][0]["channel"], "a");
    let back: AlertEvent = serde_json::from_str(&build_event().to_json()).unwrap();
    assert_eq!(back, build_event());
}

#[test]
fn contributions_split_error_by_channel_and_shares_sum_to_one() {
    let c = build_event().channels;
    approx::assert_abs_diff_eq!(c[0].error, 0.5, epsilon = 1e-12);
    approx::assert_abs_diff_eq!(c[1].error, 0.5, epsilon = 1e-12);
    approx::assert_abs_diff_eq!(c[0].share + c[1].share, 1.0, epsilon = 1e-12);
    let zero = channel_contributions(&["a", "b", "c"], &[1.0; 3], &[1.0; 3]);
    approx::assert_abs_diff_eq!(zero.iter().map(|c| c.share).sum::<f64>(), 1.0, epsilon = 1e-12);
}

#[test]
fn topic_level_mapping_handles_the_table() {
    let long = "é".repeat(100); // 200 bytes
    let cases: [(&str, &str, &str); 12] = [
        ("slash", "a/b", "a%2Fb"),
        ("plus wildcard", "+", "%2B"),
        ("hash wildcard", "#0", "%230"),
        ("percent itself", "%2B", "%252B"),
        ("newline", "\n", "%0A"),
        ("nul", "a\0b", "a%00b"),
        ("empty", "", "%"),
        ("leading dollar", "$SYS", "%24SYS"),
        ("inner dollar kept", "a$b", "a$b"),
        ("zero-width space", "a\u{200B}b", "a%E2%80%8Bb"),
        ("plain id kept", "pump-1.temp", "pump-1.temp"),
        ("unicode kept", "température", "température"),
    ];
    for (name, input, want) in cases {
        let got = sanitize_topic_level(input);
        assert_eq!(got, want, "{name}");
    }
    let cut = sanitize_topic_level(&long);
    assert_eq!(cut.len(), 94 + crate::escape::CUT_SUFFIX_BYTES, "{cut}");
    assert!(cut.starts_with(&"é".repeat(47)) && cut.contains("%~"), "{cut}");
}

#[test]
fn topic_level_mapping_is_injective_on_ids_that_used_to_collide() {
    let prefix = "p".repeat(127);
    let encoded_prefix = "/".repeat(60);
    let ids = [
        "#0".to_string(),
        "+0".to_string(),
        "_0".to_string(),
        "pump/7".to_string(),
        "pump_7".to_string(),
        "pump%2F7".to_string(),
        "pump%7".to_string(),
        String::new(),
        "%".to_string(),
        "%25".to_string(),
        "$a".to_string(),
        "%24a".to_string(),
        format!("{prefix}a"),
        format!("{prefix}b"),
        prefix.clone(),
        format!("{encoded_prefix}x"),
        format!("{encoded_prefix}y"),
    ];
    let mut seen = std::collections::HashMap::new();
    for id in &ids {
        let level = sanitize_topic_level(id);
        assert!(level.len() <= MAX_TOPIC_LEVEL_BYTES, "{id:?} -> {level}");
        assert!(
            !level.contains(['/', '+', '#']) && !level.chars().any(char::is_control),
            "{id:?} -> {level}"
        );
        assert!(!level.starts_with('$'), "{id:?} -> {level}");
        if let Some(other) = seen.insert(level.clone(), id) {
            panic!("{other:?} and {id:?} share the topic level {level}");
        }
    }
}

proptest::proptest! {
    #[test]
    fn topic_level_mapping_never_collides_on_short_ids(a in "(?s).{0,40}", b in "(?s).{0,40}") {
        proptest::prop_assume!(a != b);
        proptest::prop_assert_ne!(sanitize_topic_level(&a), sanitize_topic_level(&b));
    }
}

#[test]
fn render_topic_substitutes_the_mapped_sensor() {
    assert_eq!(
        render_topic("anomalyd/alerts/{sensor}", "a/b#"),
        "anomalyd/alerts/a%2Fb%23"
    );
    assert_eq!(render_topic("plain", "x"), "plain");
}

#[test]
fn rfc3339_of_unrepresentable_time_is_empty() {
    assert_eq!(rfc3339(f64::NAN), "");
    assert_eq!(rfc3339(1e300), "");
    assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
}
