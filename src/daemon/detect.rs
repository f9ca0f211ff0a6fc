//! The detector task: owns the [`Detector`], feeds it readings from ingest, sends
//! training jobs to blocking threads and installs the models they return, publishes
//! alert events and per-sensor state, snapshots periodically and once more when its
//! input closes. It never waits for training: scoring continues with the old model.
//! With `[alert] stale_after_secs` it also owns the wall-clock [`Staleness`] of every
//! sensor: a periodic sweep publishes `stale`, the next reading `fresh`.
//!
//! Readings go through each sensor's reorder buffer ([`Detector::offer`], `[window]
//! reorder_rows`): one is scored once `reorder_rows` newer readings of its sensor have
//! arrived, or once it has waited [`REORDER_WAIT`], whichever comes first, and every
//! held reading is scored before the final snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::alert::stale::{StaleEvent, Staleness};
use crate::alert::{AlertEventKind, AlertParams, ClearReason};
use crate::config::{LearningConfig, ModelConfig, ScoreStrategy, ThresholdConfig};
use crate::detector::{DetectError, Detector, Evicted, Offered, Release, Step};
use crate::metrics::{Health, ScoreSample, SensorLabels, labels, names};
use crate::model::Model;
use crate::publish::homeassistant::ScoreUpdate;
use crate::publish::{Outbound, SensorState};
use crate::ratelimit::LogLimiter;
use crate::reading::{Reading, SensorId};
use crate::store::Store;
use crate::store::versions::VersionFloor;
use crate::trainer::TrainJob;
use crate::window::WindowReject;

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

/// A finished training job coming back from a blocking thread.
#[derive(Debug)]
pub(crate) struct Trained {
    sensor: SensorId,
    /// `None` when training failed (logged on the blocking thread).
    model: Option<Model>,
    took: Duration,
}

/// New threshold and alert settings from a SIGHUP reload.
#[derive(Debug)]
pub(crate) struct Reload {
    pub(crate) threshold: ThresholdConfig,
    pub(crate) alert: AlertParams,
    pub(crate) score: ScoreStrategy,
    pub(crate) learning: LearningConfig,
}

/// What was last published for a sensor; a change triggers a retained state update.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Published {
    state: crate::detector::SensorState,
    model_version: u64,
    threshold_ready: bool,
    last_clear: Option<crate::alert::ClearReason>,
    window_ready: bool,
    window_resets: u64,
    stale: bool,
}

/// The detector task's state; see the module docs.
pub(crate) struct DetectorTask {
    pub(crate) detector: Detector,
    pub(crate) readings_rx: mpsc::Receiver<Reading>,
    pub(crate) reload_rx: mpsc::Receiver<Reload>,
    pub(crate) outbound_tx: mpsc::Sender<Outbound>,
    pub(crate) store: Option<Arc<Store>>,
    /// Where new models' versions come from (`None`: the detector's own numbering).
    pub(crate) versions: Option<VersionFloor>,
    pub(crate) snapshot_every: Option<Duration>,
    /// `[alert] stale_after_secs` (`None`: off).
    pub(crate) stale_after: Option<Duration>,
    /// `[homeassistant] score_every_secs`, when Home Assistant discovery is on.
    pub(crate) score_every: Option<Duration>,
    /// `limits.sensor_idle_secs`: sensors without a reading this long are evicted.
    pub(crate) idle_after: Option<Duration>,
    /// Sensors dropped as idle, for ingest's admission to forget.
    pub(crate) forget_tx: mpsc::UnboundedSender<SensorId>,
    pub(crate) tracker: TaskTracker,
    pub(crate) health: Health,
    /// Set when the final snapshot could not be written: `run` then fails.
    pub(crate) final_snapshot_failed: Arc<AtomicBool>,
}

