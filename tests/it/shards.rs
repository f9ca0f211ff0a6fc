//! Sensors sharded over two detector workers (`[limits] detector_workers = 2`, issue 12
//! target 1): every sensor is scored by exactly one worker, in order; an anomaly gives
//! one alert; the global limits and the snapshot span both workers.

use std::num::NonZeroU32;
use std::time::Duration;

use super::*;
use support::{counter, metrics, now, wait_for_metrics};

/// Six sensors; the test checks below that both workers own some.
const SENSORS: [&str; 6] = ["pump-1", "pump-2", "pump-3", "pump-4", "pump-5", "pump-6"];

/// Readings per sensor in the warm-up: 80 for a first model, 30 for the threshold.
const WARM: usize = 110;

/// The harness config (a cap of exactly the six sensors, two workers) without a
/// reorder buffer, so a reading that overtook an older one of its sensor would be
/// dropped and counted as `out_of_order` instead of being put back in place.
fn sharded_config(w: &World) -> String {
    let config = w.config.replace("[window]\n", "[window]\nreorder_rows = 0\n");
    assert!(config.contains("detector_workers = 2") && config.contains("reorder_rows = 0"));
    config
}

/// Latest retained state of every sensor once each satisfies `pred`.
async fn wait_all(probe: &mut Probe, what: &str, pred: impl Fn(&Value) -> bool) {
    let mut ok = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while ok.len() < SENSORS.len() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = probe.wait_for(left, what, |m| m.topic.contains("/state/")).await;
        let s = m.json();
        let sensor = s["sensor"].as_str().unwrap_or_default().to_string();
        if pred(&s) {
            ok.insert(sensor);
        } else {
            ok.remove(&sensor);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_score_every_sensor_once_in_order_and_alert_once() {
    let two = NonZeroU32::new(2).expect("non-zero");
    let owners: Vec<u32> = SENSORS
        .iter()
        .map(|s| anomalyd::cluster::worker_of(s, two))
        .collect();
    assert!(
        owners.contains(&0) && owners.contains(&1),
        "the test sensors must span both workers: {owners:?}"
    );
    let w = World::new("shards", SENSORS.len()).await;
    let config = sharded_config(&w);
    let mut daemon = Daemon::start(w.dir.path(), &config);
    let mut probe = w.probe().await;
    probe.wait_online(WAIT).await;

    // Interleaved telemetry of all six sensors, as a gateway sends it.
    let mut signals: Vec<Signal> = SENSORS.iter().map(|_| Signal::new(now() - 5000.0)).collect();
    for _ in 0..80 {
        for (sensor, sig) in SENSORS.iter().zip(&mut signals) {
            probe.send(&w.telemetry(sensor), sig.next(0.0)).await;
        }
    }
    wait_all(&mut probe, "a first model for every sensor", |s| {
        s["model_version"].as_u64() >= Some(1)
    })
    .await;
    for _ in 0..(WARM - 80) {
        for (sensor, sig) in SENSORS.iter().zip(&mut signals) {
            probe.send(&w.telemetry(sensor), sig.next(0.0)).await;
        }
    }
    wait_all(&mut probe, "a ready threshold for every sensor", |s| {
        s["threshold_ready"] == true
    })
    .await;

    // Every reading accepted and none refused as out of order or duplicate; each
    // sensor tracked once (a sensor split over both workers would be counted twice).
    let total = (WARM * SENSORS.len()) as f64;
    let text = wait_for_metrics(w.metrics_port, "every reading accepted", |t| {
        counter(t, "anomalyd_readings_total", "") >= total && counter(t, "anomalyd_sensors", "") > 0.0
    })
    .await;
    assert_eq!(counter(&text, "anomalyd_readings_total", ""), total, "{text}");
    assert_eq!(
        counter(&text, "anomalyd_readings_dropped_total", ""),
        0.0,
        "{text}"
    );
    assert_eq!(
        counter(&text, "anomalyd_readings_reordered_total", ""),
        0.0,
        "{text}"
    );
    assert_eq!(
        counter(&text, "anomalyd_sensors", ""),
        SENSORS.len() as f64,
        "{text}"
    );
    // Every sensor scored: its score gauges exist.
    let text = wait_for_metrics(w.metrics_port, "score gauges of every sensor", |t| {
        SENSORS
            .iter()
            .all(|s| t.contains(&format!("anomalyd_score{{sensor=\"{s}\"}}")))
    })
    .await;
    assert!(counter(&text, "anomalyd_windows_scored_total", "") > 0.0);

    // One anomaly on a sensor of each worker: exactly one raised alert each.
    let targets = [0, 1].map(|worker| owners.iter().position(|&o| o == worker).expect("owned"));
    for &k in &targets {
        let topic = w.telemetry(SENSORS[k]);
        feed(&probe, &topic, &mut signals[k], 12, SHIFT).await;
    }
    let mut raised = Vec::new();
    while raised.len() < 2 {
        let m = probe
            .wait_for(WAIT, "a raised alert per target", |m| is_alert(m, "raised"))
            .await;
        raised.push(m.json()["sensor"].as_str().unwrap_or_default().to_string());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    raised.extend(
        (probe.drain().iter())
            .filter(|m| is_alert(m, "raised"))
            .map(|m| m.json()["sensor"].as_str().unwrap_or_default().to_string()),
    );
    raised.sort();
    let mut want: Vec<String> = targets.iter().map(|&k| SENSORS[k].to_string()).collect();
    want.sort();
    assert_eq!(raised, want, "one raised alert per anomalous sensor");

    // The cap is global: a seventh sensor is refused whichever worker it hashes to.
    let mut extra = Signal::new(now() - 5000.0);
    feed(&probe, &w.telemetry("pump-7"), &mut extra, 3, 0.0).await;
    let text = wait_for_metrics(w.metrics_port, "the seventh sensor refused", |t| {
        counter(t, "anomalyd_readings_dropped_total", "reason=\"sensor_cap\"") >= 3.0
    })
    .await;
    assert_eq!(
        counter(&text, "anomalyd_sensors", ""),
        SENSORS.len() as f64,
        "{text}"
    );

    // Shutdown drains both workers into one snapshot with all six sensors, and a
    // restart restores them all (their models: no warm-up).
    let code = daemon.terminate(Duration::from_secs(12)).await;
    assert_eq!(code, Some(0), "exit code; log:\n{}", daemon.log_text());
    let log = daemon.log_text();
    assert!(log.contains("workers=2"), "two workers not started:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("Final snapshot written") && l.contains("sensors=6")),
        "final snapshot without every worker's sensors:\n{log}"
    );
    let restarted = Daemon::start(w.dir.path(), &config);
    probe.wait_online(WAIT).await;
    wait_for_metrics(w.metrics_port, "the restarted daemon", |t| !t.is_empty()).await;
    // Only states published by the restarted daemon count from here.
    probe.drain();
    for (sensor, sig) in SENSORS.iter().zip(&mut signals) {
        probe.send(&w.telemetry(sensor), sig.next(0.0)).await;
    }
    wait_all(&mut probe, "every sensor restored with its model", |s| {
        s["model_version"].as_u64() >= Some(1) && s["threshold_ready"] == true
    })
    .await;
    let text = metrics(w.metrics_port).await;
    assert_eq!(
        counter(&text, "anomalyd_sensors", ""),
        SENSORS.len() as f64,
        "{text}"
    );
    assert!(
        restarted.log_text().contains("sensors=6"),
        "restore did not bring back all six:\n{}",
        restarted.log_text()
    );
}
