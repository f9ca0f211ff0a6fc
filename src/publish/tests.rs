//! Unit tests of the publisher's pure parts: payloads and expiry.

use super::*;

#[test]
fn sensor_state_serialises_with_snake_case_state() {
    let s = SensorState {
        sensor: "p/1".into(),
        state: crate::detector::SensorState::WarmingUp,
        last_clear: None,
        model_version: 0,
        threshold_ready: false,
        window_ready: false,
        stale: false,
        holding: false,
        stuck: Vec::new(),
        ts: 1.5,
    };
    let v: serde_json::Value = serde_json::from_slice(&serde_json::to_vec(&s).expect("json")).expect("parse");
    assert_eq!(v["state"], "warming_up");
    assert_eq!(v["sensor"], "p/1");
    assert_eq!(v["threshold_ready"], false);
    assert!(
        v.get("last_clear").is_none(),
        "absent before the first clear: {v}"
    );
    assert!(v.get("stuck").is_none(), "absent when no channel is stuck: {v}");
    assert!(v.get("holding").is_none(), "absent when not holding: {v}");
    let holding = SensorState {
        last_clear: Some(crate::alert::ClearReason::Subsided),
        holding: true,
        state: crate::detector::SensorState::Normal,
        ..s.clone()
    };
    let v = serde_json::to_value(&holding).expect("json");
    assert_eq!(
        (
            v["state"].as_str(),
            v["last_clear"].as_str(),
            v["holding"].as_bool()
        ),
        (Some("normal"), Some("subsided"), Some(true))
    );
    let stuck = SensorState {
        stuck: vec!["b".into()],
        ..s.clone()
    };
    assert_eq!(
        serde_json::to_value(&stuck).expect("json")["stuck"],
        serde_json::json!(["b"])
    );
    let accepted = SensorState {
        state: crate::detector::SensorState::Accepted,
        last_clear: Some(crate::alert::ClearReason::Accepted),
        ..s
    };
    let v = serde_json::to_value(&accepted).expect("json");
    assert_eq!(
        (v["state"].as_str(), v["last_clear"].as_str()),
        (Some("accepted"), Some("accepted"))
    );
}

#[test]
fn remaining_expiry_counts_down_from_the_time_queued_and_ends() {
    let t0 = Instant::now();
    let secs = Duration::from_secs;
    let cases = [
        ("no expiry", None, secs(1000), Some(None)),
        ("fresh", Some(secs(60)), secs(0), Some(Some(60))),
        (
            "part gone",
            Some(secs(60)),
            Duration::from_millis(20_500),
            Some(Some(40)),
        ),
        (
            "a fraction left",
            Some(secs(60)),
            Duration::from_millis(59_999),
            Some(Some(1)),
        ),
        ("exactly expired", Some(secs(60)), secs(60), None),
        ("long expired", Some(secs(60)), secs(3600), None),
    ];
    for (name, expiry, age, want) in cases {
        assert_eq!(remaining(expiry, t0, t0 + age), want, "{name}");
    }
}
