//! Snapshot and reload for the detector: what survives a restart (models, threshold
//! histories, score references, alert states) and what a SIGHUP may change.
//!
//! The window contents and the training buffer are not kept: after a restart each sensor
//! refills one window (`window.size` readings) and scores at once with its restored
//! model; retraining resumes once the buffer has `training.min_windows` new windows.
//!
//! Format 3 keeps the threshold as its block summaries and the score references as
//! their rolling-maximum deques (a few KB per sensor); format 4 adds the model's skip
//! path, format 5 the likelihood component's statistics, format 6 each channel's run of
//! unchanged readings (the stuck check), format 7 the alert's episode level and any hold
//! after it subsided. Formats 2 (every score of both histories, oldest first), 3, 4, 5
//! and 6 still load: see [`legacy`].

mod legacy;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::stuck::Stuck;
use super::{Detector, Pipeline};
use crate::alert::{AlertParams, AlertState, Subside};
use crate::config::{DetectorConfig, LearningConfig, ScoreStrategy, ThresholdConfig};
use crate::likelihood::DecayingStats;
use crate::model::Model;
use crate::model::autoencoder::Autoencoder;
use crate::reading::SensorId;
use crate::threshold::{RollingMax, RollingQuantile};

/// Format of [`DetectorSnapshot`]; bump when its shape changes.
pub const SNAPSHOT_FORMAT: u32 = 7;

/// Everything the detector persists. Decodes format 2 too, converted (bincode only:
/// the store's codec).
#[derive(Clone, Debug, Serialize)]
pub struct DetectorSnapshot {
    /// [`SNAPSHOT_FORMAT`] at writing time.
    pub format: u32,
    /// One entry per sensor.
    pub sensors: Vec<SensorSnapshot>,
}

/// One sensor's persisted state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SensorSnapshot {
    /// Sensor id.
    pub sensor: String,
    /// Channel names, in reading order.
    pub channels: Vec<String>,
    /// The current model, if any.
    pub model: Option<Model>,
    /// The threshold window.
    pub threshold: RollingQuantile,
    /// Threshold scores of a format 2 snapshot, oldest first: pushed into a window of
    /// the configured shape on restore (never written).
    #[serde(skip)]
    pub legacy_threshold: Option<Vec<f64>>,
    /// Anomaly-score reference (`None`: the strategy has none).
    pub scorer: Option<RollingMax>,
    /// Reference of the `score.point` component.
    pub point_scorer: Option<RollingMax>,
    /// Statistics of the `score.likelihood_tail` component (`None`: off, or a snapshot
    /// before format 5).
    pub likelihood: Option<DecayingStats>,
    /// Per-channel EMA of past readings for `window.detrend = "ema"`; empty = not started.
    pub ema: Vec<f64>,
    /// Alert lifecycle state.
    pub alert: AlertState,
    /// Each channel's run of unchanged readings (empty: a snapshot before format 6; its
    /// channels are judged again once their value has changed).
    pub stuck: Stuck,
    /// The alert's episode level and any hold after a subsided clear (empty: a snapshot
    /// before format 7).
    pub subside: Subside,
}

impl Pipeline {
    pub(super) fn snapshot(&self) -> SensorSnapshot {
        let (threshold, scorer, point_scorer) = self.scoring.snapshot();
        SensorSnapshot {
            sensor: self.sensor.to_string(),
            channels: self.channel_names.clone(),
            model: self.model.as_deref().cloned(),
            threshold,
            legacy_threshold: None,
            scorer,
            point_scorer,
            likelihood: self.scoring.likelihood_stats(),
            ema: self.drift.ema(),
            alert: self.alert.clone(),
            stuck: self.stuck.clone(),
            subside: self.alert.subside().clone(),
        }
    }
}

