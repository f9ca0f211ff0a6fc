//! Integration tests: the `anomalyd` binary against a real Mosquitto started by the
//! harness on a free port. Each test has its own broker, client ids, topic prefix and
//! state directory, and every wait is bounded.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Broker, Daemon, Probe, Setup, Signal, WAIT, counter, feed, free_port, metrics, now};

/// Anomaly size: five signal amplitudes, far outside anything normal.
const SHIFT: f64 = 5.0;

/// One test's world: broker, temp dir, config text, topics.
struct World {
    broker: Broker,
    dir: tempfile::TempDir,
    prefix: String,
    metrics_port: u16,
    config: String,
}

impl World {
    async fn new(prefix: &str, max_sensors: usize) -> World {
        let broker = Broker::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("state");
        let metrics_port = free_port();
        let config = support::config(&Setup {
            prefix,
            port: broker.port,
            state_dir: &state,
            metrics_port,
            max_sensors,
        });
        World {
            broker,
            dir,
            prefix: prefix.to_string(),
            metrics_port,
            config,
        }
    }

    fn daemon(&self) -> Daemon {
        Daemon::start(self.dir.path(), &self.config)
    }

    async fn probe(&self) -> Probe {
        let p = &self.prefix;
        Probe::connect(
            self.broker.port,
            p,
            &[
                format!("{p}/alerts/+"),
                format!("{p}/state/+"),
                format!("{p}/status"),
            ],
        )
        .await
    }

    fn telemetry(&self, sensor: &str) -> String {
        format!("{}/sensors/{sensor}/telemetry", self.prefix)
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }
}

fn is_state(m: &support::Msg, sensor: &str, pred: impl Fn(&Value) -> bool) -> bool {
    m.topic.ends_with(&format!("/state/{sensor}")) && pred(&m.json())
}

fn is_alert(m: &support::Msg, event: &str) -> bool {
    m.topic.contains("/alerts/") && m.json()["event"] == event
}

/// Feeds normal telemetry until the sensor has a model and a ready threshold; returns
/// every message seen meanwhile.
async fn warm_up(
    probe: &mut Probe,
    topic: &str,
    sensor: &str,
    sig: &mut Signal,
) -> Vec<support::Msg> {
    let mut seen = Vec::new();
    feed(probe, topic, sig, 80, 0.0).await;
    let m = probe
        .wait_for(WAIT, "a first model", |m| {
            seen.push(m.clone());
            is_state(m, sensor, |s| s["model_version"].as_u64() >= Some(1))
        })
        .await;
    assert_eq!(
        m.json()["threshold_ready"],
        false,
        "threshold ready before any score: {:?}",
        m.json()
    );
    feed(probe, topic, sig, 30, 0.0).await;
    probe
        .wait_for(WAIT, "a ready threshold", |m| {
            seen.push(m.clone());
            is_state(m, sensor, |s| s["threshold_ready"] == true)
        })
        .await;
    seen
}

