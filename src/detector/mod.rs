//! The per-sensor pipeline, sans-IO: reading → window → both scores → threshold →
//! anomaly score → alert state. The daemon, `replay` and `eval` all drive this code;
//! nothing about scoring exists anywhere else.
//!
//! The detector never trains by itself: when a sensor needs a model it returns a
//! [`TrainJob`] in its [`Step`], and whoever drives it installs the result with
//! [`Detector::install`] (inline in replay, from a blocking thread in the daemon).

mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use crate::alert::{AlertEvent, AlertState, AlertTrigger, ChannelContribution};
use crate::config::{Combine, DetectorConfig, Detrend, PointScore, ScoreConfig, TrainPolicy};
use crate::model::{Model, WindowScores, Workspace};
use crate::range::RecentRange;
use crate::reading::SensorId;
use crate::score::AnomalyScorer;
use crate::threshold::RollingQuantile;
use crate::trainer::{TrainJob, TrainingBuffer};
use crate::window::{Push, Window, WindowParams, WindowReject};

pub use snapshot::{DetectorSnapshot, SNAPSHOT_FORMAT, SensorSnapshot};

/// Why a reading was not taken.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DetectError {
    /// A new sensor arrived while `max_sensors` are already tracked.
    #[error("sensor limit of {limit} reached, reading of new sensor {sensor} dropped")]
    TooManySensors {
        /// The new sensor.
        sensor: String,
        /// The configured cap.
        limit: usize,
    },
    /// The window refused the reading (order, duplicate, NaN, channel count).
    #[error("reading of sensor {sensor} rejected: {reason:?}")]
    Rejected {
        /// The sensor.
        sensor: String,
        /// Why.
        reason: WindowReject,
    },
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
    /// Model generation that scored it.
    pub model_version: u64,
}

/// Everything one reading produced.
#[derive(Clone, Debug, Default)]
pub struct Step {
    /// Present when a window was due and a model exists.
    pub scored: Option<Scored>,
    /// A raised or cleared alert.
    pub event: Option<AlertEvent>,
    /// A model should be trained and installed.
    pub train: Option<TrainJob>,
}

/// One sensor's state.
#[derive(Clone, Debug)]
pub struct Pipeline {
    sensor: SensorId,
    channel_names: Vec<String>,
    window: Window,
    raw: Vec<f64>,
    workspace: Workspace,
    model: Option<Arc<Model>>,
    buffer: TrainingBuffer,
    threshold: RollingQuantile,
    scorer: AnomalyScorer,
    /// Anomaly scorer of the newest reading's error (`score.point`).
    point_scorer: AnomalyScorer,
    /// Recent per-channel range of raw readings (`score.range_margin`); it remembers
    /// which channels the newest reading took outside it.
    range: Option<RecentRange>,
    /// Per-channel EMA of past readings (`window.detrend = "ema"`).
    ema: Vec<f64>,
    ema_started: bool,
    /// Per channel: whether the detrend applies to it (`window.detrend_channels`).
    detrend_mask: Vec<bool>,
    /// The reading after drift removal, handed to the window.
    detrended: Vec<f64>,
    alert: AlertState,
    /// A job is out and its model not yet installed.
    training: bool,
    windows_since_job: usize,
}

impl Pipeline {
    fn new(sensor: SensorId, channel_names: Vec<String>, config: &DetectorConfig) -> Self {
        let params = WindowParams {
            channels: channel_names.len(),
            ..config.window.clone()
        };
        let width = params.size * params.channels;
        let t = config.threshold.for_sensor(sensor.as_str());
        Self {
            window: Window::new(&params),
            raw: vec![0.0; width],
            workspace: Workspace::default(),
            model: None,
            buffer: TrainingBuffer::new(config.training.buffer, width, params.stride * params.channels),
            threshold: RollingQuantile::new(config.threshold.window, t.quantile.get()),
            scorer: AnomalyScorer::new(&config.score),
            point_scorer: AnomalyScorer::new(&config.score),
            range: new_range(&config.score, channel_names.len()),
            ema: vec![0.0; params.channels],
            ema_started: false,
            detrend_mask: channel_names
                .iter()
                .map(|n| config.detrend_channels.is_empty() || config.detrend_channels.contains(n))
                .collect(),
            detrended: vec![0.0; params.channels],
            alert: AlertState::default(),
            training: false,
            windows_since_job: 0,
            sensor,
            channel_names,
        }
    }