impl Pipeline {
    /// A pipeline from its persisted state; true when the snapshot had a model that
    /// does not fit the current window shape, `[model]` architecture or skip path (the
    /// sensor warms up a new one).
    pub(super) fn from_snapshot(s: SensorSnapshot, config: &DetectorConfig) -> (Self, bool) {
        let id = SensorId::new(&s.sensor);
        let mut p = Pipeline::new(id, s.channels, config);
        let channels = p.channel_names.len();
        let width = config.window.size * channels;
        let had_model = s.model.is_some();
        // The architecture `[model]` asks for at this width (fresh weights, compared by
        // shape only); parameters that do not check cannot have built the snapshot's.
        let wanted = config.model.ae_params(width).ok().map(|p| Autoencoder::new(&p));
        p.model = s
            .model
            .filter(|m| m.channels == channels)
            .filter(|m| m.residual == config.model.skip.applies(channels))
            .filter(|m| wanted.as_ref().is_some_and(|w| w.same_architecture(&m.ae)))
            .map(Arc::new);
        match s.legacy_threshold {
            Some(values) => {
                let mut t = RollingQuantile::new(config.threshold.window, 1.0);
                let keep = values.len().saturating_sub(config.threshold.window);
                values[keep..].iter().for_each(|&v| t.push(v));
                p.scoring.restore(t, s.scorer.as_ref(), s.point_scorer.as_ref());
            }
            None => (p.scoring).restore(s.threshold, s.scorer.as_ref(), s.point_scorer.as_ref()),
        }
        if let Some(stats) = &s.likelihood {
            p.scoring.restore_likelihood(stats);
        }
        p.drift.restore(s.ema);
        p.alert = s.alert;
        p.alert.restore_subside(s.subside);
        p.stuck = s.stuck;
        let misfit = had_model && p.model.is_none();
        (p, misfit)
    }
}

impl Detector {
    /// Captures every sensor's persistent state, parked sensors included.
    pub fn snapshot(&self) -> DetectorSnapshot {
        let mut sensors: Vec<_> = (self.pipelines.values().map(Pipeline::snapshot))
            .chain(self.parked.values().cloned())
            .collect();
        sensors.sort_by(|a, b| a.sensor.cmp(&b.sensor));
        DetectorSnapshot {
            format: SNAPSHOT_FORMAT,
            sensors,
        }
    }

    /// Restores sensors from a snapshot; returns how many were restored. A sensor whose
    /// model does not fit the current window settings keeps its history but warms up a
    /// new model.
    pub fn restore(&mut self, snapshot: DetectorSnapshot) -> usize {
        if snapshot.format != SNAPSHOT_FORMAT {
            tracing::warn!(
                format = snapshot.format,
                "Snapshot format not understood; starting fresh."
            );
            return 0;
        }
        let mut restored = 0;
        // Models of another `[window]` shape (size, channels) or `[model]` architecture
        // (hidden, latent, activations) cannot score as configured: their
        // sensors keep their history and warm up a new model, and the log says so.
        let mut misfits = 0_usize;
        for s in snapshot.sensors {
            if self.pipelines.len() >= self.max_sensors || s.channels.is_empty() {
                continue;
            }
            if !self.fits(super::memory::pipeline_bytes(&self.config, s.channels.len())) {
                // Past the budget (lowered since, or sensors parked when it was saved):
                // kept as its persisted state rather than lost from the next snapshot.
                self.park(s);
                continue;
            }
            let (p, misfit) = Pipeline::from_snapshot(s, &self.config);
            misfits += usize::from(misfit);
            self.used += p.bytes;
            self.pipelines.insert(p.sensor.clone(), p);
            restored += 1;
        }
        if misfits > 0 {
            tracing::warn!(
                sensors = misfits,
                window_size = self.config.window.size,
                "Snapshot models do not fit the current window shape or [model] architecture; those sensors warm up new models."
            );
        }
        restored
    }

    /// Applies new threshold, alert, score and learning settings (SIGHUP) without
    /// touching models.
    pub fn reload(
        &mut self,
        threshold: ThresholdConfig,
        alert: AlertParams,
        score: ScoreStrategy,
        learning: LearningConfig,
    ) {
        self.config.threshold = threshold;
        self.config.alert = alert;
        self.config.score = score;
        self.config.learning = learning;
        for p in self.pipelines.values_mut() {
            let channels = p.channel_names.len();
            p.scoring.reconfigure(&self.config, p.sensor.as_str(), channels);
        }
    }
}
