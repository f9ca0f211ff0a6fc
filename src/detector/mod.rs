//! The per-sensor pipeline, sans-IO: reading → drift removal → window → scoring (both
//! models, threshold, anomaly score) → learning policy → alert lifecycle. The daemon,
//! `replay` and `eval` all drive this code; nothing about scoring exists anywhere else.
//!
//! Each stage is a type that owns its state and makes its decisions: `drift`
//! (`[window] detrend`), `scoring` (`[threshold]`, `[score]`), `learning` (what is
//! learned, when a model is due, acceptance; `[learning]`, `[training]`) and the alert
//! lifecycle in [`crate::alert`]. The sensor's [`SensorState`] is an output of the core.
//!
//! Readings enter in one of two ways. [`Detector::process`] takes a reading that is
//! known to be in timestamp order (replay and eval, whose input is) and returns its
//! step at once. [`Detector::offer`] puts a reading of a live stream through the
//! sensor's reorder buffer (`reorder`, `[window] reorder_rows`), and
//! [`Detector::release`] hands the readings back in timestamp order and processes them
//! exactly as `process` would; the daemon does this.
//!
//! What bounds its memory is decided in `limits` (the sensor cap, the memory budget
//! charged with [`memory::pipeline_bytes`], idle eviction and parking).
//!
//! The detector never trains by itself: when a sensor needs a model it returns a
//! [`TrainJob`] in its [`Step`], and whoever drives it installs the result with
//! [`Detector::install`] (inline in replay, from a blocking thread in the daemon).

mod channels;
mod drift;
mod learning;
mod limits;
pub mod memory;
mod reorder;
#[cfg(test)]
mod reorder_tests;
mod scoring;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use crate::alert::severity::{IdFamily, alert_id};
use crate::alert::{AlertEvent, AlertEventKind, AlertState, ChannelContribution, ClearReason, Severity};
use crate::config::DetectorConfig;
use crate::model::{Model, WindowScores};
use crate::reading::SensorId;
use crate::trainer::TrainJob;
use crate::window::{Push, Window, WindowParams, WindowReject};

use drift::Drift;
use learning::{Installed, Learning};
use reorder::{Held, Reorder};
use scoring::{Judged, Scoring};

pub use limits::Evicted;
pub use reorder::RESEND_MEMORY;
pub use snapshot::{DetectorSnapshot, SNAPSHOT_FORMAT, SensorSnapshot};

/// Why a reading was not taken.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DetectError {
    /// A new sensor's estimated memory does not fit `limits.max_memory_mb`.
    #[error("memory budget of {budget_mb} MB reached, reading of new sensor {sensor:?} dropped")]
    MemoryBudget {
        /// The new sensor.
        sensor: String,
        /// The configured budget.
        budget_mb: usize,
    },
    /// A new sensor arrived while `max_sensors` are already tracked.
    #[error("sensor limit of {limit} reached, reading of new sensor {sensor:?} dropped")]
    TooManySensors {
        /// The new sensor.
        sensor: String,
        /// The configured cap.
        limit: usize,
    },
    /// A reading of another channel set than the sensor's, after its first model
    /// ([`Pipeline::channel_set_open`]).
    #[error(
        "reading of sensor {sensor:?} has another set of channels ({got}) than the {channels} its model was trained on"
    )]
    ChannelSetChanged {
        /// The sensor.
        sensor: String,
        /// Channels in the sensor's set.
        channels: usize,
        /// Channels in the reading's set.
        got: usize,
    },
    /// The window refused the reading (order, duplicate, NaN, channel count).
    #[error("reading of sensor {sensor:?} rejected: {reason:?}")]
    Rejected {
        /// The sensor.
        sensor: String,
        /// Why.
        reason: WindowReject,
    },
}

/// Where a sensor stands, as the core sees it: the one readiness rule, which the daemon
/// publishes and `replay` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorState {
    /// No model yet, or fewer than `threshold.min_scores` scores: no alert can be raised.
    WarmingUp,
    /// Scoring, no alert raised.
    Normal,
    /// An alert is raised; its windows over the threshold are not learned.
    Alert,
    /// An alert was accepted as the new normal and the detector is re-baselining.
    Accepted,
}

impl SensorState {
    /// `warming_up`, `normal`, `alert` or `accepted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WarmingUp => "warming_up",
            Self::Normal => "normal",
            Self::Alert => "alert",
            Self::Accepted => "accepted",
        }
    }
}

