//! The daemon speaking MQTT 5 (`[mqtt] protocol = 5`) to Mosquitto 2. The probe stays
//! on MQTT 3.1.1: the broker bridges the two, as it would for real devices.

use std::time::Duration;

use super::*;
use support::{counter, metrics, now};

/// The harness config switched to MQTT 5; with `shared`, the source subscribes through
/// the shared subscription `$share/anomalyd/<filter>`.
fn v5_world_config(w: &World, shared: bool) -> String {
    let v5 = w.config.replacen("[mqtt]\n", "[mqtt]\nprotocol = 5\n", 1);
    assert_ne!(v5, w.config, "no [mqtt] table in the harness config");
    if !shared {
        return v5;
    }
    let plain = format!("topic = \"{}/sensors/", w.prefix);
    let shared = v5.replacen(
        &plain,
        &format!("topic = \"$share/anomalyd/{}/sensors/", w.prefix),
        1,
    );
    assert_ne!(shared, v5, "no telemetry source in the harness config");
    shared
}

async fn wait_for_status(probe: &mut Probe, status: &'static [u8]) {
    probe
        .wait_for(WAIT, "status message", |m| {
            m.topic.ends_with("/status") && m.payload == status
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_with_a_shared_subscription_warms_up_and_raises_an_alert() {
    let mut w = World::new("mqtt5-alert", 10).await;
    w.config = v5_world_config(&w, true);
    let mut d = w.daemon();
    let mut probe = w.probe().await;
    wait_for_status(&mut probe, b"online").await;
    let topic = w.telemetry("pump-5");
    let mut sig = Signal::new(now() - 5000.0);

    warm_up(&mut probe, &topic, "pump-5", &mut sig).await;
    feed(&probe, &topic, &mut sig, 12, SHIFT).await;
    let raised = probe
        .wait_for(WAIT, "a raised alert", |m| is_alert(m, "raised"))
        .await;
    assert_eq!(raised.topic, format!("{}/alerts/pump-5", w.prefix));
    assert_full_alert(&raised.json(), "pump-5", "raised");
    assert!(d.alive(), "daemon died:\n{}", d.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_persistent_session_queues_telemetry_across_a_daemon_restart() {
    let mut w = World::new("mqtt5-session", 10).await;
    w.config = v5_world_config(&w, false);
    let mut d = w.daemon();
    let mut probe = w.probe().await;
    wait_for_status(&mut probe, b"online").await;
    let code = d.terminate(Duration::from_secs(12)).await;
    assert_eq!(code, Some(0), "exit code; log:\n{}", d.log_text());
    wait_for_status(&mut probe, b"offline").await;

    // Sent while the daemon is away: only a session that outlived the disconnect
    // (MQTT 5 session expiry) holds them for the next start.
    let topic = w.telemetry("tank-1");
    let mut sig = Signal::new(now() - 5000.0);
    feed(&probe, &topic, &mut sig, 20, 0.0).await;

    let d2 = w.daemon();
    let deadline = tokio::time::Instant::now() + WAIT;
    let readings = loop {
        let n = counter(&metrics(w.metrics_port).await, "anomalyd_readings_total", "");
        if n >= 20.0 || tokio::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        readings,
        20.0,
        "queued telemetry not delivered:\n{}",
        d2.log_text()
    );
}
