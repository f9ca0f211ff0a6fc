//! `anomalyd run`: wires the stages together and owns the shutdown sequence.
//!
//! ```text
//! Ingest ──readings_tx──▶ DetectorTask ──outbound_tx──▶ Publisher
//!                          │   ▲  (spawn_blocking trainer, snapshots → Store)
//!                          └───┘
//! ```
//! Every task runs on one [`TaskTracker`]. Only ingest and the side tasks (metrics
//! server, watchdog, SIGHUP) watch the [`CancellationToken`]; the detector ends when
//! its input closes, writes the final snapshot and drops the publisher's input, which
//! then flushes, publishes `offline` and disconnects. If that takes longer than
//! [`SHUTDOWN_TIMEOUT`], the tasks still running are named and `run` fails.

mod detect;
mod reload;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::cluster::Partition;
use crate::config::Config;
use crate::detector::{Detector, DetectorSnapshot};
use crate::ingest::mqtt::Ingest;
use crate::metrics::Health;
use crate::publish::Publisher;
use crate::reading::{ChannelSet, SensorId};
use crate::store::Store;
use crate::store::versions::VersionFloor;
use detect::DetectorTask;

/// How long shutdown may take before the stragglers are named and `run` fails.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Capacity of the detector → publisher channel. The publisher moves messages into
/// its own bounded queue at once, so this only absorbs bursts.
const OUTBOUND_CAPACITY: usize = 1024;

