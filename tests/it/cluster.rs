//! Two daemons splitting the sensors of one Mosquitto (`[cluster] instances = 2`):
//! every sensor is scored by exactly one of them, an anomaly gives exactly one alert,
//! and each instance has its own client ids and status topic, so one instance's last
//! will marks only itself offline.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use support::{counter, metrics, now};

/// The sensors and their owners under 2 instances, computed by the reference Python
/// of docs/scaling.md (not by the daemon's code).
const SENSORS: [(&str, usize); 6] = [
    ("pump-1", 1),
    ("pump-2", 0),
    ("pump-3", 1),
    ("pump-4", 1),
    ("pump-5", 1),
    ("pump-6", 0),
];

/// One instance: the harness config with its own state dir and metrics port, and
/// `[cluster] instances = 2, index = <index>`. The client id is left the same for
/// both: the daemon derives each instance's own.
struct Instance {
    daemon: Daemon,
    metrics_port: u16,
}

fn start_instance(w: &World, index: usize) -> Instance {
    let dir = w.dir.path().join(format!("instance-{index}"));
    std::fs::create_dir_all(&dir).expect("instance dir");
    let metrics_port = free_port();
    let state = w.state_dir();
    let config = w
        .config
        .replace(
            &state.display().to_string(),
            &dir.join("state").display().to_string(),
        )
        .replace(
            &format!("127.0.0.1:{}", w.metrics_port),
            &format!("127.0.0.1:{metrics_port}"),
        );
    assert_ne!(
        config, w.config,
        "state dir or metrics port not found in the config"
    );
    let config = format!("{config}\n[cluster]\ninstances = 2\nindex = {index}\n");
    Instance {
        daemon: Daemon::start(&dir, &config),
        metrics_port,
    }
}

/// Waits until every sensor's latest retained state satisfies `pred`; returns those states.
async fn wait_all_states(
    probe: &mut Probe,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> BTreeMap<String, Value> {
    let mut latest = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !SENSORS.iter().all(|(s, _)| latest.get(*s).is_some_and(&pred)) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = probe.wait_for(left, what, |m| m.topic.contains("/state/")).await;
        let state = m.json();
        if let Some(sensor) = state["sensor"].as_str() {
            latest.insert(sensor.to_string(), state.clone());
        }
    }
    latest
}

/// Feeds every sensor until it has a first model (wherever it is scored); returns
/// their signals, to continue from.
async fn first_models(w: &World, probe: &mut Probe) -> Vec<Signal> {
    let mut signals: Vec<Signal> = SENSORS.iter().map(|_| Signal::new(now() - 5000.0)).collect();
    for ((sensor, _), sig) in SENSORS.iter().zip(&mut signals) {
        feed(probe, &w.telemetry(sensor), sig, 80, 0.0).await;
    }
    wait_all_states(probe, "a first model for every sensor", |s| {
        s["model_version"].as_u64() >= Some(1)
    })
    .await;
    signals
}