/// What one scored window produced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    /// Both reconstruction errors.
    pub scores: WindowScores,
    /// The threshold in force for this window (from past scores only), once ready.
    pub threshold: Option<f64>,
    /// In [0, 1], from past scores only.
    pub anomaly_score: f64,
    /// The thresholded score is over the threshold.
    pub over: bool,
    /// The window's errors were learned (see the learning policy).
    pub learned: bool,
    /// Model generation that scored it.
    pub model_version: u64,
}

/// Everything one reading produced.
#[derive(Clone, Debug)]
pub struct Step {
    /// Present when a window was due and a model exists.
    pub scored: Option<Scored>,
    /// A raised or cleared alert.
    pub event: Option<AlertEvent>,
    /// A model should be trained and installed.
    pub train: Option<TrainJob>,
    /// The sensor's state after this reading.
    pub state: SensorState,
}

/// How an offered reading was taken by [`Detector::offer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// It waits for older readings, after every reading that arrived before it.
    Held,
    /// It arrived after a newer reading of its sensor and was slotted in before it:
    /// it will be scored in timestamp order.
    Reordered,
}

/// Which held readings [`Detector::release`] hands back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Release {
    /// Only while more than `window.reorder_rows` readings wait.
    Due,
    /// Also a reading that arrived at this time or earlier (the offer's `arrived`
    /// clock): the bound on how long a reading of a quiet sensor waits.
    ArrivedBy(f64),
    /// Every held reading (end of input, shutdown).
    All,
}

/// A reading released from the reorder buffer and processed.
#[derive(Clone, Debug)]
pub struct Released {
    /// The reading's timestamp.
    pub ts: f64,
    /// What processing it produced, as [`Detector::process`] would.
    pub step: Result<Step, DetectError>,
}

/// One sensor's state: the window and the stages a window goes through.
#[derive(Clone, Debug)]
pub struct Pipeline {
    sensor: SensorId,
    channel_names: Vec<String>,
    /// Readings waiting for older ones before they enter the window.
    reorder: Reorder,
    window: Window,
    /// The newest window, flattened, after per-window drift removal.
    raw: Vec<f64>,
    model: Option<Arc<Model>>,
    drift: Drift,
    scoring: Scoring,
    learning: Learning,
    alert: AlertState,
    /// Why the last alert was cleared, if one was.
    last_clear: Option<ClearReason>,
    /// Estimated bytes once full ([`memory::pipeline_bytes`]), charged to the budget.
    bytes: usize,
    /// When its last reading arrived (the `arrived` clock of [`Detector::offer`]).
    last_seen: f64,
}

impl Pipeline {
    fn new(sensor: SensorId, channel_names: Vec<String>, config: &DetectorConfig) -> Self {
        let params = WindowParams {
            channels: channel_names.len(),
            ..config.window.clone()
        };
        let width = params.size * params.channels;
        Self {
            reorder: Reorder::new(config.reorder_rows),
            window: Window::new(&params),
            raw: vec![0.0; width],
            model: None,
            drift: Drift::new(config, &channel_names),
            scoring: Scoring::new(config, sensor.as_str(), channel_names.len()),
            learning: Learning::new(config, width, params.stride * params.channels),
            alert: AlertState::default(),
            last_clear: None,
            bytes: memory::pipeline_bytes(config, channel_names.len()),
            last_seen: 0.0,
            sensor,
            channel_names,
        }
    }

    /// The current model's version, 0 before the first.
    pub fn model_version(&self) -> u64 {
        self.model.as_ref().map_or(0, |m| m.version)
    }

    /// The window is full (false while it fills at start and after a gap cleared it).
    pub fn window_ready(&self) -> bool {
        self.window.is_full()
    }

    /// How many gaps in the telemetry cleared the window.
    pub fn window_resets(&self) -> u64 {
        self.window.resets()
    }

    /// Scores in the threshold window.
    pub fn threshold_len(&self) -> usize {
        self.scoring.threshold_len()
    }

    /// Whether an alert is raised.
    pub fn alert_raised(&self) -> bool {
        self.alert.is_raised()
    }

    /// Channel names, in reading order.
    pub fn channel_names(&self) -> &[String] {
        &self.channel_names
    }

    /// The threshold has `threshold.min_scores` scores: alerts are possible.
    pub fn threshold_ready(&self, config: &DetectorConfig) -> bool {
        self.scoring.threshold_len() >= config.threshold.min_scores
    }

    /// Why the last alert was cleared (`None` before the first clear since start).
    pub fn last_clear(&self) -> Option<ClearReason> {
        self.last_clear
    }

