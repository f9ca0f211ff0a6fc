//! A detector worker: owns a [`Detector`] holding its share of the sensors (those
//! [`crate::cluster::worker_of`] assigns it; ingest sends it only their readings),
//! feeds it readings from its queue, sends training jobs to blocking threads and
//! installs the models they return, publishes alert events and per-sensor state, and
//! answers the snapshot coordinator ([`super::snapshots`]) with its sensors' state,
//! periodically and once more when its queue closes. It never waits for training:
//! scoring continues with the old model. With `[alert] stale_after_secs` it also owns
//! the wall-clock [`Staleness`] of its sensors: a periodic sweep publishes `stale`, the
//! next reading `fresh`.
//!
//! What the workers share is in [`Shared`]: the publisher's queue, the model version
//! counter, the `training.parallel` gate, the per-sensor metric labels and the size
//! gauges, so each of those stays one global decision however many workers there are.
//!
//! Readings go through each sensor's reorder buffer ([`Detector::offer`], `[window]
//! reorder_rows`): one is scored once `reorder_rows` newer readings of its sensor have
//! arrived, or once it has waited [`REORDER_WAIT`], whichever comes first, and every
//! held reading is scored before the final snapshot.
//!
//! Here: the worker's wiring, what it shares with the others, and its loop; `readings`
//! takes each reading through to its score, `state` publishes retained state and
//! staleness and evicts idle sensors, `train` hands jobs out and installs models.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::alert::AlertParams;
use crate::alert::stale::Staleness;
use crate::config::{LearningConfig, ScoreStrategy, ThresholdConfig};
use crate::detector::{Detector, DetectorSnapshot, Release};
use crate::ingest::sensors::Note;
use crate::metrics::{Health, SensorLabels, names};
use crate::publish::Outbound;
use crate::ratelimit::LogLimiter;
use crate::reading::{Reading, SensorId};
use crate::store::versions::VersionFloor;

mod readings;
mod state;

use state::Published;
mod train;

pub(crate) use train::Trained;

/// Longest a reading waits in its sensor's reorder buffer. QoS 1 resends after a
/// reconnect arrive within milliseconds of the newer readings they trail (the broker
/// sends its in-flight window first), so a second is ample; it bounds the latency the
/// buffer adds for a sensor that sends slowly or has gone quiet.
pub(crate) const REORDER_WAIT: Duration = Duration::from_secs(1);

/// How often readings that waited [`REORDER_WAIT`] are looked for.
const REORDER_TICK: Duration = Duration::from_millis(250);

/// How often idle sensors are looked for, at most (a shorter `limits.sensor_idle_secs`
/// is checked twice per period).
const IDLE_TICK: Duration = Duration::from_secs(10);

/// New threshold and alert settings from a SIGHUP reload.
#[derive(Clone, Debug)]
pub(crate) struct Reload {
    pub(crate) threshold: ThresholdConfig,
    pub(crate) alert: AlertParams,
    pub(crate) score: ScoreStrategy,
    pub(crate) learning: LearningConfig,
}

/// What the coordinator asks of a worker.
#[derive(Debug)]
pub(crate) enum Control {
    /// Send back the persistent state of the worker's sensors (periodic snapshot).
    Snapshot(oneshot::Sender<DetectorSnapshot>),
    /// Apply new settings (SIGHUP).
    Reload(Reload),
}

/// The sensor count and memory estimate of every worker, summed into the global
/// `anomalyd_sensors` and `anomalyd_memory_estimate_bytes` gauges (a gauge set by each
/// worker alone would show whichever wrote last).
#[derive(Clone, Debug)]
pub(crate) struct Sizes(Arc<[(AtomicUsize, AtomicUsize)]>);

impl Sizes {
    pub(crate) fn new(workers: usize) -> Self {
        Self((0..workers).map(|_| Default::default()).collect())
    }

    /// Records `worker`'s figures and sets both gauges to the sums.
    fn set(&self, worker: usize, sensors: usize, bytes: usize) {
        self.0[worker].0.store(sensors, Ordering::Relaxed);
        self.0[worker].1.store(bytes, Ordering::Relaxed);
        let (s, b) = (self.0.iter()).fold((0, 0), |(s, b), (ws, wb)| {
            (s + ws.load(Ordering::Relaxed), b + wb.load(Ordering::Relaxed))
        });
        metrics::gauge!(names::SENSORS).set(s as f64);
        metrics::gauge!(names::MEMORY_ESTIMATE).set(b as f64);
    }
}

/// What every worker shares; cloned into each.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) outbound_tx: mpsc::Sender<Outbound>,
    /// Where new models' versions come from (`None`: the detector's own numbering).
    /// One counter for all workers: a version never repeats, whichever worker trained.
    pub(crate) versions: Option<Arc<Mutex<VersionFloor>>>,
    /// `training.parallel` permits for all workers together; see `spawn_training`.
    pub(crate) train_gate: Arc<Semaphore>,
    /// Per-sensor gauge labels, capped over all sensors so thousands of them cannot
    /// blow up `/metrics`. A std mutex: held for a map update, never across `.await`.
    pub(crate) sensor_labels: Arc<Mutex<SensorLabels>>,
    pub(crate) sizes: Sizes,
    /// `[alert] stale_after_secs` (`None`: off).
    pub(crate) stale_after: Option<Duration>,
    /// `[homeassistant] score_every_secs`, when Home Assistant discovery is on.
    pub(crate) score_every: Option<Duration>,
    /// `limits.sensor_idle_secs`: sensors without a reading this long are evicted.
    pub(crate) idle_after: Option<Duration>,
    /// To ingest's admission: sensors dropped as idle, and channel sets fixed by a
    /// sensor's first model.
    pub(crate) notes_tx: mpsc::UnboundedSender<Note>,
    pub(crate) tracker: TaskTracker,
    pub(crate) health: Health,
}

