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

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::alert::stale::{StaleEvent, Staleness};
use crate::alert::{AlertEventKind, AlertParams, ClearReason};
use crate::config::{LearningConfig, ScoreStrategy, ThresholdConfig};
use crate::detector::{DetectError, Detector, DetectorSnapshot, Evicted, Offered, Release, Step};
use crate::escape::Escaped;
use crate::ingest::sensors::Note;
use crate::metrics::{Health, ScoreSample, SensorLabels, labels, names};
use crate::publish::homeassistant::ScoreUpdate;
use crate::publish::{Outbound, SensorState};
use crate::ratelimit::LogLimiter;
use crate::reading::{Reading, SensorId};
use crate::store::versions::VersionFloor;
use crate::window::WindowReject;

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
    async fn on_reading(&mut self, t: Reading) {
        match self.detector.regroup(&t.sensor, &t.channels) {
            Ok(None) => {}
            Ok(Some(before)) => self.on_widened(&t, before),
            Err(error) => return self.on_rejected(&error),
        }
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

    /// A sensor's channel set changed before its first model: its warm-up restarted.
    fn on_widened(&mut self, t: &Reading, before: usize) {
        metrics::counter!(names::CHANNEL_SETS_WIDENED).increment(1);
        // Sensor and channel names come from the network: logged escaped.
        info!(
            sensor = %t.sensor.escaped(),
            before,
            channels = %Escaped(&t.channels.join(",")),
            "Channel set widened during warm-up; warm-up restarted."
        );
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
                        self.shared.labels().set_scores(sensor, sample);
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
                    let _ = self.shared.notes_tx.send(Note::Forget(id.clone()));
                    (id, "dropped")
                }
            };
            parked += usize::from(kind == "parked");
            self.published.remove(sensor);
            self.shared.labels().forget_scores(sensor);
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

    /// Tracked sensors and the memory estimate, summed over the workers.
    fn set_size_gauges(&self) {
        (self.shared.sizes).set(self.worker, self.detector.sensors(), self.detector.memory_bytes());
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
            let _ = self
                .shared
                .outbound_tx
                .send(Outbound::Alert(Box::new(event)))
                .await;
        }
        self.publish_state(sensor, ts).await;
    }

    /// Sends the sensor's scores for Home Assistant, at most once per `score_every`.
    async fn send_score(&mut self, sensor: &SensorId, ts: f64, scored: &crate::detector::Scored) {
        let Some(every) = self.shared.score_every else {
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
        let _ = self.shared.outbound_tx.send(Outbound::Score(update)).await;
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
        let _ = self.shared.outbound_tx.send(Outbound::Stale(event)).await;
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
        {
            let mut labels = self.shared.labels();
            labels.set_model_version(sensor, model_version);
            labels.set_threshold_ready(sensor, threshold_ready);
        }
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
        let _ = self.shared.outbound_tx.send(Outbound::State(msg)).await;
    }

    fn on_rejected(&mut self, error: &DetectError) {
        let kind = match error {
            DetectError::TooManySensors { .. } => "sensor_cap",
            DetectError::MemoryBudget { .. } => "memory_budget",
            DetectError::ChannelSetChanged { .. } => "channel_set_changed",
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