/// Polls both instances' `/metrics` until `done` holds for the pair (bounded); returns
/// the last texts.
async fn wait_metrics(ports: [u16; 2], done: impl Fn(&[String; 2]) -> bool) -> [String; 2] {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let texts = [metrics(ports[0]).await, metrics(ports[1]).await];
        if done(&texts) || tokio::time::Instant::now() > deadline {
            return texts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn has_sensor_gauge(text: &str, sensor: &str) -> bool {
    let label = format!("sensor=\"{sensor}\"");
    text.lines()
        .any(|l| l.starts_with("anomalyd_model_version{") && l.contains(&label))
}

/// The per-sensor score gauges, which come with scoring (and a ready threshold).
fn has_score_gauges(text: &str, sensor: &str) -> bool {
    ["anomalyd_score", "anomalyd_threshold", "anomalyd_anomaly_score"]
        .iter()
        .all(|gauge| {
            let series = format!("{gauge}{{sensor=\"{sensor}\"}}");
            text.lines().any(|l| l.starts_with(&series))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_score_each_sensor_once_and_alert_once() {
    let w = World::new("cluster-two", 20).await;
    let mut inst = [start_instance(&w, 0), start_instance(&w, 1)];
    let ports = [inst[0].metrics_port, inst[1].metrics_port];
    let p = w.prefix.clone();
    let mut probe = Probe::connect(
        w.broker.port,
        &p,
        &[
            format!("{p}/alerts/+"),
            format!("{p}/state/+"),
            format!("{p}/status/+"),
        ],
    )
    .await;
    let mut online = [false, false];
    while online != [true, true] {
        let m = probe
            .wait_for(WAIT, "both instances online", |m| m.payload == b"online")
            .await;
        for (i, seen) in online.iter_mut().enumerate() {
            *seen |= m.topic == format!("{p}/status/{i}");
        }
    }

    // Warm-up: a first model for every sensor, then enough scores for its threshold.
    let mut signals = first_models(&w, &mut probe).await;
    for ((sensor, _), sig) in SENSORS.iter().zip(&mut signals) {
        feed(&probe, &w.telemetry(sensor), sig, 30, 0.0).await;
    }
    wait_all_states(&mut probe, "a ready threshold for every sensor", |s| {
        s["threshold_ready"] == true
    })
    .await;

    // Every reading reached both instances; each kept exactly its own sensors' share.
    let owned = |i: usize| SENSORS.iter().filter(|(_, o)| *o == i).count() as f64;
    let want = |i: usize| (110.0 * owned(i), 110.0 * owned(1 - i));
    let got = |t: &str| {
        (
            counter(t, "anomalyd_readings_total", ""),
            counter(t, "anomalyd_readings_dropped_total", "reason=\"other_instance\""),
        )
    };
    // Score gauges are written once a second: wait for the owners' too.
    let scored = |t: &[String; 2]| {
        SENSORS
            .iter()
            .all(|(sensor, owner)| has_score_gauges(&t[*owner], sensor))
    };
    let texts = wait_metrics(ports, |t| {
        got(&t[0]) == want(0) && got(&t[1]) == want(1) && scored(t)
    })
    .await;
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(
            got(text),
            want(i),
            "instance {i}: (accepted, dropped as other_instance)"
        );
        for (sensor, owner) in SENSORS {
            assert_eq!(
                has_sensor_gauge(text, sensor),
                owner == i,
                "instance {i} scoring {sensor} (owner {owner})"
            );
            assert_eq!(
                has_score_gauges(text, sensor),
                owner == i,
                "instance {i}: score, threshold and anomaly_score of {sensor} (owner {owner})"
            );
        }
        assert_eq!(
            counter(text, "anomalyd_sensors", ""),
            owned(i),
            "instance {i}: sensors tracked"
        );
    }

    // An anomaly on one sensor: exactly one raised alert, from its owner.
    let (target, owner) = SENSORS[5];
    feed(&probe, &w.telemetry(target), &mut signals[5], 12, SHIFT).await;
    let raised = probe
        .wait_for(WAIT, "a raised alert", |m| is_alert(m, "raised"))
        .await;
    assert_eq!(raised.topic, format!("{p}/alerts/{target}"));
    assert_full_alert(&raised.json(), target, "raised");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let more: Vec<_> = probe
        .drain()
        .into_iter()
        .filter(|m| is_alert(m, "raised"))
        .collect();
    assert!(more.is_empty(), "a second raised alert: {more:?}");
    let raised_by = |t: &String| counter(t, "anomalyd_alerts_total", "event=\"raised\"");
    let texts = wait_metrics(ports, |t| raised_by(&t[owner]) >= 1.0).await;
    assert_eq!(
        [raised_by(&texts[0]), raised_by(&texts[1])],
        if owner == 0 { [1.0, 0.0] } else { [0.0, 1.0] },
        "raised alerts per instance"
    );

    // A bad payload of instance 1's sensor is its problem alone: instance 0 drops it
    // (before parsing) as another instance's reading, instance 1 counts the error.
    probe.send(&w.telemetry(SENSORS[0].0), "not json").await;
    let errors = |t: &String| counter(t, "anomalyd_payload_errors_total", "");
    let foreign = |t: &String| counter(t, "anomalyd_readings_dropped_total", "reason=\"other_instance\"");
    let texts = wait_metrics(ports, |t| {
        errors(&t[1]) >= 1.0 && foreign(&t[0]) > 110.0 * owned(1)
    })
    .await;
    assert_eq!(
        (errors(&texts[0]), foreign(&texts[0])),
        (0.0, 110.0 * owned(1) + 1.0),
        "instance 0: (payload errors, other_instance)"
    );
    assert_eq!(errors(&texts[1]), 1.0, "instance 1: payload errors");

    // A crash of instance 1: its last will marks only status/1 offline.
    for (i, x) in inst.iter_mut().enumerate() {
        assert!(x.daemon.alive(), "instance {i} died:\n{}", x.daemon.log_text());
    }
    inst[1].daemon.kill();
    probe
        .wait_for(WAIT, "instance 1's last will", |m| {
            m.topic == format!("{p}/status/1") && m.payload == b"offline"
        })
        .await;
    let mut late = Probe::connect(
        w.broker.port,
        &format!("{p}-late"),
        &[format!("{p}/status"), format!("{p}/status/+")],
    )
    .await;
    let retained = late
        .wait_for(WAIT, "instance 0's retained status", |m| {
            m.topic == format!("{p}/status/0")
        })
        .await;
    assert_eq!(retained.payload, b"online", "instance 0 marked offline");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let plain: Vec<_> = late
        .drain()
        .into_iter()
        .filter(|m| m.topic == format!("{p}/status"))
        .collect();
    assert!(
        plain.is_empty(),
        "the unsuffixed status topic was used: {plain:?}"
    );
    assert!(
        inst[0].daemon.alive(),
        "instance 0 died: {}",
        inst[0].daemon.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resized_instance_leaves_the_snapshots_foreign_sensors_to_their_owner() {
    let w = World::new("cluster-resize", 20).await;
    let (mut single, mut probe) = w.start().await;
    let mut signals = first_models(&w, &mut probe).await;
    let code = single.terminate(Duration::from_secs(12)).await;
    assert_eq!(code, Some(0), "exit code; log:\n{}", single.log_text());

    // The same state dir, now as instance 0 of 2: only its own sensors come back.
    let dir = w.dir.path().join("resized");
    std::fs::create_dir_all(&dir).expect("dir");
    let config = format!("{}\n[cluster]\ninstances = 2\nindex = 0\n", w.config);
    let mut resized = Daemon::start(&dir, &config);
    let mine: Vec<usize> = (0..SENSORS.len()).filter(|&k| SENSORS[k].1 == 0).collect();
    // Its client id is new (`-0`), so it has no session yet: readings sent before it
    // subscribes are lost. Send one per own sensor until both were scored.
    let deadline = tokio::time::Instant::now() + WAIT;
    let texts = loop {
        for &k in &mine {
            feed(&probe, &w.telemetry(SENSORS[k].0), &mut signals[k], 1, 0.0).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let text = metrics(w.metrics_port).await;
        let seen = SENSORS.iter().filter(|(s, _)| has_sensor_gauge(&text, s)).count();
        if seen >= mine.len() || tokio::time::Instant::now() > deadline {
            break [text.clone(), text];
        }
    };
    assert_eq!(
        counter(&texts[0], "anomalyd_sensors", ""),
        mine.len() as f64,
        "sensors in the detector after the restore; log:\n{}",
        resized.log_text()
    );
    for (sensor, owner) in SENSORS {
        assert_eq!(
            has_sensor_gauge(&texts[0], sensor),
            owner == 0,
            "{sensor} (owner {owner}) on instance 0"
        );
    }
    assert!(
        resized.log_text().contains("owned by other instances left out"),
        "no word of the foreign sensors:\n{}",
        resized.log_text()
    );
    assert!(resized.alive(), "died:\n{}", resized.log_text());
}
