//! The test's own MQTT client, the `/metrics` reader and the telemetry generator.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::mpsc;

use super::WAIT;

/// A received message.
#[derive(Clone, Debug)]
pub struct Msg {
    /// Topic.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl Msg {
    /// The payload as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
}

/// An MQTT client for the test: publishes telemetry and collects what it subscribed to.
/// Its session is persistent, so a broker restart does not lose alerts meant for it.
pub struct Probe {
    /// The client handle.
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Msg>,
}

impl Probe {
    /// Connects as `<prefix>-probe` and subscribes to `filters` with QoS 1.
    pub async fn connect(port: u16, prefix: &str, filters: &[String]) -> Probe {
        let mut opts = MqttOptions::new(format!("{prefix}-probe"), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_clean_session(false);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 1024);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let subs = filters.to_vec();
        let sub_client = client.clone();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &subs {
                            let _ = sub_client.try_subscribe(f.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx
                            .send(Msg {
                                topic: p.topic.clone(),
                                payload: p.payload.to_vec(),
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        if !filters.is_empty() {
            tokio::time::timeout(WAIT, ready_rx.recv())
                .await
                .expect("subscription acknowledged in time");
        }
        Probe { client, rx }
    }

    /// Publishes one payload with QoS 1.
    pub async fn send(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("queue publish");
    }

    /// The next message satisfying `pred`, within `limit`; others are discarded.
    pub async fn wait_for(&mut self, limit: Duration, what: &str, mut pred: impl FnMut(&Msg) -> bool) -> Msg {
        let found = tokio::time::timeout(limit, async {
            while let Some(m) = self.rx.recv().await {
                if pred(&m) {
                    return Some(m);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(m)) => m,
            _ => panic!("timed out after {limit:?} waiting for {what}"),
        }
    }

    /// Waits (up to `limit`) for the daemon's retained `online` birth message.
    pub async fn wait_online(&mut self, limit: Duration) -> Msg {
        self.wait_for(limit, "birth message", |m| {
            m.topic.ends_with("/status") && m.payload == b"online"
        })
        .await
    }

    /// Every message received so far, without waiting.
    pub fn drain(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        while let Ok(m) = self.rx.try_recv() {
            out.push(m);
        }
        out
    }
}

/// Body of `GET /metrics`.
pub async fn metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).await.ok()?;
        Some(body)
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Sum of a counter's samples whose label set contains `label` (e.g. `kind="not_json"`).
pub fn counter(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Asserts a counter's sum (as [`counter`]; an absent counter is 0), showing the text.
pub fn assert_counter(text: &str, name: &str, label: &str, want: f64) {
    // `+ 0.0`: an empty sum is -0.0.
    assert_eq!(
        counter(text, name, label) + 0.0,
        want,
        "{name}{{{label}}}:\n{text}"
    );
}

/// Deterministic two-channel telemetry: a sine and a cosine with small noise; `shift`
/// added to both channels makes an anomaly.
pub struct Signal {
    /// Timestamp of the next reading, unix seconds.
    pub ts: f64,
    i: u64,
    seed: u64,
}

impl Signal {
    /// Starts at `ts`.
    pub fn new(ts: f64) -> Signal {
        Signal {
            ts,
            i: 0,
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn noise(&mut self) -> f64 {
        // xorshift64: deterministic and dependency-free.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed % 1000) as f64 / 1000.0 - 0.5
    }

    /// The next payload.
    pub fn next(&mut self, shift: f64) -> String {
        let phase = self.i as f64 * std::f64::consts::TAU / 16.0;
        let a = phase.sin() + 0.05 * self.noise() + shift;
        let b = phase.cos() + 0.05 * self.noise() - shift;
        let out = format!(r#"{{"ts":{},"a":{a:.5},"b":{b:.5}}}"#, self.ts);
        self.ts += 1.0;
        self.i += 1;
        out
    }
}

impl Signal {
    /// Skips `n` readings, as if the sensor kept sending and they were lost: the
    /// next reading is `n` seconds later and `n` steps further in phase.
    pub fn skip(&mut self, n: u64) {
        self.ts += n as f64;
        self.i += n;
    }
}

/// Unix time now, seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
        .floor()
}

/// Publishes `n` readings of `sig` with `shift`, pacing so the daemon's channel keeps up.
pub async fn feed(probe: &Probe, topic: &str, sig: &mut Signal, n: usize, shift: f64) {
    for k in 0..n {
        probe.send(topic, sig.next(shift)).await;
        if k % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Polls `/metrics` until `done` holds for it, or fails after `WAIT` with the text.
pub async fn wait_for_metrics(port: u16, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = metrics(port).await;
        if done(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
