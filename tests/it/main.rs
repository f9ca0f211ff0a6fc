//! Integration tests: the `anomalyd` binary against a real Mosquitto started by the
//! harness on a free port. Each test has its own broker, client ids, topic prefix and
//! state directory, and every wait is bounded.

mod alerts;
mod cluster;
mod faults;
mod homeassistant;
mod lifecycle;
mod limits;
mod mqtt5;
mod operator;
mod payloads;
mod resilience;
mod shards;
mod slowlink;
mod support;

use serde_json::Value;
use support::{Broker, Daemon, Probe, Setup, Signal, WAIT, feed, free_port};

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

    /// Starts the daemon and a probe, and waits for the daemon's birth message.
    async fn start(&self) -> (Daemon, Probe) {
        let daemon = self.daemon();
        let mut probe = self.probe().await;
        probe.wait_online(WAIT).await;
        (daemon, probe)
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
async fn warm_up(probe: &mut Probe, topic: &str, sensor: &str, sig: &mut Signal) -> Vec<support::Msg> {
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
    support::schema::assert_valid_alert(a);
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
    let names: Vec<&str> = channels.iter().filter_map(|c| c["channel"].as_str()).collect();
    assert_eq!(names, ["a", "b"], "channel contributions: {a}");
    if event == "raised" {
        assert!(
            a["score"].as_f64() > a["threshold"].as_f64(),
            "raised below threshold: {a}"
        );
    }
}
