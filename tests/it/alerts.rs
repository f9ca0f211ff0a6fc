//! What integrators rely on in the alert payload: the schema in docs/, a stuck channel's
//! alert, staleness events and their retained state, and the MQTT 5 properties of alerts.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use support::schema::{alert_schema, assert_valid_alert, validate};
use support::{counter, metrics, now};

fn raised_sample() -> Value {
    json!({
        "alert_id": "0123456789abcdef0123456789abcdef", "sensor": "pump/1", "event": "raised",
        "severity": "major", "learning": false, "ts": 1.7e9, "ts_rfc3339": "2023-11-14T22:13:20.000Z",
        "score": 2.0, "threshold": 0.5, "quantile": 0.995, "over_by": 4.0, "pca_score": null,
        "anomaly_score": 0.9, "model_version": 3, "window_start": 1.7e9, "window_end": 1.7e9,
        "channels": [{ "channel": "a", "error": 0.5, "share": 1.0 }]
    })
}

fn stale_sample() -> Value {
    json!({
        "alert_id": "0123456789abcdef0123456789abcdef", "sensor": "pump/1", "event": "stale",
        "severity": "major", "ts": 1.7e9, "ts_rfc3339": "2023-11-14T22:13:20.000Z",
        "last_seen": 1.7e9, "silent_secs": 61.0
    })
}

/// Applies `change` to a copy of `base`.
fn with(base: &Value, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut v = base.clone();
    change(v.as_object_mut().expect("sample is an object"));
    v
}

#[test]
fn the_schema_accepts_each_event_kind_and_refuses_what_integrators_could_not_use() {
    let schema = alert_schema();
    let raised = raised_sample();
    let stale = stale_sample();
    let valid = [
        ("raised", raised.clone()),
        (
            "cleared recovered",
            with(&raised, |m| {
                m.insert("event".into(), json!("cleared"));
                m.insert("reason".into(), json!("recovered"));
            }),
        ),
        (
            "cleared accepted",
            with(&raised, |m| {
                m.insert("event".into(), json!("cleared"));
                m.insert("reason".into(), json!("accepted"));
            }),
        ),
        (
            "raised by a stuck channel",
            with(&raised, |m| {
                let stuck = json!([{ "channel": "a", "rows": 65, "longest_before": 1 }]);
                m.insert("stuck".into(), stuck);
            }),
        ),
        ("stale", stale.clone()),
        (
            "fresh",
            with(&stale, |m| drop(m.insert("event".into(), json!("fresh")))),
        ),
    ];
    for (name, v) in valid {
        assert_eq!(validate(&schema, &v), Vec::<String>::new(), "{name}");
    }
    let invalid = [
        ("no alert_id", with(&raised, |m| drop(m.remove("alert_id")))),
        (
            "short alert_id",
            with(&raised, |m| drop(m.insert("alert_id".into(), json!("abc")))),
        ),
        (
            "unknown severity",
            with(&raised, |m| drop(m.insert("severity".into(), json!("huge")))),
        ),
        ("no severity", with(&stale, |m| drop(m.remove("severity")))),
        (
            "stuck channel without its earlier longest",
            with(&raised, |m| {
                drop(m.insert("stuck".into(), json!([{ "channel": "a", "rows": 65 }])))
            }),
        ),
        (
            "undocumented field",
            with(&raised, |m| drop(m.insert("extra".into(), json!(1)))),
        ),
        (
            "raised with a reason",
            with(&raised, |m| drop(m.insert("reason".into(), json!("recovered")))),
        ),
        (
            "cleared without a reason",
            with(&raised, |m| drop(m.insert("event".into(), json!("cleared")))),
        ),
        (
            "stale with a score",
            with(&stale, |m| drop(m.insert("score".into(), json!(1.0)))),
        ),
        (
            "unknown event",
            with(&stale, |m| drop(m.insert("event".into(), json!("gone")))),
        ),
        (
            "score as text",
            with(&raised, |m| drop(m.insert("score".into(), json!("2")))),
        ),
        (
            "anomaly_score over 1",
            with(&raised, |m| drop(m.insert("anomaly_score".into(), json!(1.5)))),
        ),
        (
            "channel without share",
            with(&raised, |m| {
                drop(m.insert("channels".into(), json!([{ "channel": "a", "error": 1.0 }])))
            }),
        ),
    ];
    for (name, v) in invalid {
        assert!(!validate(&schema, &v).is_empty(), "{name} passed the schema: {v}");
    }
}

/// The harness config with `[alert] stale_after_secs` set (and `extra` appended).
fn stale_config(w: &World, secs: f64, extra: &str) -> String {
    let config = w
        .config
        .replacen("[alert]\n", &format!("[alert]\nstale_after_secs = {secs}\n"), 1);
    assert_ne!(config, w.config, "no [alert] table in the harness config");
    config + extra
}