/// The task's working state, kept apart from its wiring.
struct Running {
    detector: Detector,
    outbound_tx: mpsc::Sender<Outbound>,
    trained_tx: mpsc::Sender<Trained>,
    store: Option<Arc<Store>>,
    /// Versions that never repeat across restarts; see [`VersionFloor`].
    versions: Option<VersionFloor>,
    tracker: TaskTracker,
    /// `training.parallel` permits; see `spawn_training`.
    train_gate: Arc<Semaphore>,
    published: HashMap<SensorId, Published>,
    /// Per-sensor gauge labels, capped so thousands of sensors cannot blow up `/metrics`.
    sensor_labels: SensorLabels,
    /// See [`DetectorTask::final_snapshot_failed`].
    final_snapshot_failed: Arc<AtomicBool>,
    /// The one periodic snapshot being written, if any; the next waits for it.
    saving: Option<JoinHandle<()>>,
    limiter: LogLimiter,
    /// Wall-clock silence per sensor, when `[alert] stale_after_secs` is on.
    staleness: Option<Staleness>,
    /// See [`DetectorTask::score_every`].
    score_every: Option<Duration>,
    /// When each sensor's scores were last sent for Home Assistant.
    scores_sent: HashMap<SensorId, Instant>,
    /// The clock of reading arrivals for the reorder buffers (monotonic).
    clock: Instant,
    /// See [`DetectorTask::forget_tx`].
    forget_tx: mpsc::UnboundedSender<SensorId>,
}

impl DetectorTask {
    /// Runs until `readings_rx` closes (ingest stopped), then writes the final snapshot
    /// and returns, which closes the publisher's channel.
    pub(crate) async fn run(self) {
        let DetectorTask {
            detector,
            mut readings_rx,
            mut reload_rx,
            outbound_tx,
            store,
            versions,
            snapshot_every,
            stale_after,
            score_every,
            idle_after,
            forget_tx,
            tracker,
            health,
            final_snapshot_failed,
        } = self;
        health.set_detector_alive(true);
        // One job per sensor is in flight at most (the detector guarantees it), so
        // this capacity only makes a blocking thread wait if thousands finish at once.
        let (trained_tx, mut trained_rx) = mpsc::channel(64);
        let parallel = detector.config().training.parallel;
        let staleness = stale_after.map(|after| {
            let mut s = Staleness::new(after);
            // Restored sensors count as heard from now: one that never speaks again
            // goes stale like any other.
            let now = std::time::SystemTime::now();
            for sensor in detector.sensor_ids() {
                s.track(sensor, now);
            }
            s
        });
        let mut run = Running {
            staleness,
            score_every,
            scores_sent: HashMap::new(),
            train_gate: Arc::new(Semaphore::new(parallel)),
            detector,
            outbound_tx,
            trained_tx,
            store,
            versions,
            tracker,
            final_snapshot_failed,
            published: HashMap::new(),
            sensor_labels: SensorLabels::new(crate::metrics::DEFAULT_MAX_TRACKED_SENSORS),
            saving: None,
            limiter: LogLimiter::default(),
            clock: Instant::now(),
            forget_tx,
        };
        let idle_period = idle_after.map_or(IDLE_TICK, |d| {
            IDLE_TICK.min(d / 2).max(Duration::from_millis(100))
        });
        let mut idle_tick = tokio::time::interval(idle_period);
        idle_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reorder = run.detector.config().reorder_rows > 0;
        // Per-sensor score gauges are written once a second, not per window.
        let mut gauge_tick = tokio::time::interval(Duration::from_secs(1));
        gauge_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reorder_tick = tokio::time::interval(REORDER_TICK);
        reorder_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let period = snapshot_every.unwrap_or(Duration::from_secs(3600));
        let mut snapshot_tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
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
                _ = gauge_tick.tick() => run.sensor_labels.flush_scores(),
                reading = readings_rx.recv() => match reading {
                    Some(t) => run.on_reading(t).await,
                    None => break,
                },
                // Disabled when sensors are never evicted.
                _ = idle_tick.tick(), if idle_after.is_some() => run.on_idle_tick(idle_after),
                // Disabled when snapshots are only taken at shutdown.
                _ = snapshot_tick.tick(), if snapshot_every.is_some() => run.on_snapshot_tick(),
                // Disabled when staleness is off.
                _ = stale_tick.tick(), if stale_after.is_some() => run.on_stale_tick().await,
                Some(reload) = reload_rx.recv() => run.on_reload(reload),
            }
        }
        health.set_detector_alive(false);
        for sensor in run.detector.holding() {
            run.release(&sensor, Release::All).await;
        }
        run.train_gate.close();
        run.final_snapshot().await;
    }
}

