//! Test harness: a real Mosquitto on a free port, the daemon as a subprocess, an MQTT
//! probe client, a `/metrics` reader and a telemetry generator. Every wait is bounded.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::mpsc;

/// Upper bound for any single wait in the suite.
pub const WAIT: Duration = Duration::from_secs(30);

/// A free loopback port (bind port 0, release). Tests are isolated by port and prefix.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

fn mosquitto_path() -> PathBuf {
    let candidates = [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ];
    candidates.iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| {
        panic!(
            "mosquitto not found (looked in {candidates:?}); the integration tests need a real broker: \
             install it with `apt-get install -y mosquitto`"
        )
    })
}

/// A Mosquitto broker on a free port with persistence in a temp dir; killed on drop.
pub struct Broker {
    /// The listening port; kept across restarts.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker and waits until it accepts connections.
    pub async fn start() -> Broker {
        let dir = tempfile::tempdir().expect("broker temp dir");
        // Started as root, mosquitto drops to the `mosquitto` user: it must still be
        // able to write its persistence database and log here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .expect("chmod broker dir");
        let mut b = Broker {
            port: free_port(),
            dir,
            child: None,
        };
        b.spawn().await;
        b
    }

    async fn spawn(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        let text = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nlog_dest file {}/mosquitto.log\nmax_queued_messages 10000\n",
            self.port,
            self.dir.path().display(),
            self.dir.path().display()
        );
        std::fs::write(&conf, text).expect("write mosquitto.conf");
        let child = Command::new(mosquitto_path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        wait_for_port(self.port).await;
    }

    /// Stops the broker with SIGTERM (it saves its persistence database: sessions and
    /// queued QoS 1 messages survive) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port with the same persistence.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listening on port {port} after 5 s");
}

/// Sends a signal by name with `kill(1)`: keeps the harness free of libc bindings.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Settings that differ between tests.
pub struct Setup<'a> {
    /// Unique per test: client ids and topics start with it.
    pub prefix: &'a str,
    /// Broker port.
    pub port: u16,
    /// `[state] dir`.
    pub state_dir: &'a Path,
    /// `[metrics] listen` port.
    pub metrics_port: u16,
    /// `[limits] max_sensors`.
    pub max_sensors: usize,
}

/// A small config: windows of 8, 64 training windows, 20 scores before alerts.
pub fn config(s: &Setup<'_>) -> String {
    format!(
        r#"
[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "{p}-daemon"
keep_alive_secs = 5
reconnect_min_ms = 200
reconnect_max_ms = 1000

[[sources]]
topic = "{p}/sensors/+/telemetry"

[alerts]
topic = "{p}/alerts/{{sensor}}"
state_topic = "{p}/state/{{sensor}}"
status_topic = "{p}/status"

[state]
dir = "{dir}"
snapshot_every_secs = 0

[metrics]
listen = "127.0.0.1:{mport}"

[limits]
max_payload_bytes = 2048
max_sensors = {max_sensors}
max_channels = 4

[window]
size = 8

[model]
hidden = [8]
latent = 2
epochs = 10
batch_size = 16
learning_rate = 0.01

[training]
min_windows = 64
retrain_every = 0
buffer = 256

[threshold]
quantile = 0.98
window = 200
min_scores = 20
# Far above a normal window's error (~1 for a model that learned nothing), so
# normal telemetry never alerts by chance while the quantile has few scores.
floor = 1.5

[alert]
consecutive = 2
clear_after = 5
cooldown = 5

[score]
onset_rows = 0
"#,
        port = s.port,
        p = s.prefix,
        dir = s.state_dir.display(),
        mport = s.metrics_port,
        max_sensors = s.max_sensors,
    )
}

/// The daemon as a subprocess; its log goes to a file; killed on drop.
pub struct Daemon {
    child: Option<Child>,
    /// The stderr log.
    pub log: PathBuf,
}

impl Daemon {
    /// Writes `config` next to the log and starts `anomalyd run`.
    pub fn start(dir: &Path, config: &str) -> Daemon {
        let path = dir.join("anomalyd.toml");
        std::fs::write(&path, config).expect("write daemon config");
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let log = dir.join(format!("daemon-{n}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_anomalyd"))
            .args(["--log", "info,rumqttc=warn", "run", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create daemon log"))
            .spawn()
            .expect("start anomalyd");
        Daemon {
            child: Some(child),
            log,
        }
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    /// Sends `name` (e.g. `TERM`, `STOP`, `CONT`).
    pub fn signal(&self, name: &str) {
        signal(self.child.as_ref().expect("daemon running").id(), name);
    }

    /// SIGTERM, then the exit code within `limit`.
    pub async fn terminate(&mut self, limit: Duration) -> Option<i32> {
        self.signal("TERM");
        let mut child = self.child.take().expect("daemon running");
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status.code();
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                panic!("daemon did not exit within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

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
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        mut pred: impl FnMut(&Msg) -> bool,
    ) -> Msg {
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
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
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
