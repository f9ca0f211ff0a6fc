//! Normal telemetry, anomalies, recovery and bad input.

use std::time::Duration;

use super::*;
use support::{counter, metrics, now, wait_for_metrics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_telemetry_warms_up_without_alerts_then_anomaly_raises_and_recovery_clears() {
    let w = World::new("lifecycle", 10).await;
    let (mut d, mut probe) = w.start().await;
    let topic = w.telemetry("pump-1");
    let mut sig = Signal::new(now() - 5000.0);

    let seen = warm_up(&mut probe, &topic, "pump-1", &mut sig).await;
    assert!(
        seen.iter()
            .any(|m| is_state(m, "pump-1", |s| s["state"] == "warming_up")),
        "no warming_up state seen"
    );
    feed(&probe, &topic, &mut sig, 40, 0.0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let normal: Vec<_> = seen
        .into_iter()
        .chain(probe.drain())
        .filter(|m| m.topic.contains("/alerts/"))
        .collect();
    assert!(
        normal.is_empty(),
        "alert on normal telemetry: {:?}",
        normal.iter().map(support::Msg::json).collect::<Vec<_>>()
    );

    feed(&probe, &topic, &mut sig, 12, SHIFT).await;
    let raised = probe
        .wait_for(WAIT, "a raised alert", |m| is_alert(m, "raised"))
        .await;
    assert_eq!(raised.topic, format!("{}/alerts/pump-1", w.prefix));
    assert_full_alert(&raised.json(), "pump-1", "raised");
    probe
        .wait_for(WAIT, "alert state", |m| {
            is_state(m, "pump-1", |s| s["state"] == "alert")
        })
        .await;

    feed(&probe, &topic, &mut sig, 40, 0.0).await;
    let cleared = probe
        .wait_for(WAIT, "a cleared alert", |m| is_alert(m, "cleared"))
        .await;
    assert_full_alert(&cleared.json(), "pump-1", "cleared");
    let (raised, cleared) = (raised.json(), cleared.json());
    assert_eq!(raised["alert_id"], cleared["alert_id"], "one alert, one id");
    assert_eq!(
        raised["severity"], cleared["severity"],
        "a clear repeats its raise's severity"
    );
    probe
        .wait_for(WAIT, "normal state", |m| {
            is_state(m, "pump-1", |s| s["state"] == "normal")
        })
        .await;
    assert!(d.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_of_every_kind_is_counted_and_the_good_sensor_still_alerts() {
    // Two sensors: `good`, then `junk`; a third is over the cap.
    let w = World::new("garbage", 2).await;
    let (mut d, mut probe) = w.start().await;
    let good = w.telemetry("good");
    let junk = w.telemetry("junk");
    let mut sig = Signal::new(now() - 5000.0);
    feed(&probe, &good, &mut sig, 10, 0.0).await;
    let t = now() - 100.0;
    let huge = format!(r#"{{"ts":{t},"a":1,"b":"{}"}}"#, "x".repeat(3000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not_json", b"{not json".to_vec()),
        ("not_utf8", vec![0xff, 0xfe, 0x7b]),
        ("wrong_type", b"[1, 2, 3]".to_vec()),
        (
            "not_finite",
            format!(r#"{{"ts":{t},"a":1e400,"b":1}}"#).into_bytes(),
        ),
        ("bad_timestamp", br#"{"ts":"yesterday","a":1,"b":2}"#.to_vec()),
        (
            "absurd_timestamp",
            br#"{"ts":99999999999999,"a":1,"b":2}"#.to_vec(),
        ),
        ("absurd_timestamp", br#"{"ts":-5,"a":1,"b":2}"#.to_vec()),
        ("no_channels", format!(r#"{{"ts":{t},"a":"high"}}"#).into_bytes()),
        ("too_large", huge.into_bytes()),
        (
            "too_many_channels",
            format!(r#"{{"ts":{t},"a":1,"b":2,"c":3,"d":4,"e":5}}"#).into_bytes(),
        ),
        // The first good reading of `junk` starts its channel set as {a}; the {a, b}
        // reading below widens it (no model yet) and restarts its warm-up.
        ("first_reading", format!(r#"{{"ts":{t},"a":1}}"#).into_bytes()),
    ];
    for (_, payload) in &cases {
        probe.send(&junk, payload.clone()).await;
    }
    // Order problems on the good sensor: a duplicate and a reading older than any it
    // sent (a late one among its last `reorder_rows` would be put back in order).
    probe
        .send(&good, format!(r#"{{"ts":{},"a":0.1,"b":0.2}}"#, sig.ts - 1.0))
        .await;
    probe
        .send(&good, format!(r#"{{"ts":{},"a":0.1,"b":0.2}}"#, sig.ts - 20.0))
        .await;
    // A missing timestamp is stamped with the arrival time (devices without clocks).
    probe.send(&junk, br#"{"a":1,"b":2}"#.to_vec()).await;
    // Over the sensor cap, and a topic that matches no source... by construction none
    // can arrive (we only subscribe to sources), so the cap is the last case.
    probe
        .send(&w.telemetry("intruder"), format!(r#"{{"ts":{t},"a":1,"b":2}}"#))
        .await;

    let mut expected: Vec<&str> = cases
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| *k != "first_reading")
        .collect();
    // Parser rejections are `payload_errors{kind}`; the detector's are
    // `readings_dropped{reason}`.
    expected.extend(["duplicate", "out_of_order", "sensor_cap"]);
    let deadline = tokio::time::Instant::now() + WAIT;
    let (text, missing) = loop {
        let text = metrics(w.metrics_port).await;
        let mut missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|k| counter(&text, "anomalyd_", &format!("=\"{k}\"")) < 1.0)
            .collect();
        if counter(&text, "anomalyd_channel_sets_widened_total", "") < 1.0 {
            missing.push("channel_sets_widened");
        }
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break (text, missing);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(missing.is_empty(), "not counted: {missing:?}\n{text}");
    assert!(d.alive(), "daemon died on bad input:\n{}", d.log_text());
    assert!(
        d.log_text().contains("Dropped malformed message"),
        "no rate-limited warning in the log"
    );

    warm_up(&mut probe, &good, "good", &mut sig).await;
    feed(&probe, &good, &mut sig, 12, SHIFT).await;
    let raised = probe
        .wait_for(WAIT, "the good sensor's alert", |m| is_alert(m, "raised"))
        .await;
    assert_full_alert(&raised.json(), "good", "raised");
    // Trained, its set is fixed: a new channel is refused, not a new warm-up.
    probe
        .send(
            &good,
            format!(r#"{{"ts":{},"a":0.1,"b":0.2,"c":0.3}}"#, sig.ts + 1.0),
        )
        .await;
    wait_for_metrics(w.metrics_port, "the new channel refused", |t| {
        counter(
            t,
            "anomalyd_readings_dropped_total",
            "reason=\"channel_set_changed\"",
        ) >= 1.0
    })
    .await;
    assert!(d.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_fault_alerts_again_and_a_lasting_one_is_accepted() {
    let mut w = World::new("learning", 10).await;
    // 30 s of reading time (30 readings here) turns a raised alert into the new normal.
    w.config.push_str("\n[learning]\naccept_after_secs = 30\n");
    let (mut d, mut probe) = w.start().await;
    let topic = w.telemetry("pump-2");
    let mut sig = Signal::new(now() - 5000.0);
    warm_up(&mut probe, &topic, "pump-2", &mut sig).await;
    feed(&probe, &topic, &mut sig, 40, 0.0).await;
    let mut ids = Vec::new();
    for round in 0..2 {
        feed(&probe, &topic, &mut sig, 12, SHIFT).await;
        let raised = probe
            .wait_for(WAIT, "a raised alert", |m| is_alert(m, "raised"))
            .await
            .json();
        assert_eq!(raised["learning"], false, "round {round}: {raised}");
        feed(&probe, &topic, &mut sig, 40, 0.0).await;
        let cleared = probe
            .wait_for(WAIT, "a cleared alert", |m| is_alert(m, "cleared"))
            .await
            .json();
        assert_eq!(cleared["reason"], "recovered", "round {round}: {cleared}");
        assert_eq!(cleared["learning"], true, "round {round}: {cleared}");
        assert_eq!(cleared["alert_id"], raised["alert_id"], "round {round}");
        ids.push(raised["alert_id"].clone());
    }
    assert_ne!(ids[0], ids[1], "a returning fault is a new alert");
    feed(&probe, &topic, &mut sig, 60, SHIFT).await;
    let lasting = probe
        .wait_for(WAIT, "the lasting shift raised", |m| is_alert(m, "raised"))
        .await
        .json();
    let accepted = probe
        .wait_for(WAIT, "the lasting shift accepted", |m| is_alert(m, "cleared"))
        .await
        .json();
    assert_eq!(accepted["reason"], "accepted", "{accepted}");
    support::schema::assert_valid_alert(&accepted);
    assert_eq!(accepted["alert_id"], lasting["alert_id"], "{accepted}");
    probe
        .wait_for(WAIT, "the retained state says accepted", |m| {
            is_state(m, "pump-2", |s| s["last_clear"] == "accepted")
        })
        .await;
    let text = metrics(w.metrics_port).await;
    assert!(
        counter(&text, "anomalyd_alerts_accepted_total", "") >= 1.0,
        "accepted alerts not counted:\n{text}"
    );
    assert!(d.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_that_subsides_to_an_offset_clears_as_subsided_and_its_return_alerts_again() {
    let mut w = World::new("subside", 10).await;
    // Far beyond the test: only the subside rule can clear the offset.
    w.config.push_str("\n[learning]\naccept_after_secs = 100000\n");
    let (mut d, mut probe) = w.start().await;
    let topic = w.telemetry("pump-4");
    let mut sig = Signal::new(now() - 5000.0);
    warm_up(&mut probe, &topic, "pump-4", &mut sig).await;
    feed(&probe, &topic, &mut sig, 12, SHIFT).await;
    let raised = probe
        .wait_for(WAIT, "the fault raised", |m| is_alert(m, "raised"))
        .await
        .json();
    // A fifth of the fault's offset: its error a few percent of the fault's, still far
    // over the threshold.
    feed(&probe, &topic, &mut sig, 40, SHIFT / 2.5).await;
    let subsided = probe
        .wait_for(WAIT, "the fault subsided", |m| is_alert(m, "cleared"))
        .await
        .json();
    support::schema::assert_valid_alert(&subsided);
    assert_eq!(subsided["reason"], "subsided", "{subsided}");
    assert_eq!(subsided["alert_id"], raised["alert_id"], "{subsided}");
    assert_eq!(subsided["learning"], false, "{subsided}");
    assert!(subsided["over_by"].as_f64().unwrap() > 1.0, "{subsided}");
    probe
        .wait_for(WAIT, "the retained state says subsided", |m| {
            is_state(m, "pump-4", |s| {
                s["last_clear"] == "subsided" && s["state"] == "normal" && s["holding"] == true
            })
        })
        .await;
    // The full fault again: over the level it subsided to, a new alert.
    feed(&probe, &topic, &mut sig, 12, SHIFT).await;
    let again = probe
        .wait_for(WAIT, "the fault raised again", |m| is_alert(m, "raised"))
        .await
        .json();
    support::schema::assert_valid_alert(&again);
    assert_ne!(again["alert_id"], raised["alert_id"], "{again}");
    assert!(d.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_written_by_replay_lets_the_daemon_score_at_once() {
    let w = World::new("warmstart", 10).await;
    // History of pump-1, one reading a second, ending ten minutes ago; the columns are
    // not in the order the daemon sees them (its JSON channels are sorted by name).
    let start = now() - 2000.0;
    let mut csv = String::from("timestamp,b,a\n");
    for i in 0..1400 {
        let phase = i as f64 * std::f64::consts::TAU / 16.0;
        csv += &format!("{},{:.5},{:.5}\n", start + i as f64, phase.cos(), phase.sin());
    }
    let input = w.dir.path().join("pump-1-history.csv");
    let config = w.dir.path().join("train.toml");
    std::fs::write(&input, csv).unwrap();
    std::fs::write(&config, &w.config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anomalyd"))
        .args(["replay", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(&input)
        .args(["--sensor", "pump-1", "--output"])
        .arg(w.dir.path().join("replay.csv"))
        .arg("--snapshot-out")
        .arg(w.state_dir())
        .output()
        .expect("run replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay failed: {stderr}");
    assert!(stderr.contains("channels a,b"), "{stderr}");

    let (mut d, mut probe) = w.start().await;
    // A cold sensor needs 8 + 64 readings for its model and 20 scores for its
    // threshold; this one needs only its window refilled after the gap.
    let mut sig = Signal::new(now() - 500.0);
    feed(&probe, &w.telemetry("pump-1"), &mut sig, 12, 0.0).await;
    let ready = probe
        .wait_for(WAIT, "pump-1 scoring with the replayed model", |m| {
            is_state(m, "pump-1", |s| s["state"] == "normal")
        })
        .await
        .json();
    assert_eq!(ready["threshold_ready"], true, "{ready}");
    assert_eq!(
        ready["model_version"], 1,
        "the replayed model, not a new one: {ready}"
    );
    // 12 readings after the gap: the window refills (8) and scores, no training.
    let text = wait_for_metrics(w.metrics_port, "windows scored", |t| {
        counter(t, "anomalyd_windows_scored_total", "") >= 5.0
    })
    .await;
    let trained = counter(&text, "anomalyd_retrains_total", "result=\"ok\"");
    assert_eq!(trained, 0.0, "{text}");
    assert!(d.alive());
}