    /// The current model's version, 0 before the first.
    pub fn model_version(&self) -> u64 {
        self.model.as_ref().map_or(0, |m| m.version)
    }

    /// Scores in the threshold window.
    pub fn threshold_len(&self) -> usize {
        self.threshold.len()
    }

    /// Whether an alert is raised.
    pub fn alert_raised(&self) -> bool {
        self.alert.is_raised()
    }

    /// Channel names, in reading order.
    pub fn channel_names(&self) -> &[String] {
        &self.channel_names
    }

    fn push(&mut self, ts: f64, values: &[f64], config: &DetectorConfig) -> Result<Step, WindowReject> {
        let push = match config.detrend {
            Detrend::Ema { rows } if values.len() == self.detrended.len() => {
                // Past readings only: the EMA is updated after this reading is taken.
                for (((d, &v), &m), &on) in self
                    .detrended
                    .iter_mut()
                    .zip(values)
                    .zip(&self.ema)
                    .zip(&self.detrend_mask)
                {
                    *d = match (on, self.ema_started) {
                        (false, _) => v,
                        (true, true) => v - m,
                        (true, false) => 0.0,
                    };
                }
                let push = self.window.push(ts, &self.detrended);
                if !matches!(push, Push::Rejected(_)) {
                    let alpha = 2.0 / (rows as f64 + 1.0);
                    for (m, &v) in self.ema.iter_mut().zip(values) {
                        *m = if self.ema_started {
                            *m + alpha * (v - *m)
                        } else {
                            v
                        };
                    }
                    self.ema_started = true;
                }
                push
            }
            _ => self.window.push(ts, values),
        };
        if !matches!(push, Push::Rejected(_)) {
            if let Some(range) = self.range.as_mut() {
                range.update(values);
            }
        }
        match push {
            Push::Rejected(reason) => Err(reason),
            Push::Filling => Ok(Step::default()),
            Push::Ready => Ok(self.on_window(ts, config)),
        }
    }

    fn on_window(&mut self, ts: f64, config: &DetectorConfig) -> Step {
        self.window.copy_into(&mut self.raw);
        if config.detrend == Detrend::WindowMean {
            demean(&mut self.raw, &self.detrend_mask);
        }
        let mut step = Step::default();
        let mut flagged = false;
        if let Some(model) = self.model.clone() {
            let scored = self.score(&model, config);
            flagged = scored.over;
            step.event = self.advance_alert(&model, &scored, ts, config);
            step.scored = Some(scored);
        }
        if !flagged || config.training.policy == TrainPolicy::LearnAll {
            self.buffer.push(&self.raw);
        }
        self.windows_since_job += 1;
        step.train = self.maybe_job(config);
        step
    }