    /// The sensor's state.
    pub fn state(&self, config: &DetectorConfig) -> SensorState {
        if self.learning.accepted() {
            SensorState::Accepted
        } else if self.alert.is_raised() {
            SensorState::Alert
        } else if self.model.is_none() || !self.threshold_ready(config) {
            SensorState::WarmingUp
        } else {
            SensorState::Normal
        }
    }

    /// Puts a reading into the reorder buffer after the window's checks; a resend of
    /// a reading already taken is a duplicate (see [`reorder`]).
    fn offer(&mut self, ts: f64, values: &[f64], arrived: f64) -> Result<Offered, WindowReject> {
        self.last_seen = arrived;
        match self.window.check(ts, values) {
            Ok(()) if self.reorder.seen(ts) => Err(WindowReject::Duplicate { ts }),
            Ok(()) => {
                let late = self.reorder.insert(Held {
                    ts,
                    values: values.to_vec(),
                    arrived,
                });
                Ok(if late { Offered::Reordered } else { Offered::Held })
            }
            Err(WindowReject::OutOfOrder { .. } | WindowReject::Duplicate { .. })
                if self.reorder.seen(ts) =>
            {
                Err(WindowReject::Duplicate { ts })
            }
            Err(reject) => Err(reject),
        }
    }

    /// The next held reading `release` lets go, processed.
    fn release(
        &mut self,
        release: Release,
        config: &DetectorConfig,
    ) -> Option<(f64, Result<Step, WindowReject>)> {
        let held = match release {
            Release::Due => self.reorder.pop_due(),
            Release::ArrivedBy(cutoff) => {
                (self.reorder.pop_due()).or_else(|| self.reorder.release_waited(cutoff))
            }
            Release::All => self.reorder.pop_any(),
        }?;
        self.reorder.record(held.ts);
        Some((held.ts, self.push(held.ts, &held.values, config)))
    }

    /// Readings waiting in the reorder buffer.
    pub fn held(&self) -> usize {
        self.reorder.len()
    }

    fn push(&mut self, ts: f64, values: &[f64], config: &DetectorConfig) -> Result<Step, WindowReject> {
        let push = self.window.push(ts, self.drift.apply(values));
        if let Push::Rejected(reason) = push {
            return Err(reason);
        }
        self.drift.commit(values);
        self.scoring.observe(values);
        let (scored, event, train) = match push {
            Push::Ready => self.on_window(ts, config),
            _ => (None, None, None),
        };
        Ok(Step {
            scored,
            event,
            train,
            state: self.state(config),
        })
    }

    fn on_window(
        &mut self,
        ts: f64,
        config: &DetectorConfig,
    ) -> (Option<Scored>, Option<AlertEvent>, Option<TrainJob>) {
        self.window.copy_into(&mut self.raw);
        self.drift.window(&mut self.raw);
        let mut scored = None;
        let mut event = None;
        if let Some(model) = self.model.clone() {
            let judged = self.scoring.judge(&model, &self.raw, config);
            let learned = self.learning.learns(judged.over);
            let censor = judged.over && !self.learning.accepted();
            let anomaly_score = self
                .scoring
                .finish(&judged, self.channel_names.len(), learned, censor);
            let s = Scored {
                scores: judged.scores,
                threshold: judged.threshold,
                anomaly_score,
                over: judged.over,
                learned,
                model_version: model.version,
            };
            if !self.learning.accepted() && judged.threshold.is_some() {
                event = self.advance_alert(&model, &judged, &s, ts, config);
            }
            scored = Some(s);
        }
        let learned = scored.as_ref().is_none_or(|s| s.learned);
        let score = scored.as_ref().map(|s| config.threshold.score.pick(&s.scores));
        self.learning
            .keep(&self.raw, learned, self.alert.is_raised(), score);
        (scored, event, self.maybe_job(config))
    }