/// Names of the tasks still running, for the shutdown report.
#[derive(Clone, Default)]
struct Running(Arc<Mutex<BTreeSet<&'static str>>>);

impl Running {
    /// Spawns `fut` on `tracker` under `name`; the name is removed when it ends.
    fn spawn<F>(&self, tracker: &TaskTracker, name: &'static str, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.lock().insert(name);
        let running = self.clone();
        tracker.spawn(async move {
            fut.await;
            running.lock().remove(name);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<&'static str>> {
        // A poisoned set only means a task panicked while inserting a name; the set
        // itself is still valid.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs the daemon until `shutdown` completes, then stops in order (see module docs).
/// With `config_path`, SIGHUP reloads thresholds and alert settings from that file.
///
/// # Errors
///
/// Startup failures (state directory, broker settings, metrics listener) and a
/// shutdown that overran [`SHUTDOWN_TIMEOUT`].
pub async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = open_store(&config)?;
    let budget = (config.limits.max_memory_mb > 0).then_some(config.limits.max_memory_mb << 20);
    let mut detector =
        Detector::new(config.detector.clone(), config.limits.max_sensors).with_memory_budget(budget);
    let restored = restore(&store, &mut detector, config.cluster);
    let versions = VersionFloor::open(store.dir(), restored.newest_version + 1)
        .context("cannot read the model version floor in the state directory")?;
    let persisted = Persisted {
        store,
        versions,
        known: restored.known,
    };

    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let running = Running::default();
    let health = Health::new();
    let final_snapshot_failed = Arc::new(AtomicBool::new(false));
    start_metrics(&config, &tracker, &running, &token, health.clone()).await?;
    let stages = Stages {
        tracker: &tracker,
        running: &running,
        token: &token,
        health,
        final_snapshot_failed: Arc::clone(&final_snapshot_failed),
    };
    stages.start(&config, detector, persisted, config_path)?;
    tracker.close();
    crate::notify::ready();
    crate::notify::status("running");
    info!(broker = %format!("{}:{}", config.mqtt.host, config.mqtt.port), sources = config.sources.len(), "anomalyd running.");

    shutdown.await;
    info!("Shutting down.");
    crate::notify::stopping();
    token.cancel();
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        let stragglers: Vec<&str> = running.lock().iter().copied().collect();
        error!(
            ?stragglers,
            timeout_s = SHUTDOWN_TIMEOUT.as_secs(),
            "Shutdown deadline passed."
        );
        anyhow::bail!(
            "shutdown took longer than {} s; still running: {}",
            SHUTDOWN_TIMEOUT.as_secs(),
            stragglers.join(", ")
        );
    }
    if final_snapshot_failed.load(Ordering::Relaxed) {
        anyhow::bail!("the final snapshot was not written (see the log above)");
    }
    info!("Stopped.");
    Ok(())
}

/// What the stages are spawned onto.
struct Stages<'a> {
    tracker: &'a TaskTracker,
    running: &'a Running,
    token: &'a CancellationToken,
    health: Health,
    final_snapshot_failed: Arc<AtomicBool>,
}

impl Stages<'_> {
    /// Builds the channels and spawns ingest → detector → publisher, plus the SIGHUP
    /// and watchdog side tasks.
    fn start(
        self,
        config: &Config,
        detector: Detector,
        persisted: Persisted,
        config_path: Option<PathBuf>,
    ) -> anyhow::Result<()> {
        let Persisted {
            store,
            versions,
            known,
        } = persisted;
        let (readings_tx, readings_rx) = mpsc::channel(config.limits.channel_capacity.max(1));
        let (outbound_tx, outbound_rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let (reload_tx, reload_rx) = mpsc::channel(4);
        // Unbounded: at most one message per sensor ever admitted and then dropped.
        let (forget_tx, forget_rx) = mpsc::unbounded_channel();
        let ingest = Ingest::new(config, readings_tx, self.health.clone(), known, forget_rx)
            .context("cannot set up the MQTT subscriber")?;
        let publisher = Publisher::new(config).context("cannot set up the MQTT publisher")?;
        let every = config.state.snapshot_every_secs;
        let task = DetectorTask {
            detector,
            readings_rx,
            reload_rx,
            outbound_tx,
            store: Some(Arc::new(store)),
            versions: Some(versions),
            snapshot_every: (every > 0).then(|| Duration::from_secs(every)),
            stale_after: config.stale_after,
            score_every: config.homeassistant.as_ref().map(|h| h.score_every),
            idle_after: (config.limits.sensor_idle_secs > 0)
                .then(|| Duration::from_secs(config.limits.sensor_idle_secs)),
            forget_tx,
            tracker: self.tracker.clone(),
            health: self.health.clone(),
            final_snapshot_failed: self.final_snapshot_failed,
        };
        let (tracker, token) = (self.tracker, self.token);
        self.running.spawn(tracker, "ingest", ingest.run(token.clone()));
        self.running.spawn(tracker, "detector", task.run());
        self.running
            .spawn(tracker, "publisher", publisher.run(outbound_rx));
        if let Some(path) = config_path {
            self.running.spawn(
                tracker,
                "reload",
                reload::reload_loop(path, config.clone(), reload_tx, token.clone()),
            );
        }
        let watchdog = crate::notify::watchdog_loop(self.health, token.clone().cancelled_owned());
        self.running.spawn(tracker, "watchdog", watchdog);
        Ok(())
    }
}

/// Opens the state directory; a directory that cannot be created is fatal, so systemd
/// restarts the unit rather than the daemon running without persistence.
fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(std::path::Path::new(&config.state.dir))
        .with_context(|| format!("cannot open state directory {}", config.state.dir))
}

/// What the detector task and ingest start from, besides the config.
struct Persisted {
    store: Store,
    versions: VersionFloor,
    /// Sensors restored from the snapshot, with their channel sets.
    known: Vec<(SensorId, ChannelSet)>,
}

/// What a snapshot told the rest of the daemon.
#[derive(Default)]
struct Restored {
    /// The newest model version in it (0 without one).
    newest_version: u64,
    /// Its sensors and their channel sets (ingest admits them first).
    known: Vec<(SensorId, ChannelSet)>,
}

/// Restores the last snapshot. A missing snapshot is a first start; a corrupt or
/// foreign one has been set aside by the store and is reported, never fatal. Sensors
/// that `partition` does not own (the cluster was resized) are left to their new
/// owner: scoring them here too would alert twice.
fn restore(store: &Store, detector: &mut Detector, partition: Partition) -> Restored {
    match store.load::<DetectorSnapshot>() {
        Ok(Some(mut snapshot)) => {
            let before = snapshot.sensors.len();
            snapshot.sensors.retain(|s| partition.owns(&s.sensor));
            if snapshot.sensors.len() < before {
                info!(
                    dropped = before - snapshot.sensors.len(),
                    instances = partition.instances(),
                    index = partition.index(),
                    "Snapshot sensors now owned by other instances left out."
                );
            }
            let newest_version = (snapshot.sensors.iter())
                .filter_map(|s| s.model.as_ref().map(|m| m.version))
                .max()
                .unwrap_or(0);
            let known = (snapshot.sensors.iter())
                .map(|s| (SensorId::new(&s.sensor), ChannelSet::from(s.channels.clone())))
                .collect();
            let sensors = detector.restore(snapshot);
            info!(
                sensors,
                newest_model_version = newest_version,
                "Snapshot restored; no warm-up for known sensors."
            );
            Restored {
                newest_version,
                known,
            }
        }
        Ok(None) => {
            info!("No snapshot; every sensor starts with a warm-up.");
            Restored::default()
        }
        Err(error) => {
            warn!(%error, "Snapshot unusable; starting without it.");
            Restored::default()
        }
    }
}

async fn start_metrics(
    config: &Config,
    tracker: &TaskTracker,
    running: &Running,
    token: &CancellationToken,
    health: Health,
) -> anyhow::Result<()> {
    let handle = crate::metrics::install().context("cannot install the metrics recorder")?;
    let Some(addr) = config.metrics_listen else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    let shutdown = token.clone();
    running.spawn(tracker, "metrics", async move {
        if let Err(error) =
            crate::metrics::serve_on(listener, handle, health, shutdown.cancelled_owned()).await
        {
            error!(%error, "Metrics server failed.");
        }
    });
    Ok(())
}