    fn score(&mut self, model: &Model, config: &DetectorConfig) -> Scored {
        let scores = model.score(&self.raw, &mut self.workspace, config.score.tail_rows);
        let value = config.threshold.score.pick(&scores);
        let floor = config.threshold.for_sensor(self.sensor.as_str()).floor;
        // The threshold is read before this score joins the window: past data only.
        let threshold = (self.threshold.len() >= config.threshold.min_scores)
            .then(|| self.threshold.quantile().map(|q| q.max(floor)))
            .flatten();
        let over = threshold.is_some_and(|t| value > t);
        if !over || config.threshold.learn_flagged {
            self.threshold.push(value);
        }
        let learn = !over || config.score.learn_flagged;
        let window_score = self.scorer.update_learning(value, learn);
        let combined = match self.point_error(config) {
            None => window_score,
            Some(e) => {
                let point_score = self.point_scorer.update_learning(e, learn);
                match config.score.combine {
                    Combine::Max => window_score.max(point_score),
                    Combine::Mean => 0.5 * (window_score + point_score),
                }
            }
        };
        // A reading beyond everything of the last `range_rows` readings is as anomalous
        // as a score can say, whatever the reconstruction.
        let outside = self.range.as_ref().is_some_and(|r| r.outside().contains(&true));
        let anomaly_score = if outside { 1.0 } else { combined };
        Scored {
            scores,
            threshold,
            anomaly_score,
            over,
            model_version: model.version,
        }
    }

    /// The newest reading's error for the point component, from the last score.
    fn point_error(&self, config: &DetectorConfig) -> Option<f64> {
        let channels = self.channel_names.len();
        match config.score.point {
            PointScore::Off => None,
            PointScore::Ae => Some(self.workspace.newest_ae_error(channels)),
            PointScore::Z => Some(self.workspace.newest_z_error(channels)),
        }
    }

    fn advance_alert(
        &mut self,
        model: &Model,
        s: &Scored,
        ts: f64,
        config: &DetectorConfig,
    ) -> Option<AlertEvent> {
        let threshold = s.threshold?;
        let over = match config.alert.trigger {
            AlertTrigger::Threshold => s.over,
            AlertTrigger::AnomalyScore(min) => s.anomaly_score >= min,
        };
        let kind = self.alert.update(&config.alert, over)?;
        let score = config.threshold.score.pick(&s.scores);
        let channels = model
            .channel_errors(&self.workspace)
            .into_iter()
            .zip(&self.channel_names)
            .map(|((error, share), name)| ChannelContribution {
                channel: name.clone(),
                error,
                share,
            })
            .collect();
        Some(AlertEvent {
            sensor: self.sensor.to_string(),
            event: kind,
            ts,
            ts_rfc3339: crate::alert::rfc3339(ts),
            score,
            threshold,
            quantile: config.threshold.for_sensor(self.sensor.as_str()).quantile.get(),
            over_by: if threshold > 0.0 {
                score / threshold
            } else {
                f64::INFINITY
            },
            pca_score: Some(s.scores.pca),
            anomaly_score: s.anomaly_score,
            outside_range: self.range.as_ref().map_or_else(Vec::new, |range| {
                range
                    .outside()
                    .iter()
                    .zip(&self.channel_names)
                    .filter(|(left, _)| **left)
                    .map(|(_, name)| name.clone())
                    .collect()
            }),
            model_version: model.version,
            channels,
            window_start: self.window.start_ts(),
            window_end: self.window.end_ts(),
        })
    }

    /// After a new model: rebuilds the anomaly scorer's reference and/or the threshold
    /// window from the new model's scores of the newest training windows, as configured.
    fn reseed(&mut self, config: &DetectorConfig) {
        let (score, threshold) = (config.score.reseed, config.threshold.reseed);
        let Some(model) = self.model.clone() else {
            return;
        };
        if !score && !threshold {
            return;
        }
        if score {
            self.scorer.clear_history();
            self.point_scorer.clear_history();
        }
        if threshold {
            let q = config.threshold.for_sensor(self.sensor.as_str()).quantile.get();
            self.threshold = RollingQuantile::new(config.threshold.window, q);
        }
        let n = match (score, threshold) {
            (true, true) => config.score.history.max(config.threshold.window),
            (true, false) => config.score.history,
            _ => config.threshold.window,
        };
        let skip_score = self.buffer.len().min(n).saturating_sub(config.score.history);
        let skip_threshold = self.buffer.len().min(n).saturating_sub(config.threshold.window);
        for (i, w) in self.buffer.newest(n).enumerate() {
            let s = model.score(w, &mut self.workspace, config.score.tail_rows);
            let value = config.threshold.score.pick(&s);
            if score && i >= skip_score {
                self.scorer.learn(value);
                if let Some(e) = self.point_error(config) {
                    self.point_scorer.learn(e);
                }
            }
            if threshold && i >= skip_threshold {
                self.threshold.push(value);
            }
        }
    }