    /// Feeds the window to the alert lifecycle; accepts a raised alert that is old
    /// enough. Returns the event this window causes.
    fn advance_alert(
        &mut self,
        model: &Model,
        j: &Judged,
        s: &Scored,
        ts: f64,
        config: &DetectorConfig,
    ) -> Option<AlertEvent> {
        // Read before the lifecycle moves: a clear forgets the raise it ends.
        let raise = (self.alert.raised_at(), self.alert.severity());
        let (kind, reason) = if self
            .learning
            .due_for_acceptance(self.alert.raised_at(), ts, config)
        {
            self.alert.clear(&config.alert);
            self.learning.accept();
            (AlertEventKind::Cleared, Some(ClearReason::Accepted))
        } else {
            match self.alert.update(&config.alert, s.over, ts)? {
                AlertEventKind::Cleared => {
                    self.learning.recovered();
                    (AlertEventKind::Cleared, Some(ClearReason::Recovered))
                }
                AlertEventKind::Raised => (AlertEventKind::Raised, None),
            }
        };
        // Checked by the caller: events come only once the threshold is ready.
        let threshold = j.threshold.unwrap_or(f64::INFINITY);
        let over_by = if threshold > 0.0 {
            j.value / threshold
        } else {
            f64::INFINITY
        };
        let (raised_at, severity) = match kind {
            AlertEventKind::Cleared => {
                self.last_clear = reason;
                (raise.0.unwrap_or(ts), raise.1.unwrap_or(Severity::Minor))
            }
            AlertEventKind::Raised => {
                let severity = config.alert.severity.classify(over_by);
                self.alert.set_severity(severity);
                (ts, severity)
            }
        };
        let (channels, outside_range) = self.breakdown(model);
        Some(AlertEvent {
            alert_id: alert_id(IdFamily::Raised, self.sensor.as_str(), raised_at),
            sensor: self.sensor.to_string(),
            event: kind,
            severity,
            reason,
            learning: kind == AlertEventKind::Cleared,
            ts,
            ts_rfc3339: crate::alert::rfc3339(ts),
            score: j.value,
            threshold,
            quantile: self.scoring.quantile(),
            over_by,
            pca_score: Some(j.scores.pca),
            anomaly_score: s.anomaly_score,
            outside_range,
            model_version: model.version,
            channels,
            window_start: self.window.start_ts(),
            window_end: self.window.end_ts(),
        })
    }

    /// The newest window's error by channel, and the channels outside their recent range.
    fn breakdown(&self, model: &Model) -> (Vec<ChannelContribution>, Vec<String>) {
        let channels = model
            .channel_errors(self.scoring.workspace())
            .into_iter()
            .zip(&self.channel_names)
            .map(|((error, share), name)| ChannelContribution {
                channel: name.clone(),
                error,
                share,
            })
            .collect();
        let outside_range = self
            .scoring
            .outside_range()
            .iter()
            .zip(&self.channel_names)
            .filter(|(left, _)| **left)
            .map(|(_, name)| name.clone())
            .collect();
        (channels, outside_range)
    }

    fn maybe_job(&mut self, config: &DetectorConfig) -> Option<TrainJob> {
        if !self.learning.job_due(self.model.is_some(), config) {
            return None;
        }
        Some(TrainJob {
            sensor: self.sensor.clone(),
            version: self.model_version() + 1,
            windows: self.learning.buffer().clone(),
            fresh: self.learning.fresh_in_job(),
            channels: self.channel_names.len(),
            warm: self.model.clone(),
        })
    }

    /// Installs a trained model (`None`: training failed) and rebuilds what depends on
    /// the model in force.
    fn install(&mut self, model: Option<Model>, config: &DetectorConfig) {
        // A job of the set before a warm-up restart ([`Detector::regroup`]): not this
        // pipeline's, and a model of another width cannot score its windows.
        if model
            .as_ref()
            .is_some_and(|m| m.channels != self.channel_names.len())
        {
            return;
        }
        let kind = self.learning.installed(model.is_some());
        let Some(m) = model else {
            return;
        };
        let m = Arc::new(m);
        let rebaseline = (kind == Installed::Rebaseline).then(|| self.learning.alert_windows());
        self.scoring
            .rebuild(&m, self.learning.buffer(), config, rebaseline);
        self.model = Some(m);
    }
}

/// All sensors' pipelines.
#[derive(Clone, Debug)]
pub struct Detector {
    config: DetectorConfig,
    max_sensors: usize,
    pipelines: HashMap<SensorId, Pipeline>,
    /// Idle sensors with a model, evicted to their persisted state (see `limits`).
    parked: HashMap<SensorId, SensorSnapshot>,
    /// `limits.max_memory_mb` in bytes; `None`: no budget.
    budget: Option<usize>,
    /// Estimated bytes of every pipeline and parked sensor.
    used: usize,
}

