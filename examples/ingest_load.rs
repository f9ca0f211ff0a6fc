//! Load tool for the ingest measurements of docs/performance.md (issue 12 target 1);
//! `scripts/ingest-ratio.sh` drives it. Three modes:
//!
//! - `publish`: JSON telemetry like `anomalyd simulate`'s (3 channels, `ts` field) on
//!   `<prefix>/<sensor>/telemetry`, round-robin over the sensors, each sensor's
//!   timestamps 1 ms apart and increasing; flat out (`--rate max`, the client's
//!   request queue is the only brake) or at a steady total rate. Prints what it sent.
//! - `count`: the bare subscriber, the baseline: the same rumqttc client and
//!   subscription the daemon uses, counting publishes and nothing else. Prints the
//!   messages and the rate between the first and the last one.
//! - `watch`: the daemon's side of the same measurement: polls its `/metrics` every
//!   50 ms and prints the readings it accepted, its `queue_full` drops and the accepted
//!   rate between the first and the last sample that moved.
//!
//! Every mode ends after `--idle` seconds without traffic (or at `--seconds` for
//! `publish`) and prints one line of `key=value` pairs.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// Parsed `--key value` pairs.
struct Args(Vec<(String, String)>);

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> Self {
        let args: Vec<String> = args.collect();
        let pairs = args
            .chunks(2)
            .map(|c| {
                let key = c[0].trim_start_matches("--").to_string();
                (key, c.get(1).cloned().unwrap_or_default())
            })
            .collect();
        Self(pairs)
    }

    fn get(&self, key: &str, default: &str) -> String {
        (self.0.iter())
            .find(|(k, _)| k == key)
            .map_or_else(|| default.to_string(), |(_, v)| v.clone())
    }

    fn num<T: std::str::FromStr>(&self, key: &str, default: &str) -> T {
        let v = self.get(key, default);
        v.parse()
            .unwrap_or_else(|_| panic!("--{key} must be a number, got {v:?}"))
    }

    fn qos(&self) -> QoS {
        match self.get("qos", "0").as_str() {
            "0" => QoS::AtMostOnce,
            "1" => QoS::AtLeastOnce,
            other => panic!("--qos must be 0 or 1, got {other:?}"),
        }
    }
}

fn options(id: &str, port: u16) -> MqttOptions {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(10));
    // Enough QoS 1 messages in flight that the publisher is never window-bound on
    // loopback.
    opts.set_inflight(1000);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts
}

/// One payload: `{"ts":…,"current":…,"temperature":…,"vibration":…}`.
fn payload(ts: f64, k: u64) -> Vec<u8> {
    let x = (k as f64 * 0.01).sin();
    format!(
        "{{\"ts\":{ts:.3},\"current\":{:.3},\"temperature\":{:.3},\"vibration\":{:.4}}}",
        10.0 + 2.0 * x,
        40.0 + 3.0 * x,
        0.7 + 0.1 * x
    )
    .into_bytes()
}