impl Shared {
    fn labels(&self) -> MutexGuard<'_, SensorLabels> {
        // A poisoned lock only means a worker panicked mid-update of a gauge map.
        self.sensor_labels.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One detector worker's wiring; see the module docs.
pub(crate) struct DetectorTask {
    /// Its index, below the number of workers.
    pub(crate) worker: usize,
    /// Holds exactly the sensors of this worker.
    pub(crate) detector: Detector,
    pub(crate) readings_rx: mpsc::Receiver<Reading>,
    pub(crate) control_rx: mpsc::Receiver<Control>,
    /// The worker's final snapshot, after its queue closed and every held reading was
    /// scored.
    pub(crate) final_tx: oneshot::Sender<DetectorSnapshot>,
    pub(crate) shared: Shared,
}

/// The task's working state, kept apart from its wiring.
struct Running {
    worker: usize,
    detector: Detector,
    shared: Shared,
    trained_tx: mpsc::Sender<Trained>,
    published: HashMap<SensorId, Published>,
    limiter: LogLimiter,
    /// Wall-clock silence per sensor, when `[alert] stale_after_secs` is on.
    staleness: Option<Staleness>,
    /// When each sensor's scores were last sent for Home Assistant.
    scores_sent: HashMap<SensorId, Instant>,
    /// The clock of reading arrivals for the reorder buffers (monotonic).
    clock: Instant,
}

impl DetectorTask {
    /// Runs until `readings_rx` closes (ingest stopped), scores every held reading,
    /// sends the final snapshot and returns, which drops its half of the publisher's
    /// channel.
    pub(crate) async fn run(self) {
        let DetectorTask {
            worker,
            detector,
            mut readings_rx,
            mut control_rx,
            final_tx,
            shared,
        } = self;
        // One job per sensor is in flight at most (the detector guarantees it), so
        // this capacity only makes a blocking thread wait if thousands finish at once.
        let (trained_tx, mut trained_rx) = mpsc::channel(64);
        let staleness = shared.stale_after.map(|after| {
            let mut s = Staleness::new(after);
            // Restored sensors count as heard from now: one that never speaks again
            // goes stale like any other.
            let now = std::time::SystemTime::now();
            for sensor in detector.sensor_ids() {
                s.track(sensor, now);
            }
            s
        });
        let (stale_after, idle_after) = (shared.stale_after, shared.idle_after);
        let mut run = Running {
            worker,
            staleness,
            scores_sent: HashMap::new(),
            detector,
            shared,
            trained_tx,
            published: HashMap::new(),
            limiter: LogLimiter::default(),
            clock: Instant::now(),
        };
        let idle_period = idle_after.map_or(IDLE_TICK, |d| {
            IDLE_TICK.min(d / 2).max(Duration::from_millis(100))
        });
        let mut idle_tick = tokio::time::interval(idle_period);
        idle_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reorder = run.detector.config().reorder_rows > 0;
        // Per-sensor score gauges are written once a second, not per window (by
        // worker 0: the labels are shared).
        let mut gauge_tick = tokio::time::interval(Duration::from_secs(1));
        gauge_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reorder_tick = tokio::time::interval(REORDER_TICK);
        reorder_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A sweep a tenth of the limit apart (0.1 s to 5 s) reports a silence at most
        // 10 % late and costs nothing between.
        let sweep = stale_after.map_or(Duration::from_secs(3600), |d| {
            (d / 10).clamp(Duration::from_millis(100), Duration::from_secs(5))
        });
        let mut stale_tick = tokio::time::interval(sweep);
        loop {
            tokio::select! {
                // New models first: installing one is cheap and improves every later score.
                biased;
                Some(trained) = trained_rx.recv() => run.on_trained(trained).await,
                // Without a reorder buffer nothing ever waits.
                _ = reorder_tick.tick(), if reorder => run.on_reorder_tick().await,
                _ = gauge_tick.tick(), if worker == 0 => run.shared.labels().flush_scores(),
                reading = readings_rx.recv() => match reading {
                    Some(t) => run.on_reading(t).await,
                    None => break,
                },
                // Disabled when sensors are never evicted.
                _ = idle_tick.tick(), if idle_after.is_some() => run.on_idle_tick(idle_after),
                // Disabled when staleness is off.
                _ = stale_tick.tick(), if stale_after.is_some() => run.on_stale_tick().await,
                // Closed only when the coordinator has stopped (it outlives the workers
                // unless it failed); the pattern then disables the arm.
                Some(control) = control_rx.recv() => run.on_control(control),
            }
        }
        run.shared.health.set_detector_alive(false);
        for sensor in run.detector.holding() {
            run.release(&sensor, Release::All).await;
        }
        // Fails only when the coordinator is gone, which then writes nothing.
        let _ = final_tx.send(run.detector.snapshot());
    }
}

impl Running {
    fn on_control(&mut self, control: Control) {
        match control {
            // Fails only when the coordinator stopped waiting (shutdown).
            Control::Snapshot(reply) => drop(reply.send(self.detector.snapshot())),
            Control::Reload(r) => {
                self.detector.reload(r.threshold, r.alert, r.score, r.learning);
                info!(worker = self.worker, "Threshold and alert settings reloaded.");
            }
        }
    }
}