impl Detector {
    /// An empty detector tracking at most `max_sensors` sensors.
    pub fn new(config: DetectorConfig, max_sensors: usize) -> Self {
        Self {
            config,
            max_sensors,
            pipelines: HashMap::new(),
            parked: HashMap::new(),
            budget: None,
            used: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Feeds one reading that is in timestamp order (it bypasses the reorder buffer;
    /// a late one is rejected as out of order). `channel_names` is called only for a
    /// sensor seen for the first time; its length fixes the sensor's channel count.
    ///
    /// # Errors
    ///
    /// [`DetectError`] when the reading is refused; the sensor's state is unchanged.
    pub fn process(
        &mut self,
        sensor: &SensorId,
        ts: f64,
        values: &[f64],
        channel_names: impl FnOnce() -> Vec<String>,
    ) -> Result<Step, DetectError> {
        self.with_pipeline(sensor, channel_names, |p, config| p.push(ts, values, config))
    }

    /// Offers one reading of a live stream to its sensor's reorder buffer; nothing is
    /// scored until [`Self::release`] lets it go. `arrived` is the caller's clock
    /// (seconds), compared only with [`Release::ArrivedBy`]. `channel_names` as in
    /// [`Self::process`].
    ///
    /// # Errors
    ///
    /// [`DetectError`] when the reading is refused (a resend is
    /// [`WindowReject::Duplicate`], a reading too late for the tolerance
    /// [`WindowReject::OutOfOrder`]); the sensor's state is unchanged.
    pub fn offer(
        &mut self,
        sensor: &SensorId,
        ts: f64,
        values: &[f64],
        arrived: f64,
        channel_names: impl FnOnce() -> Vec<String>,
    ) -> Result<Offered, DetectError> {
        self.with_pipeline(sensor, channel_names, |p, _| p.offer(ts, values, arrived))
    }

    /// Lets the sensor's oldest held reading go if `release` allows, and processes it
    /// as [`Self::process`] would. Call until it returns `None`.
    pub fn release(&mut self, sensor: &SensorId, release: Release) -> Option<Released> {
        let pipeline = self.pipelines.get_mut(sensor)?;
        let (ts, step) = pipeline.release(release, &self.config)?;
        Some(Released {
            ts,
            step: step.map_err(|reason| rejected(sensor, reason)),
        })
    }

    /// Sensors with readings in their reorder buffer.
    pub fn holding(&self) -> Vec<SensorId> {
        (self.pipelines.iter())
            .filter(|(_, p)| p.held() > 0)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Runs `f` on the sensor's pipeline, created (or brought back from its parked
    /// state) for a sensor not tracked, within `max_sensors` and the memory budget.
    fn with_pipeline<T>(
        &mut self,
        sensor: &SensorId,
        channel_names: impl FnOnce() -> Vec<String>,
        f: impl FnOnce(&mut Pipeline, &DetectorConfig) -> Result<T, WindowReject>,
    ) -> Result<T, DetectError> {
        if !self.pipelines.contains_key(sensor) {
            self.admit(sensor, channel_names)?;
        }
        // Inserted just above when missing.
        let pipeline = self.pipelines.get_mut(sensor).expect("pipeline exists");
        f(pipeline, &self.config).map_err(|reason| rejected(sensor, reason))
    }

    /// Installs a trained model (or records that training failed, with `None`), so the
    /// sensor may ask again later.
    pub fn install(&mut self, sensor: &SensorId, model: Option<Model>) {
        if let Some(p) = self.pipelines.get_mut(sensor) {
            p.install(model, &self.config);
        }
    }

    /// One sensor's pipeline.
    pub fn pipeline(&self, sensor: &SensorId) -> Option<&Pipeline> {
        self.pipelines.get(sensor)
    }

    /// Ids of the sensors tracked, in no particular order.
    pub fn sensor_ids(&self) -> impl Iterator<Item = &SensorId> {
        self.pipelines.keys()
    }

    /// Number of sensors tracked.
    pub fn sensors(&self) -> usize {
        self.pipelines.len()
    }

    /// Feeds one reading and runs any training job at once, on this thread: the
    /// deterministic mode used by `replay` and `eval`.
    ///
    /// # Errors
    ///
    /// As [`Self::process`].
    pub fn process_inline(
        &mut self,
        sensor: &SensorId,
        ts: f64,
        values: &[f64],
        channel_names: impl FnOnce() -> Vec<String>,
    ) -> Result<Step, DetectError> {
        let mut step = self.process(sensor, ts, values, channel_names)?;
        if let Some(job) = step.train.take() {
            let model = crate::trainer::train(&job, &self.config.model);
            if let Err(e) = &model {
                tracing::warn!(sensor = %sensor.escaped(), error = %e, "Training failed; keeping the old model.");
            }
            self.install(sensor, model.ok());
        }
        Ok(step)
    }
}

fn rejected(sensor: &SensorId, reason: WindowReject) -> DetectError {
    DetectError::Rejected {
        sensor: sensor.to_string(),
        reason,
    }
}
