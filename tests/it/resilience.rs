//! Broker outages, shutdown, snapshots.

use std::time::Duration;

use super::*;
use support::{metrics, now};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_reconnects_and_an_alert_raised_during_the_outage_arrives_afterwards() {
    let mut w = World::new("outage", 10).await;
    let (mut d, mut probe) = w.start().await;
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
    let (mut d, mut probe) = w.start().await;
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
        .wait_for(WAIT, "an alert right after restart", |m| is_alert(m, "raised"))
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
    let (mut d, mut probe) = w.start().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rejects_an_invalid_file_and_applies_a_valid_one() {
    let w = World::new("sighup", 10).await;
    let (mut d, _probe) = w.start().await;

    std::fs::write(&d.config, "[threshold]\nquantile = 7\n").expect("write bad config");
    d.signal("HUP");
    wait_for_log(&d, "old settings kept").await;
    assert!(d.alive(), "daemon died on an invalid reload");

    let valid = w.config.replace("quantile = 0.98", "quantile = 0.95");
    std::fs::write(&d.config, valid).expect("write good config");
    d.signal("HUP");
    wait_for_log(&d, "Threshold and alert settings reloaded").await;
    assert!(d.alive());
}

async fn wait_for_log(d: &Daemon, needle: &str) {
    let found = tokio::time::timeout(WAIT, async {
        while !d.log_text().contains(needle) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "log never said {needle:?}:\n{}", d.log_text());
}