/// A channel frozen at one value raises an alert that names it, valid against the schema,
/// though its windows reconstruct well: the error threshold cannot fire here (its floor
/// is far above any window's error), so only the stuck check can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_channel_raises_a_major_alert_and_the_retained_state_names_it() {
    let mut w = World::new("stuck", 4).await;
    w.config = (w.config)
        .replace("floor = 1.5", "floor = 1e9")
        .replace("[alert]\n", "[alert]\nstuck_rows = 20\n");
    let (_daemon, mut probe) = w.start().await;
    let topic = w.telemetry("s1");
    let mut sig = Signal::new(now() - 5000.0);
    warm_up(&mut probe, &topic, "s1", &mut sig).await;
    for _ in 0..40 {
        let mut reading: Value = serde_json::from_str(&sig.next(0.0)).expect("signal JSON");
        reading["b"] = json!(0.25);
        probe.send(&topic, reading.to_string()).await;
    }
    let raised = probe
        .wait_for(WAIT, "an alert for the stuck channel", |m| is_alert(m, "raised"))
        .await
        .json();
    assert_valid_alert(&raised);
    assert_eq!(raised["severity"], "major", "{raised}");
    // Stuck from its 21st reading; `consecutive = 2` raises on the 22nd.
    let stuck = &raised["stuck"];
    assert_eq!(
        (stuck[0]["channel"].as_str(), stuck[0]["rows"].as_u64()),
        (Some("b"), Some(22)),
        "{raised}"
    );
    assert!(stuck[0]["longest_before"].as_u64() >= Some(1), "{raised}");
    assert_eq!(stuck.as_array().map(Vec::len), Some(1), "{raised}");
    // The retained state names it while it lasts, and not once "b" moves again.
    probe
        .wait_for(WAIT, "a retained state naming the stuck channel", |m| {
            is_state(m, "s1", |s| s["stuck"] == json!(["b"]))
        })
        .await;
    feed(&probe, &topic, &mut sig, 5, 0.0).await;
    probe
        .wait_for(WAIT, "a retained state without it", |m| {
            is_state(m, "s1", |s| s.get("stuck").is_none())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_sensor_goes_stale_then_fresh_with_one_alert_id_and_the_state_shows_it() {
    let mut w = World::new("stale", 10).await;
    w.config = stale_config(&w, 1.0, "");
    let (d, mut probe) = w.start().await;
    let (quiet, busy) = (w.telemetry("quiet"), w.telemetry("busy"));
    let mut sig = Signal::new(now() - 5000.0);
    let mut busy_sig = Signal::new(now() - 5000.0);
    feed(&probe, &quiet, &mut sig, 3, 0.0).await;
    let sent_at = now();
    // `busy` keeps talking (through its own client): only `quiet` may go stale.
    let talker = Probe::connect(w.broker.port, "stale-talker", &[]).await;
    let talk = async {
        for _ in 0..12 {
            feed(&talker, &busy, &mut busy_sig, 1, 0.0).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let wait_stale = probe.wait_for(WAIT, "a stale event", |m| is_alert(m, "stale"));
    let (stale, ()) = tokio::join!(wait_stale, talk);
    assert_eq!(stale.topic, format!("{}/alerts/quiet", w.prefix));
    let stale = stale.json();
    assert_valid_alert(&stale);
    assert_eq!(stale["sensor"], "quiet", "{stale}");
    assert_eq!(stale["severity"], "major", "{stale}");
    let silent = stale["silent_secs"].as_f64().unwrap_or(0.0);
    assert!((1.0..5.0).contains(&silent), "silent_secs {silent}: {stale}");
    assert!(stale["last_seen"].as_f64() >= Some(sent_at - 2.0), "{stale}");
    let after_stale = probe.drain();
    assert!(
        !after_stale
            .iter()
            .any(|m| is_alert(m, "stale") && m.topic.ends_with("/busy")),
        "the talking sensor went stale"
    );
    // The retained state says so, to a subscriber that arrives later too.
    let late = Probe::connect(
        w.broker.port,
        "stale-late",
        &[format!("{}/state/quiet", w.prefix)],
    )
    .await;
    let mut late = late;
    late.wait_for(WAIT, "retained stale state", |m| m.json()["stale"] == true)
        .await;

    feed(&probe, &quiet, &mut sig, 1, 0.0).await;
    let fresh = probe
        .wait_for(WAIT, "a fresh event", |m| is_alert(m, "fresh"))
        .await
        .json();
    assert_valid_alert(&fresh);
    assert_eq!(
        fresh["alert_id"], stale["alert_id"],
        "stale and fresh share the id"
    );
    assert!(
        fresh["silent_secs"].as_f64() >= stale["silent_secs"].as_f64(),
        "{fresh}"
    );
    probe
        .wait_for(WAIT, "the state fresh again", |m| {
            is_state(m, "quiet", |s| s["stale"] == false)
        })
        .await;
    let text = metrics(w.metrics_port).await;
    assert!(
        counter(&text, "anomalyd_alerts_total", "event=\"stale\"") >= 1.0
            && counter(&text, "anomalyd_alerts_total", "event=\"fresh\"") >= 1.0,
        "stale/fresh not counted:\n{text}"
    );
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_older_than_expiry_secs_is_counted_and_never_delivered() {
    let mut w = World::new("expiry", 10).await;
    w.config = w
        .config
        .replacen("[alert]\n", "[alert]\nstale_after_secs = 1.5\n", 1)
        .replacen("[alerts]\n", "[alerts]\nexpiry_secs = 1\n", 1);
    let (d, mut probe) = w.start().await;
    let mut sig = Signal::new(now() - 5000.0);
    feed(&probe, &w.telemetry("lost"), &mut sig, 2, 0.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The sensor goes stale while the broker is away; the event waits in the queue
    // longer than its one second.
    w.broker.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    w.broker.restart().await;
    probe
        .wait_for(WAIT, "the retained stale state after the outage", |m| {
            is_state(m, "lost", |s| s["stale"] == true)
        })
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let expired = loop {
        let n = counter(
            &metrics(w.metrics_port).await,
            "anomalyd_alerts_expired_total",
            "",
        );
        if n >= 1.0 || tokio::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(expired, 1.0, "log:\n{}", d.log_text());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let late: Vec<_> = probe
        .drain()
        .into_iter()
        .filter(|m| is_alert(m, "stale"))
        .collect();
    assert!(late.is_empty(), "an expired alert was delivered: {late:?}");
}
