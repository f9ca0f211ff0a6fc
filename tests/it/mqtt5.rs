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

/// One message as an MQTT 5 subscriber sees it, with the properties the broker passed on.
#[derive(Debug)]
struct Msg5 {
    topic: String,
    payload: Vec<u8>,
    content_type: Option<String>,
    expiry: Option<u32>,
}

/// An MQTT 5 subscriber to `filters`; messages arrive on the returned channel.
async fn probe_v5(port: u16, id: &str, filters: &[String]) -> tokio::sync::mpsc::UnboundedReceiver<Msg5> {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let filters = filters.to_vec();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for f in &filters {
                        let _ = client.try_subscribe(f.clone(), QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => drop(ready_tx.send(())),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let props = p.properties.unwrap_or_default();
                    let msg = Msg5 {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                        content_type: props.content_type,
                        expiry: props.message_expiry_interval,
                    };
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(WAIT, ready_rx.recv())
        .await
        .expect("MQTT 5 subscription acknowledged in time");
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_alerts_carry_a_message_expiry_and_json_content_type() {
    let mut w = World::new("mqtt5-props", 10).await;
    let v5 = v5_world_config(&w, false)
        .replacen("[alert]\n", "[alert]\nstale_after_secs = 1\n", 1)
        .replacen("[alerts]\n", "[alerts]\nexpiry_secs = 600\n", 1);
    w.config = v5;
    let mut d = w.daemon();
    let p = w.prefix.clone();
    let mut rx = probe_v5(
        w.broker.port,
        "mqtt5-props-probe5",
        &[format!("{p}/alerts/+"), format!("{p}/state/+")],
    )
    .await;
    let mut probe = w.probe().await;
    wait_for_status(&mut probe, b"online").await;
    let mut sig = Signal::new(now() - 5000.0);
    feed(&probe, &w.telemetry("props"), &mut sig, 2, 0.0).await;
    let (mut alert, mut state) = (None, None);
    let found = tokio::time::timeout(WAIT, async {
        while let Some(m) = rx.recv().await {
            if m.topic.contains("/alerts/") {
                alert = Some(m);
            } else if m.topic.contains("/state/") {
                state = Some(m);
            }
            if alert.is_some() && state.is_some() {
                return;
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no stale alert and state under MQTT 5:\n{}",
        d.log_text()
    );
    let (alert, state) = (alert.expect("alert"), state.expect("state"));
    let event: serde_json::Value = serde_json::from_slice(&alert.payload).expect("JSON alert");
    assert_eq!(event["event"], "stale", "{event}");
    assert_eq!(alert.content_type.as_deref(), Some("application/json"));
    let expiry = alert.expiry.expect("alert has a message expiry");
    assert!((590..=600).contains(&expiry), "expiry {expiry}");
    assert_eq!(state.content_type.as_deref(), Some("application/json"));
    assert_eq!(state.expiry, None, "retained state must not expire");
    assert!(d.alive(), "daemon died:\n{}", d.log_text());
}
