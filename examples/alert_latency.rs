//! Publish→alert latency of a running daemon, for issue 12 target 3 ("retraining never
//! more than doubles publish→alert p99"); `scripts/alert-latency.sh` runs it against a
//! daemon with the shipped retraining and one with retraining off.
//!
//! ```sh
//! cargo run --release --example alert_latency -- PORT PREFIX SENSORS RATE SECONDS WARMUP INJECT
//! ```
//!
//! SENSORS sensors publish 3-channel JSON on `PREFIX/<sensor>/telemetry` at RATE
//! readings/s each for SECONDS; for the first WARMUP seconds every reading is normal
//! (each sensor trains its first model and fills its threshold). After that, every
//! INJECT seconds the next sensor in turn gets five readings shifted far beyond
//! anything normal. The tool subscribes to `PREFIX/alerts/+` and, for each `raised`
//! event, finds the instant the reading that raised it (the event's `ts`) was
//! published: that interval is one latency. Prints the count, median, p99 and maximum
//! in milliseconds as one line of `key=value` pairs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// Readings each injection shifts (the alert needs three windows over the threshold).
const SHIFTED: u64 = 5;
/// How far the shifted readings are moved, in units of the normal swing.
const SHIFT: f64 = 25.0;

/// Publish instants of the shifted readings, by sensor and reading time in ms.
type Sent = Arc<Mutex<HashMap<(String, i64), Instant>>>;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> T {
    args.get(i)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} ({name}) missing or not a number"))
}

fn reading(ts: f64, k: u64, shift: f64) -> String {
    let x = (k as f64 * 0.05).sin() + shift;
    format!(
        "{{\"ts\":{ts:.3},\"current\":{:.4},\"temperature\":{:.4},\"vibration\":{:.5}}}",
        10.0 + 2.0 * x,
        40.0 + 3.0 * x,
        0.7 + 0.1 * x
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, 1, "port");
    let prefix = args.get(2).cloned().expect("argument 2 (prefix) missing");
    let sensors: u64 = arg(&args, 3, "sensors");
    let rate: f64 = arg(&args, 4, "rate");
    let seconds: f64 = arg(&args, 5, "seconds");
    let warmup: f64 = arg(&args, 6, "warmup");
    let inject: f64 = arg(&args, 7, "inject");

    let mut opts = MqttOptions::new(format!("latency-{}", std::process::id()), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
    client
        .subscribe(format!("{prefix}/alerts/+"), QoS::AtLeastOnce)
        .await
        .expect("subscribe");

    let sent: Sent = Arc::default();
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let (seen, lat) = (Arc::clone(&sent), Arc::clone(&latencies));
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let now = Instant::now();
                    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload) else {
                        continue;
                    };
                    if v["event"] != "raised" {
                        continue;
                    }
                    let (Some(sensor), Some(ts)) = (v["sensor"].as_str(), v["ts"].as_f64()) else {
                        continue;
                    };
                    let key = (sensor.to_string(), (ts * 1000.0).round() as i64);
                    if let Some(at) = seen.lock().expect("not poisoned").get(&key) {
                        lat.lock()
                            .expect("not poisoned")
                            .push(now.duration_since(*at).as_secs_f64() * 1e3);
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => panic!("lost the broker: {e}"),
            }
        }
    });

    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let (mut next_injection, mut turn) = (warmup, 0_u64);
    // Per sensor: readings of the current injection still to shift.
    let mut shifting = vec![0_u64; sensors as usize];
    let mut k = 0_u64;
    while started.elapsed().as_secs_f64() < seconds {
        ticker.tick().await;
        let elapsed = started.elapsed().as_secs_f64();
        if elapsed >= next_injection {
            shifting[(turn % sensors) as usize] = SHIFTED;
            turn += 1;
            next_injection += inject;
        }
        let ts = t0 + k as f64 / rate;
        for s in 0..sensors {
            let left = &mut shifting[s as usize];
            let shift = if *left > 0 { SHIFT } else { 0.0 };
            let sensor = format!("s{s:04}");
            let payload = reading(ts, k + s * 7, shift);
            client
                .publish(
                    format!("{prefix}/{sensor}/telemetry"),
                    QoS::AtMostOnce,
                    false,
                    payload,
                )
                .await
                .expect("publish");
            if *left > 0 {
                *left -= 1;
                let key = (sensor, (ts * 1000.0).round() as i64);
                sent.lock().expect("not poisoned").insert(key, Instant::now());
            }
        }
        k += 1;
    }
    // Alerts of the last injections still on their way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    client.disconnect().await.expect("disconnect");
    let _ = poller.await;

    let mut l = latencies.lock().expect("not poisoned").clone();
    l.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        l.get(((l.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
    };
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    println!(
        "injected={turn} alerts={} p50_ms={} p99_ms={} max_ms={}",
        l.len(),
        ms(pick(0.5)),
        ms(pick(0.99)),
        ms(l.last().copied())
    );
}
