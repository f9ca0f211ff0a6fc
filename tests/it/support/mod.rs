//! Test harness: a real Mosquitto on a free port, the daemon as a subprocess, an MQTT
//! probe client, a `/metrics` reader and a telemetry generator. Every wait is bounded.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod mqtt;
pub mod schema;

pub use mqtt::{Msg, Probe, Signal, assert_counter, counter, feed, metrics, now, wait_for_metrics};

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
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
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
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777))
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
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
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
# Two workers whatever the machine's cores: every test runs the sharded detector.
detector_workers = 2
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
    /// The config file it was started with (SIGHUP re-reads it).
    pub config: PathBuf,
}

impl Daemon {
    /// Writes `config` next to the log and starts `anomalyd run`.
    pub fn start(dir: &Path, config: &str) -> Daemon {
        Daemon::start_with(dir, config, &[], |_| Vec::new())
    }

    /// [`Daemon::start`] with global flags before `run` (e.g. `--log-format json`) and
    /// environment variables computed from the log file's path.
    pub fn start_with(
        dir: &Path,
        config: &str,
        flags: &[&str],
        env: impl FnOnce(&Path) -> Vec<(String, String)>,
    ) -> Daemon {
        let path = dir.join("anomalyd.toml");
        std::fs::write(&path, config).expect("write daemon config");
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let log = dir.join(format!("daemon-{n}.log"));
        let stderr = std::fs::File::create(&log).expect("create daemon log");
        let child = Command::new(env!("CARGO_BIN_EXE_anomalyd"))
            .args(["--log", "info,rumqttc=warn"])
            .args(flags)
            .args(["run", "--config"])
            .arg(&path)
            .envs(env(&log))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start anomalyd");
        Daemon {
            child: Some(child),
            log,
            config: path,
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

    /// SIGKILL, as a crash or the OOM killer would, and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 the daemon");
            let _ = child.wait();
        }
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