async fn publish(a: &Args) {
    let port: u16 = a.num("port", "1883");
    let prefix = a.get("prefix", "perf");
    let sensors: u64 = a.num("sensors", "50");
    let seconds: f64 = a.num("seconds", "10");
    let rate = a.get("rate", "max");
    let qos = a.qos();
    let (client, mut eventloop) =
        AsyncClient::new(options(&format!("load-pub-{}", std::process::id()), port), 10_000);
    // What the event loop wrote and (QoS 1) the broker acknowledged: the run ends
    // only once every message is out (acknowledged at QoS 1), so `sent` counts no
    // message still in a buffer of ours.
    let written = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let (w, k) = (Arc::clone(&written), Arc::clone(&acked));
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_))) => {
                    w.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    k.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => panic!("publisher lost the broker: {e}"),
            }
        }
    });
    let topics: Vec<String> = (0..sensors)
        .map(|s| format!("{prefix}/s{s:04}/telemetry"))
        .collect();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
        - 7200.0
        + a.num::<f64>("ts_offset", "0");
    let per_tick: Option<f64> =
        (rate != "max").then(|| rate.parse::<f64>().expect("--rate max or a number") / 1000.0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut sent: u64 = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut owed = 0.0;
    while Instant::now() < deadline {
        let batch = match per_tick {
            Some(n) => {
                ticker.tick().await;
                owed += n;
                let b = owed.floor();
                owed -= b;
                b as u64
            }
            None => 256,
        };
        for _ in 0..batch {
            let s = sent % sensors;
            let k = sent / sensors;
            let ts = t0 + k as f64 * 0.001;
            client
                .publish(&topics[s as usize], qos, false, payload(ts, k))
                .await
                .expect("event loop running");
            sent += 1;
        }
    }
    let done = |n: &AtomicU64| n.load(Ordering::Relaxed) >= sent;
    let settle = Instant::now();
    while !(done(&written) && (qos == QoS::AtMostOnce || done(&acked))) {
        assert!(
            settle.elapsed() < Duration::from_secs(30),
            "messages not out after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed().as_secs_f64();
    // QoS 0 has no acknowledgement: give the written tail a moment on the socket.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), poller).await;
    println!(
        "mode=publish sent={sent} seconds={took:.3} rate={:.0}",
        sent as f64 / took
    );
}

async fn count(a: &Args) {
    let port: u16 = a.num("port", "1883");
    let filter = a.get("filter", "perf/+/telemetry");
    let idle = Duration::from_secs_f64(a.num("idle", "2"));
    let qos = a.qos();
    let mut opts = options(&format!("load-sub-{}", std::process::id()), port);
    opts.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let mut n: u64 = 0;
    let (mut first, mut last) = (None, Instant::now());
    let started = Instant::now();
    loop {
        let wait = if n == 0 { Duration::from_secs(120) } else { idle };
        match tokio::time::timeout(wait, eventloop.poll()).await {
            Err(_) => break,
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                client.try_subscribe(&filter, qos).expect("queue subscribe");
                eprintln!("count: subscribed after {:?}", started.elapsed());
            }
            Ok(Ok(Event::Incoming(Packet::Publish(_)))) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                n += 1;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("subscriber lost the broker: {e}"),
        }
    }
    let span = first.map_or(0.0, |f| (last - f).as_secs_f64());
    println!(
        "mode=count received={n} seconds={span:.3} rate={:.0}",
        n as f64 / span.max(1e-9)
    );
}

/// The daemon's counters from `/metrics`: (accepted, queue_full drops).
fn scrape(addr: &str) -> Option<(f64, f64)> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let value = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Some((
        value("anomalyd_readings_total "),
        value("anomalyd_readings_dropped_total{reason=\"queue_full\"}"),
    ))
}

async fn watch(a: &Args) {
    let addr = a.get("metrics", "127.0.0.1:9464");
    let idle = Duration::from_secs_f64(a.num("idle", "2"));
    let (base, base_full) = scrape(&addr).expect("daemon /metrics reachable");
    let (mut prev, mut first, mut last) = (base, None, Instant::now());
    let mut at_first = base;
    let mut full;
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some((now_count, now_full)) = scrape(&addr) else {
            continue;
        };
        let now = Instant::now();
        if now_count != prev {
            if first.is_none() {
                first = Some(now);
                at_first = prev;
            }
            last = now;
            prev = now_count;
        }
        full = now_full;
        let quiet = first.map_or(now - started > Duration::from_secs(120), |_| now - last > idle);
        if quiet {
            break;
        }
    }
    let span = first.map_or(0.0, |f| (last - f).as_secs_f64());
    println!(
        "mode=watch accepted={:.0} queue_full={:.0} seconds={span:.3} rate={:.0}",
        prev - base,
        full - base_full,
        (prev - at_first) / span.max(1e-9)
    );
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let mode = argv.next().unwrap_or_default();
    let args = Args::parse(argv);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        match mode.as_str() {
            "publish" => publish(&args).await,
            "count" => count(&args).await,
            "watch" => watch(&args).await,
            _ => {
                eprintln!("usage: ingest_load publish|count|watch [--key value]…");
                std::process::exit(2);
            }
        }
    });
}
