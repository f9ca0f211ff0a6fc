//! The checked settings of the sans-IO detector: [`DetectorConfig`] and its parts
//! (`[window]`, `[model]`, `[training]`, `[threshold]`, `[score]`, `[learning]`, drift
//! removal), with the range-checked newtypes they use. Built by `validate::detector`
//! from the raw sections; the detector, `replay` and `eval` read only these.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::alert::AlertParams;
use crate::model::ModelError;
use crate::model::autoencoder::{AutoencoderKind, AutoencoderParams, AutoencoderValidParams};
use crate::model::normalise::NormaliseMode;
use crate::window::WindowParams;

/// A quantile in (0, 1].
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Quantile(pub(super) f64);

impl Quantile {
    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Quantile {
    type Error = String;
    fn try_from(q: f64) -> Result<Self, String> {
        if q > 0.0 && q <= 1.0 {
            Ok(Self(q))
        } else {
            Err(format!("must be in (0, 1], got {q}"))
        }
    }
}

/// Which model's score the threshold and alerts follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreSource {
    /// The autoencoder (default).
    Ae,
    /// The PCA baseline.
    Pca,
    /// The trivial baseline (distance from the training mean window), for comparison.
    Mean,
    /// The mean of the autoencoder's and the PCA baseline's errors (a two-model
    /// ensemble; both are in the same normalised units).
    AePca,
}

impl ScoreSource {
    /// Picks this source's score out of a window's scores.
    pub fn pick(self, s: &crate::model::WindowScores) -> f64 {
        match self {
            Self::Ae => s.ae,
            Self::Pca => s.pca,
            Self::Mean => s.mean,
            Self::AePca => 0.5 * (s.ae + s.pca),
        }
    }

    /// This source's score of a raw window under `model`, computing only what it needs
    /// (the autoencoder's alone for [`Self::Ae`]: the same bits as picking it).
    pub fn of_window(
        self,
        model: &crate::model::Model,
        raw: &[f64],
        ws: &mut crate::model::Workspace,
    ) -> f64 {
        match self {
            Self::Ae => model.ae_score(raw, ws),
            _ => self.pick(&model.score(raw, ws)),
        }
    }
}

/// Validated `[training]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingConfig {
    /// Windows before the first model.
    pub min_windows: usize,
    /// Scored windows between retrain checks; `None` = never retrain.
    pub retrain_every: Option<usize>,
    /// A grown model is retrained at a check only when its mean error rose by more than
    /// this fraction (see `detector::learning`); `None` = at every check.
    pub drift_tolerance: Option<f64>,
    /// Capacity of the training buffer, windows.
    pub buffer: usize,
    /// Trainings the daemon runs at once (≥ 1).
    pub parallel: usize,
}

/// Validated `[model]`: builds the autoencoder parameters for a given input width.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Template with every hyper-parameter; `n_inputs` is set per sensor.
    pub template: AutoencoderParams,
    /// Kind, for reports.
    pub kind: AutoencoderKind,
    /// PCA components (resolved: never 0).
    pub pca_components: usize,
    /// Whether the autoencoder models the PCA residual.
    pub skip: Skip,
    /// Channel scaling implied by the loss.
    pub normalise: NormaliseMode,
}

impl ModelConfig {
    /// Autoencoder parameters for windows of `n_inputs` values.
    ///
    /// # Errors
    ///
    /// A [`ModelError`] if the template does not fit that width.
    pub fn ae_params(&self, n_inputs: usize) -> Result<AutoencoderValidParams, ModelError> {
        self.template.clone().n_inputs(n_inputs).check()
    }
}

/// `[model] skip`: whether the autoencoder sits behind a linear (PCA) skip path and
/// models only what the principal subspace leaves of a window (see
/// [`crate::model::Model::residual`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The skip path for sensors of two or more channels, none for one channel: a
    /// single channel's principal directions are its own level and slope, so the skip
    /// would hide a level never seen, which is the signal of a one-channel sensor.
    Auto,
    /// Always the skip path.
    Pca,
    /// The autoencoder reconstructs the whole window.
    None,
}

