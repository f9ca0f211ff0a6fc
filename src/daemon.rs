//! `anomalyd run`: wires the stages together and owns the shutdown sequence.
//!
//! ```text
//!                    ┌─readings_tx[0]─▶ DetectorTask 0 ─┐
//! Ingest (own thread)┤        …                         ├─outbound_tx─▶ Publisher
//!                    └─readings_tx[N-1]▶ DetectorTask N-1┘
//!                          (spawn_blocking trainer; Coordinator: snapshots → Store)
//! ```
//! Sensors are sharded over `limits.detector_workers` detector tasks by a stable hash
//! of their id ([`crate::cluster::worker_of`]): each worker owns its sensors' state
//! outright, so the workers score in parallel on the runtime's threads without sharing
//! a lock per reading, and every reading of a sensor goes through one FIFO queue to one
//! worker, in order. Ingest polls the broker on a thread of its own, so the event loop
//! (keep-alives, QoS 1 acknowledgements) never waits in the runtime's run queue behind
//! a worker that is busy scoring.
//!
//! Every task runs on one [`TaskTracker`]. Only ingest and the side tasks (metrics
//! server, watchdog, SIGHUP) watch the [`CancellationToken`]; the workers end when
//! their queues close, each sends its final state to the snapshot coordinator
//! ([`snapshots`]), which writes one final snapshot, and the publisher's input closes
//! with the last worker; it then flushes, publishes `offline` and disconnects. If that
//! takes longer than [`SHUTDOWN_TIMEOUT`], the tasks still running are named and `run`
//! fails.

mod detect;
mod reload;
mod restore;
mod snapshots;

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
use tracing::{error, info};

use crate::config::Config;
use crate::detector::Detector;
use crate::ingest::mqtt::Ingest;
use crate::ingest::shards::Shards;
use crate::metrics::Health;
use crate::publish::Publisher;
use crate::store::Store;
use crate::store::versions::VersionFloor;
use detect::{DetectorTask, Shared, Sizes};
use restore::restore;
use snapshots::Coordinator;

/// Most detector workers chosen by `limits.detector_workers = 0`: one ingest thread
/// feeds them all, so past a handful of cores more workers would only wait on it.
const MAX_AUTO_WORKERS: usize = 8;

/// How long shutdown may take before the stragglers are named and `run` fails.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Capacity of the detector → publisher channel. The publisher moves messages into
/// its own bounded queue at once, so this only absorbs bursts.
const OUTBOUND_CAPACITY: usize = 1024;

/// Names of the tasks still running, for the shutdown report.
#[derive(Clone, Default)]
struct Running(Arc<Mutex<BTreeSet<String>>>);

impl Running {
    /// Spawns `fut` on `tracker` under `name`; the name is removed when it ends.
    fn spawn<F>(&self, tracker: &TaskTracker, name: impl Into<String>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        self.lock().insert(name.clone());
        let running = self.clone();
        tracker.spawn(async move {
            fut.await;
            running.lock().remove(&name);
        });
    }