impl Running {
    async fn on_reading(&mut self, t: Reading) {
        let arrived = self.clock.elapsed().as_secs_f64();
        let offered = self
            .detector
            .offer(&t.sensor, t.ts, &t.values, arrived, || t.channels.to_vec());
        // Any reading of a tracked sensor shows it is alive, even one the window
        // refuses; a sensor refused at the cap is not tracked (nor can go stale).
        if self.detector.pipeline(&t.sensor).is_some() {
            let now = std::time::SystemTime::now();
            if let Some(event) = (self.staleness.as_mut()).and_then(|s| s.seen(&t.sensor, now)) {
                self.send_stale(event).await;
            }
        }
        match offered {
            Ok(Offered::Held) => {}
            Ok(Offered::Reordered) => metrics::counter!(names::READINGS_REORDERED).increment(1),
            Err(error) => return self.on_rejected(&error),
        }
        self.release(&t.sensor, Release::Due).await;
    }

    /// Scores the sensor's held readings that `release` lets go, oldest first.
    async fn release(&mut self, sensor: &SensorId, release: Release) {
        loop {
            let started = Instant::now();
            let Some(released) = self.detector.release(sensor, release) else {
                return;
            };
            match released.step {
                Ok(step) => {
                    if step.scored.is_some() {
                        metrics::counter!(names::WINDOWS_SCORED).increment(1);
                        metrics::histogram!(names::SCORE_SECONDS).record(started.elapsed().as_secs_f64());
                    }
                    if let Some(scored) = &step.scored {
                        let sample = ScoreSample {
                            score: self.detector.config().threshold.score.pick(&scored.scores),
                            threshold: scored.threshold,
                            anomaly_score: scored.anomaly_score,
                        };
                        self.sensor_labels.set_scores(sensor, sample);
                        self.send_score(sensor, released.ts, scored).await;
                    }
                    self.on_step(sensor, released.ts, step).await;
                }
                Err(error) => self.on_rejected(&error),
            }
        }
    }

    /// Evicts sensors without a reading for `idle_after`; dropped ones are forgotten by
    /// ingest's admission too.
    fn on_idle_tick(&mut self, idle_after: Option<Duration>) {
        let Some(idle_after) = idle_after else {
            return;
        };
        let cutoff = self.clock.elapsed().as_secs_f64() - idle_after.as_secs_f64();
        let evicted = self.detector.evict_idle(cutoff);
        if evicted.is_empty() {
            return;
        }
        let mut parked = 0_usize;
        for e in &evicted {
            let (sensor, kind) = match e {
                Evicted::Parked(id) => (id, "parked"),
                Evicted::Dropped(id) => {
                    // Fails only when ingest has stopped (shutdown).
                    let _ = self.forget_tx.send(id.clone());
                    (id, "dropped")
                }
            };
            parked += usize::from(kind == "parked");
            self.published.remove(sensor);
            self.sensor_labels.forget_scores(sensor);
            metrics::counter!(names::SENSORS_EVICTED, labels::KIND => kind).increment(1);
        }
        self.set_size_gauges();
        info!(
            parked,
            dropped = evicted.len() - parked,
            idle_secs = idle_after.as_secs(),
            "Idle sensors evicted."
        );
    }

    /// Tracked sensors and the memory estimate.
    fn set_size_gauges(&self) {
        metrics::gauge!(names::SENSORS).set(self.detector.sensors() as f64);
        metrics::gauge!(names::MEMORY_ESTIMATE).set(self.detector.memory_bytes() as f64);
    }

    /// Scores readings that waited [`REORDER_WAIT`] for older ones.
    async fn on_reorder_tick(&mut self) {
        // Sensors are admitted when a reading is offered, before any state is published.
        self.set_size_gauges();
        let cutoff = self.clock.elapsed().as_secs_f64() - REORDER_WAIT.as_secs_f64();
        for sensor in self.detector.holding() {
            self.release(&sensor, Release::ArrivedBy(cutoff)).await;
        }
    }

    async fn on_step(&mut self, sensor: &SensorId, ts: f64, step: Step) {
        if let Some(job) = step.train {
            self.spawn_training(job);
        }
        if let Some(event) = step.event {
            let label = match event.event {
                AlertEventKind::Raised => "raised",
                AlertEventKind::Cleared => "cleared",
            };
            metrics::counter!(names::ALERTS, labels::EVENT => label).increment(1);
            if event.reason == Some(ClearReason::Accepted) {
                metrics::counter!(names::ALERTS_ACCEPTED).increment(1);
            }
            // The publisher drains its channel into its own queue at once, so this
            // only waits for a moment under a burst.
            let _ = self.outbound_tx.send(Outbound::Alert(Box::new(event))).await;
        }
        self.publish_state(sensor, ts).await;
    }

