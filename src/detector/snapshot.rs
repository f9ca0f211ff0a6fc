//! Snapshot and reload for the detector: what survives a restart (models, threshold
//! histories, score references, alert states) and what a SIGHUP may change.
//!
//! The window contents and the training buffer are not kept: after a restart each sensor
//! refills one window (`window.size` readings) and scores at once with its restored
//! model; retraining resumes once the buffer has `training.min_windows` new windows.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Detector, Pipeline};
use crate::alert::{AlertParams, AlertState};
use crate::config::{ScoreConfig, ThresholdConfig};
use crate::model::Model;
use crate::reading::SensorId;
use crate::score::AnomalyScorer;
use crate::threshold::RollingQuantile;

/// Format of [`DetectorSnapshot`]; bump when its shape changes.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Everything the detector persists.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// Threshold history, oldest first.
    pub threshold: Vec<f64>,
    /// Anomaly-score reference history, oldest first.
    pub scorer: Vec<f64>,
    /// Reference history of the `score.point` component, oldest first (absent in older
    /// snapshots).
    #[serde(default)]
    pub point_scorer: Vec<f64>,
    /// Per-channel EMA of past readings for `window.detrend = "ema"`; empty = not started.
    #[serde(default)]
    pub ema: Vec<f64>,
    /// Alert lifecycle state.
    pub alert: AlertState,
}

impl Pipeline {
    fn snapshot(&self) -> SensorSnapshot {
        SensorSnapshot {
            sensor: self.sensor.to_string(),
            channels: self.channel_names.clone(),
            model: self.model.as_deref().cloned(),
            threshold: self.threshold.values_in_order().collect(),
            scorer: self.scorer.history(),
            point_scorer: self.point_scorer.history(),
            ema: if self.ema_started {
                self.ema.clone()
            } else {
                Vec::new()
            },
            alert: self.alert.clone(),
        }
    }

    fn rebuild_threshold(&mut self, window: usize, q: f64) {
        let mut t = RollingQuantile::new(window, q);
        for v in self.threshold.values_in_order() {
            t.push(v);
        }
        self.threshold = t;
    }
}

impl Detector {
    /// Captures every sensor's persistent state.
    pub fn snapshot(&self) -> DetectorSnapshot {
        let mut sensors: Vec<_> = self.pipelines.values().map(Pipeline::snapshot).collect();
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
        for s in snapshot.sensors {
            if self.pipelines.len() >= self.max_sensors || s.channels.is_empty() {
                continue;
            }
            let id = SensorId::new(&s.sensor);
            let mut p = Pipeline::new(id.clone(), s.channels, &self.config);
            let channels = p.channel_names.len();
            let width = self.config.window.size * channels;
            p.model = s
                .model
                .filter(|m| m.ae.n_inputs() == width && m.channels == channels)
                .map(Arc::new);
            for v in s.threshold {
                p.threshold.push(v);
            }
            p.scorer.restore(&s.scorer);
            p.point_scorer.restore(&s.point_scorer);
            if s.ema.len() == channels {
                p.ema = s.ema;
                p.ema_started = true;
            }
            p.alert = s.alert;
            self.pipelines.insert(id, p);
            restored += 1;
        }
        restored
    }

    /// Applies new threshold, alert and score settings (SIGHUP) without touching models.
    pub fn reload(&mut self, threshold: ThresholdConfig, alert: AlertParams, score: ScoreConfig) {
        self.config.threshold = threshold;
        self.config.alert = alert;
        self.config.score = score;
        for p in self.pipelines.values_mut() {
            let q = self.config.threshold.for_sensor(p.sensor.as_str()).quantile.get();
            p.rebuild_threshold(self.config.threshold.window, q);
            let history = p.scorer.history();
            p.scorer = AnomalyScorer::new(&self.config.score);
            p.scorer.restore(&history);
            let history = p.point_scorer.history();
            p.point_scorer = AnomalyScorer::new(&self.config.score);
            p.point_scorer.restore(&history);
            let wanted = self
                .config
                .score
                .range_margin
                .map(|m| (self.config.score.range_rows, m));
            if p.range.as_ref().map(|r| r.settings()) != wanted {
                p.range = super::new_range(&self.config.score, p.channel_names.len());
            }
        }
    }
}