    /// Runs `ingest` on a thread of its own (a current-thread runtime), tracked under
    /// "ingest" like a task; see the module docs for why.
    fn spawn_ingest(
        &self,
        tracker: &TaskTracker,
        ingest: Ingest,
        token: CancellationToken,
    ) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the ingest thread's runtime")?;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("anomalyd-ingest".to_string())
            .spawn(move || {
                runtime.block_on(ingest.run(token));
                let _ = done_tx.send(());
            })
            .context("cannot start the ingest thread")?;
        // Resolves when the thread ends, normally or by a panic (the sender is dropped).
        self.spawn(tracker, "ingest", async move {
            let _ = done_rx.await;
        });
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
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
    let (detectors, restored) = restore(&store, &config, detector_workers(&config));
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
    stages.start(&config, detectors, persisted, config_path)?;
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
        let stragglers: Vec<String> = running.lock().iter().cloned().collect();
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
    /// Builds the channels and spawns ingest → detector workers → publisher, the
    /// snapshot coordinator, and the SIGHUP and watchdog side tasks. `detectors` holds
    /// one detector per worker, each with that worker's restored sensors.
    fn start(
        self,
        config: &Config,
        detectors: Vec<Detector>,
        persisted: Persisted,
        config_path: Option<PathBuf>,
    ) -> anyhow::Result<()> {
        let Persisted {
            store,
            versions,
            known,
        } = persisted;
        let (outbound_tx, outbound_rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let (reload_tx, reload_rx) = mpsc::channel(4);
        // Unbounded: at most two messages per sensor admitted (its first model, its
        // drop as idle), and ingest reads them with every publish.
        let (notes_tx, notes_rx) = mpsc::unbounded_channel();
        let train_gate = Arc::new(tokio::sync::Semaphore::new(config.detector.training.parallel));
        let every = config.state.snapshot_every_secs;
        let shared = Shared {
            outbound_tx,
            versions: Some(Arc::new(Mutex::new(versions))),
            train_gate: Arc::clone(&train_gate),
            sensor_labels: Arc::new(Mutex::new(crate::metrics::SensorLabels::new(
                crate::metrics::DEFAULT_MAX_TRACKED_SENSORS,
            ))),
            sizes: Sizes::new(detectors.len()),
            stale_after: config.stale_after,
            score_every: config.homeassistant.as_ref().map(|h| h.score_every),
            idle_after: (config.limits.sensor_idle_secs > 0)
                .then(|| Duration::from_secs(config.limits.sensor_idle_secs)),
            notes_tx,
            tracker: self.tracker.clone(),
            health: self.health.clone(),
        };
        let mut readings_txs = Vec::with_capacity(detectors.len());
        let mut coordinator = Coordinator {
            control_tx: Vec::with_capacity(detectors.len()),
            finals: Vec::with_capacity(detectors.len()),
            reload_rx,
            store: Some(Arc::new(store)),
            snapshot_every: (every > 0).then(|| Duration::from_secs(every)),
            train_gate,
            tracker: self.tracker.clone(),
            final_snapshot_failed: self.final_snapshot_failed,
        };
        let mut workers = Vec::with_capacity(detectors.len());
        for (worker, detector) in detectors.into_iter().enumerate() {
            let (readings_tx, readings_rx) = mpsc::channel(config.limits.channel_capacity.max(1));
            // Snapshot requests and reloads: one of each at a time.
            let (control_tx, control_rx) = mpsc::channel(4);
            let (final_tx, final_rx) = tokio::sync::oneshot::channel();
            readings_txs.push(readings_tx);
            coordinator.control_tx.push(control_tx);
            coordinator.finals.push(final_rx);
            workers.push(DetectorTask {
                worker,
                detector,
                readings_rx,
                control_rx,
                final_tx,
                shared: shared.clone(),
            });
        }
        // The workers hold the only other senders: the publisher's input closes with
        // the last of them.
        drop(shared);
        let ingest = Ingest::new(
            config,
            Shards::new(readings_txs),
            self.health.clone(),
            known,
            notes_rx,
        )
        .context("cannot set up the MQTT subscriber")?;
        let publisher = Publisher::new(config).context("cannot set up the MQTT publisher")?;
        let (tracker, token) = (self.tracker, self.token);
        self.health.set_detector_alive(true);
        info!(workers = workers.len(), "Detector workers starting.");
        for task in workers {
            let name = format!("detector-{}", task.worker);
            self.running.spawn(tracker, name, task.run());
        }
        self.running.spawn(tracker, "snapshots", coordinator.run());
        self.running.spawn_ingest(tracker, ingest, token.clone())?;
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

/// The number of detector workers: `limits.detector_workers`, or with 0 one per
/// available core, at most [`MAX_AUTO_WORKERS`].
fn detector_workers(config: &Config) -> usize {
    match config.limits.detector_workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_AUTO_WORKERS)),
        n => n,
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
    known: Vec<crate::ingest::sensors::Restored>,
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