    /// Sends the sensor's scores for Home Assistant, at most once per `score_every`.
    async fn send_score(&mut self, sensor: &SensorId, ts: f64, scored: &crate::detector::Scored) {
        let Some(every) = self.score_every else {
            return;
        };
        let now = Instant::now();
        if (self.scores_sent.get(sensor)).is_some_and(|sent| now.duration_since(*sent) < every) {
            return;
        }
        self.scores_sent.insert(sensor.clone(), now);
        let update = ScoreUpdate {
            sensor: sensor.to_string(),
            anomaly_score: scored.anomaly_score,
            score: self.detector.config().threshold.score.pick(&scored.scores),
            threshold: scored.threshold,
            model_version: scored.model_version,
            ts,
        };
        let _ = self.outbound_tx.send(Outbound::Score(update)).await;
    }

    /// Sweeps for silent sensors: each newly stale one gets its event and state.
    async fn on_stale_tick(&mut self) {
        let Some(staleness) = self.staleness.as_mut() else {
            return;
        };
        for event in staleness.sweep(std::time::SystemTime::now()) {
            self.send_stale(event).await;
        }
    }

    /// Publishes a `stale` or `fresh` event and the sensor's state that changed with it.
    async fn send_stale(&mut self, event: StaleEvent) {
        metrics::counter!(names::ALERTS, labels::EVENT => event.event.as_str()).increment(1);
        let sensor = SensorId::new(&event.sensor);
        let ts = event.ts;
        let _ = self.outbound_tx.send(Outbound::Stale(event)).await;
        self.publish_state(&sensor, ts).await;
    }

    /// Publishes the sensor's retained state when it changed.
    async fn publish_state(&mut self, sensor: &SensorId, ts: f64) {
        let Some(p) = self.detector.pipeline(sensor) else {
            return;
        };
        let threshold_ready = p.threshold_ready(self.detector.config());
        let model_version = p.model_version();
        let state = p.state(self.detector.config());
        let now = Published {
            state,
            model_version,
            threshold_ready,
            last_clear: p.last_clear(),
            window_ready: p.window_ready(),
            window_resets: p.window_resets(),
            stale: (self.staleness.as_ref()).is_some_and(|s| s.is_stale(sensor)),
        };
        let before = self.published.insert(sensor.clone(), now);
        if before == Some(now) {
            return;
        }
        let resets_before = before.map_or(0, |b| b.window_resets);
        if now.window_resets > resets_before {
            metrics::counter!(names::WINDOW_RESETS).increment(now.window_resets - resets_before);
        }
        if before.is_none() {
            self.set_size_gauges();
        }
        self.sensor_labels.set_model_version(sensor, model_version);
        self.sensor_labels.set_threshold_ready(sensor, threshold_ready);
        let msg = SensorState {
            sensor: sensor.to_string(),
            state,
            last_clear: now.last_clear,
            model_version,
            threshold_ready,
            window_ready: now.window_ready,
            stale: now.stale,
            ts,
        };
        let _ = self.outbound_tx.send(Outbound::State(msg)).await;
    }

    fn on_rejected(&mut self, error: &DetectError) {
        let kind = match error {
            DetectError::TooManySensors { .. } => "sensor_cap",
            DetectError::MemoryBudget { .. } => "memory_budget",
            DetectError::Rejected { reason, .. } => reject_kind(reason),
        };
        metrics::counter!(names::READINGS_DROPPED, labels::REASON => kind).increment(1);
        // An exact duplicate is what a QoS 1 resend of a scored reading looks like after
        // every reconnect: counted, not logged.
        let resend = matches!(
            error,
            DetectError::Rejected {
                reason: WindowReject::Duplicate { .. },
                ..
            }
        );
        if resend {
            return;
        }
        if let Some(suppressed) = self.limiter.check(kind, Instant::now()) {
            // `DetectError` writes the sensor id (from the network) Debug-escaped.
            warn!(kind, %error, suppressed, "Dropped reading.");
        }
    }