impl Skip {
    /// Whether a sensor of `channels` channels gets the skip path.
    pub fn applies(self, channels: usize) -> bool {
        match self {
            Skip::Auto => channels > 1,
            Skip::Pca => true,
            Skip::None => false,
        }
    }
}

/// Threshold settings for one sensor (after overrides).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SensorThreshold {
    /// The quantile.
    pub quantile: Quantile,
    /// The static floor.
    pub floor: f64,
}

/// Validated `[threshold]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdConfig {
    /// Default quantile and floor.
    pub default: SensorThreshold,
    /// Scores the quantile is taken over.
    pub window: usize,
    /// Scores before any alert.
    pub min_scores: usize,
    /// The alert threshold is this multiple of the rolling quantile (≥ 1).
    pub margin: f64,
    /// AE or PCA.
    pub score: ScoreSource,
    /// Per-sensor overrides.
    pub sensors: BTreeMap<String, SensorThreshold>,
}

impl ThresholdConfig {
    /// The settings that apply to `sensor`.
    pub fn for_sensor(&self, sensor: &str) -> SensorThreshold {
        self.sensors.get(sensor).copied().unwrap_or(self.default)
    }
}

/// Validated `[score]`: the scoring strategy, which turns each window's error into
/// `anomaly_score` in [0, 1] from past data only (see [`crate::score`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScoreStrategy {
    /// The product default: the window's error against the largest of the recent errors
    /// of the model in force, counted only at onsets, with the newest reading's own
    /// deviation and a recent-range check beside it (the larger wins).
    Onset(OnsetScore),
    /// The error against the alert threshold, `s / (s + threshold)`: 0.5 at the
    /// threshold, no onset suppression. For comparison and for operators who want the
    /// anomaly score to follow the alerts.
    Ratio,
}

/// Parameters of [`ScoreStrategy::Onset`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnsetScore {
    /// Past errors the reference (their maximum) is taken from.
    pub history: NonZeroUsize,
    /// Rows after a high anomaly score during which only a higher one counts (0 = off).
    pub onset_rows: usize,
    /// Score the newest reading's squared normalised value beside the window error.
    pub point: bool,
    /// Recent-range component (`None` = off).
    pub range: Option<RangeParams>,
    /// Likelihood component: the tail probability that is an event (`None` = off).
    pub likelihood_tail: Option<f64>,
    /// Windows after an `anomaly_score` of at least 0.5 during which only a larger one is
    /// reported (0 = off).
    pub rest_rows: usize,
}

/// The recent-range component: a reading `margin` × range beyond the range of the
/// previous `rows` readings scores 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RangeParams {
    /// Fraction of the range, > 0.
    pub margin: f64,
    /// Readings the range covers.
    pub rows: NonZeroUsize,
}

/// Validated `[learning]` (the policy itself lives in `detector::learning`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LearningConfig {
    /// An alert raised this long (reading time) is accepted as the new normal; `None` =
    /// never.
    pub accept_after: Option<Duration>,
}

/// Drift removal applied to readings before they enter the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detrend {
    /// Raw readings (default).
    None,
    /// Each channel minus an exponential moving average of its past readings
    /// (alpha = 2 / (rows + 1)); the EMA starts at the first reading.
    Ema {
        /// Span of the EMA, readings.
        rows: usize,
    },
    /// Each channel of a window minus its mean over that window.
    WindowMean,
}

/// Everything the sans-IO detector needs.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Window shape (channels are set per sensor).
    pub window: WindowParams,
    /// Models.
    pub model: ModelConfig,
    /// Retraining.
    pub training: TrainingConfig,
    /// Threshold.
    pub threshold: ThresholdConfig,
    /// Alert lifecycle.
    pub alert: AlertParams,
    /// Scoring strategy (`anomaly_score`).
    pub score: ScoreStrategy,
    /// What the detector learns from.
    pub learning: LearningConfig,
    /// Drift removal before windowing.
    pub detrend: Detrend,
    /// Channel names the detrend applies to; empty = every channel.
    pub detrend_channels: Vec<String>,
    /// Readings of a sensor held back to put late ones in timestamp order (0: none).
    pub reorder_rows: usize,
}