    fn maybe_job(&mut self, config: &DetectorConfig) -> Option<TrainJob> {
        if self.training {
            return None;
        }
        let due = match &self.model {
            None => self.buffer.len() >= config.training.min_windows,
            Some(_) => {
                config
                    .training
                    .retrain_every
                    .is_some_and(|n| self.windows_since_job >= n)
                    && self.buffer.len() >= config.training.min_windows
            }
        };
        if !due {
            return None;
        }
        self.training = true;
        self.windows_since_job = 0;
        Some(TrainJob {
            sensor: self.sensor.clone(),
            version: self.model_version() + 1,
            windows: self.buffer.clone(),
            channels: self.channel_names.len(),
            warm: self.model.clone(),
        })
    }
}

/// The recent-range tracker `score` asks for, if any.
pub(crate) fn new_range(score: &ScoreConfig, channels: usize) -> Option<RecentRange> {
    score
        .range_margin
        .map(|margin| RecentRange::new(channels, score.range_rows, margin))
}

/// Subtracts from each selected channel of a flattened time-major window its mean over
/// the window, in place.
fn demean(window: &mut [f64], mask: &[bool]) {
    let channels = mask.len().max(1);
    let rows = (window.len() / channels).max(1) as f64;
    for (c, _) in mask.iter().enumerate().filter(|(_, on)| **on) {
        let mean = window.iter().skip(c).step_by(channels).sum::<f64>() / rows;
        for v in window.iter_mut().skip(c).step_by(channels) {
            *v -= mean;
        }
    }
}

/// All sensors' pipelines.
#[derive(Clone, Debug)]
pub struct Detector {
    config: DetectorConfig,
    max_sensors: usize,
    pipelines: HashMap<SensorId, Pipeline>,
}

impl Detector {
    /// An empty detector tracking at most `max_sensors` sensors.
    pub fn new(config: DetectorConfig, max_sensors: usize) -> Self {
        Self {
            config,
            max_sensors,
            pipelines: HashMap::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Feeds one reading. `channel_names` is called only for a sensor seen for the
    /// first time; its length fixes the sensor's channel count.
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
        if !self.pipelines.contains_key(sensor) {
            if self.pipelines.len() >= self.max_sensors {
                return Err(DetectError::TooManySensors {
                    sensor: sensor.to_string(),
                    limit: self.max_sensors,
                });
            }
            let pipeline = Pipeline::new(sensor.clone(), channel_names(), &self.config);
            self.pipelines.insert(sensor.clone(), pipeline);
        }
        // Inserted just above when missing.
        let pipeline = self.pipelines.get_mut(sensor).expect("pipeline exists");
        pipeline
            .push(ts, values, &self.config)
            .map_err(|reason| DetectError::Rejected {
                sensor: sensor.to_string(),
                reason,
            })
    }

    /// Installs a trained model (or records that training failed, with `None`), so the
    /// sensor may ask again later.
    pub fn install(&mut self, sensor: &SensorId, model: Option<Model>) {
        if let Some(p) = self.pipelines.get_mut(sensor) {
            p.training = false;
            if let Some(m) = model {
                p.model = Some(Arc::new(m));
                p.reseed(&self.config);
            }
        }
    }

    /// One sensor's pipeline.
    pub fn pipeline(&self, sensor: &SensorId) -> Option<&Pipeline> {
        self.pipelines.get(sensor)
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
                tracing::warn!(sensor = %sensor, error = %e, "Training failed; keeping the old model.");
            }
            self.install(sensor, model.ok());
        }
        Ok(step)
    }
}
