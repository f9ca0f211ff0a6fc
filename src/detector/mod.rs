//! The per-sensor pipeline, sans-IO: reading → drift removal → window → scoring (both
//! models, threshold, anomaly score) → learning policy → alert lifecycle. The daemon,
//! `replay` and `eval` all drive this code; nothing about scoring exists anywhere else.
//!
//! Each stage is a type that owns its state and makes its decisions: `drift`
//! (`[window] detrend`), `scoring` (`[threshold]`, `[score]`; `relearn` says when a new
//! model's threshold is learned afresh), [`stuck`] (a channel
//! frozen at one value, `[alert] stuck_rows`: over the threshold whatever the error),
//! `learning` (what is learned, when a model is due, acceptance; `[learning]`,
//! `[training]`) and the alert lifecycle in [`crate::alert`]. The sensor's [`SensorState`] is an output of the core.
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
mod pipeline;
mod relearn;
mod reorder;
#[cfg(test)]
mod reorder_tests;
mod scoring;
mod snapshot;
pub mod stuck;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::alert::AlertEvent;
use crate::config::{DetectorConfig, ModelConfig, ScoreSource};
use crate::model::{Model, WindowScores};
use crate::reading::SensorId;
use crate::trainer::TrainJob;
use crate::window::WindowReject;

pub use pipeline::Pipeline;
pub use scoring::Rescored;

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
    /// A channel is stuck at one value ([`stuck`]): the window counts as over the
    /// threshold for learning and for the alert, whatever its score.
    pub stuck: bool,
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
    /// A raised or cleared alert (boxed, as the training job: both are rare, and a
    /// step moves by value with every reading).
    pub event: Option<Box<AlertEvent>>,
    /// A model should be trained and installed.
    pub train: Option<Box<TrainJob>>,
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
        // One hash of the id for a tracked sensor (every reading but a sensor's first).
        if let Some(pipeline) = self.pipelines.get_mut(sensor) {
            return f(pipeline, &self.config).map_err(|reason| rejected(sensor, reason));
        }
        self.admit(sensor, channel_names)?;
        // Inserted just above.
        let pipeline = self.pipelines.get_mut(sensor).expect("pipeline exists");
        f(pipeline, &self.config).map_err(|reason| rejected(sensor, reason))
    }

    /// Installs a trained model (or records that training failed, with `None`), so the
    /// sensor may ask again later.
    pub fn install(&mut self, sensor: &SensorId, model: Option<Model>) {
        self.install_rescored(sensor, model, None);
    }

    /// [`Self::install`] with the new model's scores of its job's windows, computed
    /// where the job ran ([`Rescored::new`]), so the score history is not rebuilt
    /// from scratch here.
    pub fn install_rescored(&mut self, sensor: &SensorId, model: Option<Model>, rescored: Option<&Rescored>) {
        if let Some(p) = self.pipelines.get_mut(sensor) {
            p.install(model, rescored, &self.config);
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
            let (model, rescored) = run_job(&job, &self.config.model, self.config.threshold.score).unzip();
            self.install_rescored(sensor, model, rescored.as_ref());
        }
        Ok(step)
    }
}

/// Runs a training job as every driver does (inline in replay and eval, on a blocking
/// thread in the daemon): trains, logs a failure (the sensor keeps its model and asks
/// again later), and scores the job's windows with the new model where it trained
/// ([`Rescored`]), so both paths rebuild alike and installing it does not rescore.
pub fn run_job(job: &TrainJob, model: &ModelConfig, source: ScoreSource) -> Option<(Model, Rescored)> {
    match crate::trainer::train(job, model) {
        Ok(m) => {
            let rescored = Rescored::new(&job.windows, &m, source);
            Some((m, rescored))
        }
        Err(error) => {
            tracing::warn!(sensor = %job.sensor.escaped(), %error, "Training failed; keeping the old model.");
            None
        }
    }
}

fn rejected(sensor: &SensorId, reason: WindowReject) -> DetectError {
    DetectError::Rejected {
        sensor: sensor.to_string(),
        reason,
    }
}