    /// Trains on a blocking thread once one of the `training.parallel` permits is free;
    /// the result comes back through `trained_tx`. Without the gate, fifty sensors due
    /// together trained on fifty threads at once: the CPU went to training, readings
    /// were dropped, and the resident set reached ~700 MB.
    fn spawn_training(&self, job: TrainJob) {
        let config: ModelConfig = self.detector.config().model.clone();
        let trained_tx = self.trained_tx.clone();
        let gate = Arc::clone(&self.train_gate);
        self.tracker.spawn(async move {
            // Closed when the detector stops: waiting jobs give up instead of training.
            let Ok(_permit) = gate.acquire_owned().await else {
                return;
            };
            let trained = tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let model = match crate::trainer::train(&job, &config) {
                    Ok(m) => Some(m),
                    Err(error) => {
                        warn!(sensor = %job.sensor.escaped(), %error, "Training failed; keeping the old model.");
                        None
                    }
                };
                Trained {
                    sensor: job.sensor,
                    model,
                    took: started.elapsed(),
                }
            })
            .await;
            // A panic inside training is logged by the runtime; the sensor keeps its model.
            if let Ok(trained) = trained {
                // Fails only when the detector has stopped: the model is not needed then.
                let _ = trained_tx.send(trained).await;
            }
        });
    }

    async fn on_trained(&mut self, mut t: Trained) {
        if let (Some(model), Some(versions)) = (t.model.as_mut(), self.versions.as_mut()) {
            match versions.allocate() {
                Ok(version) => model.version = version,
                Err(error) => {
                    warn!(sensor = %t.sensor.escaped(), %error, "Cannot reserve a model version; keeping the old model.");
                    t.model = None;
                }
            }
        }
        let version = t.model.as_ref().map(|m| m.version);
        let result = if version.is_some() { "ok" } else { "error" };
        metrics::counter!(names::RETRAINS, labels::RESULT => result).increment(1);
        metrics::histogram!(names::RETRAIN_SECONDS).record(t.took.as_secs_f64());
        if let Some(version) = version {
            info!(sensor = %t.sensor.escaped(), version, took_ms = t.took.as_millis() as u64, "Model installed.");
        }
        self.detector.install(&t.sensor, t.model);
        // The reading time of the state update is the wall clock here: no reading caused it.
        self.publish_state(&t.sensor, crate::reading::unix_now()).await;
    }

    fn on_reload(&mut self, reload: Reload) {
        self.detector
            .reload(reload.threshold, reload.alert, reload.score, reload.learning);
        info!("Threshold and alert settings reloaded.");
    }

    fn on_snapshot_tick(&mut self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if self.saving.as_ref().is_some_and(|h| !h.is_finished()) {
            return; // The previous snapshot is still being written: skip this tick.
        }
        let snapshot = self.detector.snapshot();
        self.saving = Some(self.tracker.spawn_blocking(move || {
            save(&store, &snapshot);
        }));
    }

    async fn final_snapshot(mut self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if let Some(h) = self.saving.take() {
            let _ = h.await;
        }
        let snapshot = self.detector.snapshot();
        let sensors = self.detector.sensors();
        let saved = tokio::task::spawn_blocking(move || save(&store, &snapshot)).await;
        match saved {
            Ok(true) => info!(sensors, "Final snapshot written."),
            // `save` logged why; the daemon exits non-zero (see `daemon::run`).
            Ok(false) => {
                self.final_snapshot_failed.store(true, Ordering::Relaxed);
                error!(
                    sensors,
                    "Final snapshot not written; state since the last snapshot is lost."
                );
            }
            Err(error) => {
                self.final_snapshot_failed.store(true, Ordering::Relaxed);
                error!(%error, "Final snapshot task failed.");
            }
        }
    }
}

/// Saves a snapshot; true when it was written. [`Store::save`] counts it in
/// `snapshots_total` and `snapshot_seconds` (once: counting here too doubled both).
fn save(store: &Store, snapshot: &crate::detector::DetectorSnapshot) -> bool {
    match store.save(snapshot) {
        Ok(report) => {
            tracing::debug!(path = %report.path.display(), bytes = report.bytes, "Snapshot written.");
            true
        }
        Err(error) => {
            warn!(%error, "Snapshot not written.");
            false
        }
    }
}

/// Metric label of a window rejection.
fn reject_kind(reason: &WindowReject) -> &'static str {
    match reason {
        WindowReject::OutOfOrder { .. } => "out_of_order",
        WindowReject::Duplicate { .. } => "duplicate",
        WindowReject::WrongChannels { .. } => "wrong_channels",
        WindowReject::NotFinite { .. } => "not_finite",
        WindowReject::BadTimestamp { .. } => "bad_timestamp",
    }
}
