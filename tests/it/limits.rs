//! Issue 10, defect 8: memory bounded in bytes. A sensor past `limits.max_memory_mb`
//! (by the detector's own estimate) is refused before the readings queue and counted; idle sensors are evicted
//! (parked with their model, or dropped), which frees room for new ones and their
//! places under ingest's sensor cap.

use anomalyd::config::Config;
use anomalyd::detector::memory::pipeline_bytes;

use super::*;
use support::{assert_counter, counter, now, wait_for_metrics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_refuses_new_sensors_and_idle_ones_are_evicted() {
    let mut w = World::new("limits", 3).await;
    // A budget of two two-channel sensors by the daemon's own estimate (a training
    // buffer of 40,000 windows makes each about 2 MB), and sensors idle after 2 s.
    w.config = w.config.replace("buffer = 256", "buffer = 40000");
    let detector = Config::from_toml_str(&w.config).expect("test config").detector;
    let one = pipeline_bytes(&detector, 2);
    let budget_mb = (2 * one + one / 2).div_ceil(1 << 20);
    assert!(
        budget_mb << 20 < 3 * one,
        "the test config's sensors are too small to test a budget"
    );
    w.config = w.config.replace(
        "max_channels = 4\n",
        &format!("max_channels = 4\nmax_memory_mb = {budget_mb}\nsensor_idle_secs = 2\n"),
    );
    let (d, mut probe) = w.start().await;
    let mut sig = Signal::new(now() - 5000.0);
    // `a` gets a model, `b` does not; `c` does not fit.
    warm_up(&mut probe, &w.telemetry("a"), "a", &mut sig).await;
    let mut sig_b = Signal::new(now() - 5000.0);
    feed(&probe, &w.telemetry("b"), &mut sig_b, 4, 0.0).await;
    let mut sig_c = Signal::new(now() - 5000.0);
    feed(&probe, &w.telemetry("c"), &mut sig_c, 4, 0.0).await;
    let text = wait_for_metrics(w.metrics_port, "c refused by the budget", |t| {
        counter(t, "anomalyd_readings_dropped_total", "reason=\"memory_budget\"") >= 4.0
    })
    .await;
    // Refused before the readings queue: only a's 110 and b's 4 readings were queued,
    // so a flood of new ids cannot push known sensors' readings out.
    assert_counter(&text, "anomalyd_readings_total", "", 114.0);
    // `a` and `b` are charged at their estimate from their first reading.
    wait_for_metrics(w.metrics_port, "the estimate of a and b", |t| {
        counter(t, "anomalyd_memory_estimate_bytes", "") == (2 * one) as f64
    })
    .await;

    // Two seconds of silence: `a` is parked, `b` dropped.
    let text = wait_for_metrics(w.metrics_port, "a and b evicted", |t| {
        counter(t, "anomalyd_sensors_evicted_total", "") >= 2.0
    })
    .await;
    assert_counter(&text, "anomalyd_sensors_evicted_total", "kind=\"parked\"", 1.0);
    assert_counter(&text, "anomalyd_sensors_evicted_total", "kind=\"dropped\"", 1.0);

    // Now `c` fits beside the parked `a`.
    feed(&probe, &w.telemetry("c"), &mut sig_c, 2, 0.0).await;
    probe
        .wait_for(WAIT, "c tracked", |m| m.topic.ends_with("/state/c"))
        .await;
    // `a` comes back with its model: no warm-up.
    feed(&probe, &w.telemetry("a"), &mut sig, 10, 0.0).await;
    let back = probe
        .wait_for(WAIT, "a back", |m| is_state(m, "a", |_| true))
        .await;
    assert!(
        back.json()["model_version"].as_u64() >= Some(1),
        "{:?}",
        back.json()
    );
    // `d` gets the place under ingest's sensor cap (3) that `b` left, and is refused
    // by the budget (a and c), not by the cap.
    feed(
        &probe,
        &w.telemetry("d"),
        &mut Signal::new(now() - 5000.0),
        2,
        0.0,
    )
    .await;
    let text = wait_for_metrics(w.metrics_port, "d refused by the budget", |t| {
        counter(t, "anomalyd_readings_dropped_total", "reason=\"memory_budget\"") >= 6.0
    })
    .await;
    assert_counter(
        &text,
        "anomalyd_readings_dropped_total",
        "reason=\"sensor_cap\"",
        0.0,
    );
    drop(d);
}

/// Issue 10, defect 9: a flood (QoS 0, so the daemon sends nothing but its pings on the
/// telemetry connection) of a known sensor's readings and of unknown ids, for longer
/// than 1.5 × the 5 s keep-alive, into a readings queue of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_queue_costs_neither_the_keep_alive_nor_the_known_sensor() {
    let mut w = World::new("flood", 1).await;
    w.config = w
        .config
        .replace("max_channels = 4\n", "max_channels = 4\nchannel_capacity = 1\n");
    let (mut d, _probe) = w.start().await;
    let mut opts = rumqttc::MqttOptions::new("flood-flooder", "127.0.0.1", w.broker.port);
    opts.set_keep_alive(std::time::Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 4096);
    let pump = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let (known, t0) = (w.telemetry("k"), now() - 100_000.0);
    let started = tokio::time::Instant::now();
    let mut i = 0_u32;
    while started.elapsed() < std::time::Duration::from_secs(9) {
        for _ in 0..100 {
            let reading = format!(r#"{{"ts":{},"a":{},"b":1}}"#, t0 + f64::from(i), i % 7);
            let unknown = w.telemetry(&format!("u{i}"));
            for topic in [&known, &unknown] {
                client
                    .publish(topic.as_str(), rumqttc::QoS::AtMostOnce, false, reading.clone())
                    .await
                    .expect("queue a flood message");
            }
            i += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    pump.abort();
    let text = wait_for_metrics(w.metrics_port, "the known sensor's readings", |t| {
        counter(t, "anomalyd_readings_total", "") >= 100.0
    })
    .await;
    assert!(
        counter(&text, "anomalyd_readings_dropped_total", "reason=\"queue_full\"") >= 1.0,
        "the queue never filled: the test did not saturate it\n{text}"
    );
    assert!(counter(&text, "anomalyd_readings_dropped_total", "reason=\"sensor_cap\"") >= 1.0);
    assert_counter(&text, "anomalyd_reconnects_total", "", 0.0);
    // The figures (with --nocapture).
    println!(
        "flood: {i} readings of k and {i} of unknown ids in 9 s; queued {}, queue_full {}, sensor_cap {}",
        counter(&text, "anomalyd_readings_total", ""),
        counter(&text, "anomalyd_readings_dropped_total", "reason=\"queue_full\""),
        counter(&text, "anomalyd_readings_dropped_total", "reason=\"sensor_cap\""),
    );
    let log = d.log_text();
    assert!(d.alive(), "{log}");
    assert!(!log.contains("Telemetry connection failed"), "{log}");
}