fn assert_full_alert(a: &Value, sensor: &str, event: &str) {
    assert_eq!(a["sensor"], sensor);
    assert_eq!(a["event"], event);
    for key in [
        "ts",
        "score",
        "threshold",
        "quantile",
        "pca_score",
        "window_start",
        "window_end",
    ] {
        assert!(
            a[key].as_f64().is_some_and(f64::is_finite),
            "alert field {key} missing or not finite: {a}"
        );
    }
    assert!(a["model_version"].as_u64() >= Some(1), "model_version: {a}");
    assert!(
        a["window_start"].as_f64() <= a["window_end"].as_f64(),
        "window order: {a}"
    );
    let channels = a["channels"].as_array().expect("channels array");
    let names: Vec<&str> = channels
        .iter()
        .filter_map(|c| c["channel"].as_str())
        .collect();
    assert_eq!(names, ["a", "b"], "channel contributions: {a}");
    if event == "raised" {
        assert!(
            a["score"].as_f64() > a["threshold"].as_f64(),
            "raised below threshold: {a}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_telemetry_warms_up_without_alerts_then_anomaly_raises_and_recovery_clears() {
    let w = World::new("lifecycle", 10).await;
    let mut d = w.daemon();
    let mut probe = w.probe().await;
    probe
        .wait_for(WAIT, "birth message", |m| {
            m.topic.ends_with("/status") && m.payload == b"online"
        })
        .await;
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
    let mut d = w.daemon();
    let mut probe = w.probe().await;
    probe
        .wait_for(WAIT, "birth message", |m| {
            m.topic.ends_with("/status") && m.payload == b"online"
        })
        .await;
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
        (
            "bad_timestamp",
            br#"{"ts":"yesterday","a":1,"b":2}"#.to_vec(),
        ),
        (
            "absurd_timestamp",
            br#"{"ts":99999999999999,"a":1,"b":2}"#.to_vec(),
        ),
        ("absurd_timestamp", br#"{"ts":-5,"a":1,"b":2}"#.to_vec()),
        (
            "no_channels",
            format!(r#"{{"ts":{t},"a":"high"}}"#).into_bytes(),
        ),
        ("too_large", huge.into_bytes()),
        (
            "too_many_channels",
            format!(r#"{{"ts":{t},"a":1,"b":2,"c":3,"d":4,"e":5}}"#).into_bytes(),
        ),
        (
            "wrong_channels",
            format!(r#"{{"ts":{t},"a":1}}"#).into_bytes(),
        ),
    ];
    for (_, payload) in &cases {
        probe.send(&junk, payload.clone()).await;
    }
    // Order problems on the good sensor: a duplicate and an older reading.
    probe
        .send(
            &good,
            format!(r#"{{"ts":{},"a":0.1,"b":0.2}}"#, sig.ts - 1.0),
        )
        .await;
    probe
        .send(
            &good,
            format!(r#"{{"ts":{},"a":0.1,"b":0.2}}"#, sig.ts - 5.0),
        )
        .await;
    // A missing timestamp is stamped with the arrival time (devices without clocks).
    probe.send(&junk, br#"{"a":1,"b":2}"#.to_vec()).await;
    // Over the sensor cap, and a topic that matches no source... by construction none
    // can arrive (we only subscribe to sources), so the cap is the last case.
    probe
        .send(
            &w.telemetry("intruder"),
            format!(r#"{{"ts":{t},"a":1,"b":2}}"#),
        )
        .await;

    let mut expected: Vec<&str> = cases.iter().map(|(k, _)| *k).collect();
    // Parser rejections are `payload_errors{kind}`; the detector's are
    // `readings_dropped{reason}`.
    expected.extend(["duplicate", "out_of_order", "sensor_cap"]);
    let deadline = tokio::time::Instant::now() + WAIT;
    let (text, missing) = loop {
        let text = metrics(w.metrics_port).await;
        let missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|k| counter(&text, "anomalyd_", &format!("=\"{k}\"")) < 1.0)
            .collect();
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
    assert!(d.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_reconnects_and_an_alert_raised_during_the_outage_arrives_afterwards() {
    let mut w = World::new("outage", 10).await;
    let mut d = w.daemon();
    let mut probe = w.probe().await;
    probe
        .wait_for(WAIT, "birth message", |m| {
            m.topic.ends_with("/status") && m.payload == b"online"
        })
        .await;
    let topic = w.telemetry("press-3");
    let mut sig = Signal::new(now() - 5000.0);
    warm_up(&mut probe, &topic, "press-3", &mut sig).await;

    // Freeze the daemon, let the broker hand it the anomaly (it sits in the socket
    // buffer), stop the broker, then thaw: the alert is raised with the broker away.
    d.signal("STOP");
    feed(&probe, &topic, &mut sig, 12, SHIFT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.broker.stop();
    d.signal("CONT");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(d.alive());
    w.broker.restart().await;

    // The publisher says `online` on its ConnAck, then delivers the queued alert.
    let mut birth = false;
    let raised = probe
        .wait_for(
            WAIT,
            "the alert raised during the outage (see the daemon log)",
            |m| {
                birth |= m.topic.ends_with("/status") && m.payload == b"online";
                is_alert(m, "raised")
            },
        )
        .await;
    assert_full_alert(&raised.json(), "press-3", "raised");
    if !birth {
        probe
            .wait_for(WAIT, "birth after reconnect", |m| {
                m.topic.ends_with("/status") && m.payload == b"online"
            })
            .await;
    }
    // Telemetry flows again: the subscription survived or was renewed.
    feed(&probe, &topic, &mut sig, 40, 0.0).await;
    probe
        .wait_for(WAIT, "a cleared alert after reconnect", |m| {
            is_alert(m, "cleared")
        })
        .await;
    let text = metrics(w.metrics_port).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("anomalyd_broker_connected") && l.ends_with(" 1")),
        "broker_connected not 1:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_with_a_snapshot_and_a_restart_alerts_without_warm_up() {
    let w = World::new("snapshot", 10).await;
    let mut d = w.daemon();
    let mut probe = w.probe().await;
    probe
        .wait_for(WAIT, "birth message", |m| {
            m.topic.ends_with("/status") && m.payload == b"online"
        })
        .await;
    let topic = w.telemetry("fan-2");
    let mut sig = Signal::new(now() - 5000.0);
    warm_up(&mut probe, &topic, "fan-2", &mut sig).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let code = d.terminate(Duration::from_secs(12)).await;
    assert_eq!(code, Some(0), "exit code; log:\n{}", d.log_text());
    probe
        .wait_for(WAIT, "offline status", |m| {
            m.topic.ends_with("/status") && m.payload == b"offline"
        })
        .await;
    let files: Vec<_> = std::fs::read_dir(w.state_dir())
        .expect("state dir")
        .filter_map(Result::ok)
        .collect();
    assert!(!files.is_empty(), "no snapshot written");

    let mut d2 = w.daemon();
    probe
        .wait_for(WAIT, "birth after restart", |m| {
            m.topic.ends_with("/status") && m.payload == b"online"
        })
        .await;
    // Far fewer readings than the 64 training windows a warm-up needs.
    feed(&probe, &topic, &mut sig, 10, 0.0).await;
    feed(&probe, &topic, &mut sig, 12, SHIFT).await;
    let raised = probe
        .wait_for(WAIT, "an alert right after restart", |m| {
            is_alert(m, "raised")
        })
        .await;
    let a = raised.json();
    assert_full_alert(&a, "fan-2", "raised");
    assert_eq!(
        a["model_version"], 1,
        "model version did not continue from the snapshot"
    );
    assert!(d2.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_is_logged_and_ignored() {
    let w = World::new("corrupt", 10).await;
    let mut d = w.daemon();
    let mut probe = w.probe().await;
    probe
        .wait_for(WAIT, "birth message", |m| {
            m.topic.ends_with("/status") && m.payload == b"online"
        })
        .await;
    let topic = w.telemetry("valve-9");
    let mut sig = Signal::new(now() - 5000.0);
    feed(&probe, &topic, &mut sig, 20, 0.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        d.terminate(Duration::from_secs(12)).await,
        Some(0),
        "log:\n{}",
        d.log_text()
    );

    let mut corrupted = 0;
    for e in std::fs::read_dir(w.state_dir())
        .expect("state dir")
        .filter_map(Result::ok)
    {
        if e.path().is_file() {
            std::fs::write(e.path(), b"this is not a snapshot \x00\x01\x02").expect("corrupt");
            corrupted += 1;
        }
    }
    assert!(corrupted > 0, "no snapshot file to corrupt");

    let mut d2 = w.daemon();
    probe
        .wait_for(WAIT, "birth despite the corrupt snapshot", |m| {
            m.topic.ends_with("/status") && m.payload == b"online"
        })
        .await;
    feed(&probe, &topic, &mut sig, 20, 0.0).await;
    probe
        .wait_for(WAIT, "a fresh warm-up", |m| {
            is_state(m, "valve-9", |s| s["state"] == "warming_up")
        })
        .await;
    assert!(d2.alive());
    let log = d2.log_text();
    assert!(
        log.contains("Snapshot unusable"),
        "corrupt snapshot not reported:\n{log}"
    );
}
