//! The detector's sections of the TOML file as written: `[window]`, `[model]`,
//! `[training]`, `[threshold]` (with per-sensor overrides), `[alert]`, `[score]` and
//! `[learning]`, each with its defaults. Checked by `validate::detector`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::autoencoder::{Activation, AutoencoderParams};

/// `[window]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawWindow {
    /// Readings per window. Default 32.
    pub size: usize,
    /// Readings between scored windows. Default 1.
    pub stride: usize,
    /// A gap longer than this (seconds, reading time) resets the window; 0: a gap of
    /// 10 × the sensor's learned cadence does (`window::GAP_CADENCE_FACTOR`). Default 0.
    pub max_gap_secs: f64,
    /// Drift removal before windowing: `none`, `ema` (each channel minus an EMA of its
    /// past readings over `detrend_rows`) or `window_mean` (each channel of a window
    /// minus its mean over the window). Default `none`.
    pub detrend: String,
    /// Span of the `ema` detrend, readings. Default 100.
    pub detrend_rows: usize,
    /// Channel names the detrend applies to; empty = every channel. Default empty.
    pub detrend_channels: Vec<String>,
    /// Readings of a sensor that wait for older ones before they are scored (the daemon
    /// lets one go after 1 s of wall time at most); a reading up to this many readings
    /// late is scored in timestamp order. 0 = none. Default 8.
    pub reorder_rows: usize,
}

/// `[model]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawModel {
    /// `undercomplete`, `sparse` or `denoising`. Default `denoising`.
    pub kind: String,
    /// Hidden layer widths of the encoder (mirrored in the decoder). Default `[16]`.
    pub hidden: Vec<usize>,
    /// Width of the code. Default 2.
    pub latent: usize,
    /// Hidden activation: `relu`, `tanh`, `sigmoid`. Default `tanh`.
    pub activation: Activation,
    /// Output activation: `linear` or `sigmoid`. Default `linear`.
    pub output_activation: Activation,
    /// `mse` or `bce` (bce needs `output_activation = "sigmoid"`; inputs are then min-max scaled). Default `mse`.
    pub loss: String,
    /// Adam step size. Default 0.001.
    pub learning_rate: f64,
    /// Mini-batch size, windows. Default 32.
    pub batch_size: usize,
    /// Most epochs per (re)train. Default 20.
    pub epochs: usize,
    /// Fraction of the training windows held out for early stopping. Default 0.1.
    pub validation_fraction: f64,
    /// Epochs without validation improvement before stopping. Default 3.
    pub patience: usize,
    /// Least relative fall of the validation objective that counts as an improvement.
    /// Default 0.01.
    pub min_improvement: f64,
    /// Seed for initialisation, shuffling and noise. Default 42.
    pub seed: u64,
    /// Sparse kind: `l1` or `l2`. Default `l1`.
    pub penalty: String,
    /// Sparse kind: penalty weight. Default 0.001.
    pub penalty_weight: f64,
    /// Denoising kind: `gaussian` or `masking`. Default `gaussian`.
    pub noise: String,
    /// Denoising kind: noise std (gaussian) or drop probability (masking). Default 0.1.
    pub noise_level: f64,
    /// PCA components; 0 = same as `latent`. Default 0.
    pub pca_components: usize,
    /// `auto`, `pca` or `none`: whether the autoencoder models what the PCA's
    /// principal subspace leaves of a window. Default `auto` (two or more channels).
    pub skip: String,
}

/// `[training]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawTraining {
    /// Windows collected before the first model (no scores before). Default 100.
    pub min_windows: usize,
    /// Scored windows between retrain checks; 0 = never retrain. Default 500.
    pub retrain_every: usize,
    /// A model that has grown up (see `detector::learning`) is retrained at a check only
    /// when the mean error of the windows since the last check exceeds its first
    /// period's mean by more than this fraction; 0 = retrain at every check. Default 0.5.
    pub drift_tolerance: f64,
    /// Most recent windows kept for training. Default 5000.
    pub buffer: usize,
    /// Trainings the daemon runs at once; further sensors' jobs wait their turn. Bounds
    /// training's CPU and memory when many sensors are due together. Default 1.
    pub parallel: usize,
}

/// `[threshold]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawThreshold {
    /// Quantile q in (0, 1] of recent scores. Default 0.999.
    pub quantile: f64,
    /// Number of recent scores the quantile is taken over. Default 10000.
    pub window: usize,
    /// Scores needed before any alert. Default 100.
    pub min_scores: usize,
    /// Which score is thresholded: `ae`, `pca`, `ae_pca` (mean of both) or `mean` (the
    /// trivial baseline). Default `ae`.
    pub score: String,
    /// Static floor: the threshold is never below this. Default 0.
    pub floor: f64,
    /// The alert threshold is this multiple of the rolling quantile (≥ 1). Default 1.333.
    pub margin: f64,
    /// Per-sensor overrides, keyed by sensor id: `[threshold.sensors.pump-7]`.
    pub sensors: BTreeMap<String, RawThresholdOverride>,
}

/// `[threshold.sensors.<id>]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawThresholdOverride {
    /// Replaces `threshold.quantile` for this sensor.
    pub quantile: Option<f64>,
    /// Replaces `threshold.floor` for this sensor.
    pub floor: Option<f64>,
}

/// `[alert]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawAlert {
    /// Consecutive windows over the threshold that raise an alert. Default 3.
    pub consecutive: u32,
    /// Consecutive windows under the threshold that clear it. Default 10.
    pub clear_after: u32,
    /// Windows after a clear during which no new alert is raised, unless, after a
    /// recovered clear, `consecutive` windows score over the largest score of the alert
    /// it cleared (a fault back worse is no flapping). Default 100.
    pub cooldown: u32,
    /// Bounds of `over_by` (score / threshold) at which an alert is `major` and
    /// `critical` instead of `minor`. Default `[2.0, 5.0]`.
    pub severity_bands: Vec<f64>,
    /// Seconds without a reading (wall clock, in the daemon) after which a sensor is
    /// `stale`; 0 = off. Default 0.
    pub stale_after_secs: f64,
    /// Readings a channel's value must stay unchanged for (and for twice its longest
    /// earlier flat stretch) to count as stuck, which is over the threshold; 0 = off.
    /// Default 64.
    pub stuck_rows: u32,
    /// An alert also clears, as subsided, when its score stays under this fraction of
    /// the episode's peak level for `cooldown` windows (at least `clear_after`); no new
    /// alert then unless the score rises over the level it subsided to; 0 = off.
    /// Default 0.6.
    pub subside: f64,
}

/// `[score]`: the scoring strategy and its parameters.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawScore {
    /// `onset` (the window's error against the largest recent error, onsets only, with
    /// the newest reading's own deviation and the recent range) or `ratio` (the error
    /// against the alert threshold). Default `onset`.
    pub strategy: String,
    /// `onset`: past errors the reference (their maximum) is taken from. Default 5000.
    pub history: usize,
    /// `onset`: a score counts only if it beats those of this many previous windows,
    /// and an event (a score of at least 0.5) is reported once in this many windows;
    /// 0 disables both. Default 100.
    pub onset_rows: usize,
    /// `onset`: also score the newest reading's own deviation (`z`: its squared
    /// normalised value over its own past maximum) or not (`off`). Default `z`.
    pub point: String,
    /// `onset`: a reading more than this fraction of the recent range beyond that range
    /// (any channel) scores 1; 0 disables. Default 0.05.
    pub range_margin: f64,
    /// `onset`: readings the recent range is taken over. Default 5000.
    pub range_rows: usize,
    /// `onset`: also score the window error's likelihood (its log against the mean and
    /// standard deviation of the learned errors' logs, as a Gaussian tail); this tail
    /// probability is an event (a score of 0.5). 0 disables. Default 0.0003.
    pub likelihood_tail: f64,
    /// `onset`: after an `anomaly_score` of at least 0.5, for this many windows only a
    /// larger one is reported; 0 disables. Default 100.
    pub rest_rows: usize,
}

/// `[learning]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawLearning {
    /// An alert that stays raised this long (seconds of reading time) is accepted as the
    /// new normal: the detector re-baselines on the recent windows and clears it with
    /// reason `accepted`; 0 = never. Default 3600.
    pub accept_after_secs: f64,
}

impl Default for RawWindow {
    fn default() -> Self {
        Self {
            size: 32,
            stride: 1,
            max_gap_secs: 0.0,
            detrend: "none".into(),
            detrend_rows: 100,
            detrend_channels: Vec::new(),
            reorder_rows: 8,
        }
    }
}

impl Default for RawModel {
    /// The network's hyper-parameters default to the autoencoder's own defaults, so the
    /// two cannot drift apart; the rest are the config file's.
    fn default() -> Self {
        let ae = AutoencoderParams::new(RawWindow::default().size)
            .check()
            // Cannot fail: the builder's defaults are valid for the default window
            // (asserted by the autoencoder's tests and by config/anomalyd.toml's test).
            .expect("autoencoder defaults are valid");
        Self {
            kind: "denoising".into(),
            // Narrower than the builder's 16: as good on NAB and SKAB at a fifth less
            // CPU (docs/quality.md, session 6).
            hidden: vec![8],
            // Narrower than the builder's 4: measured best on NAB (docs/quality.md).
            latent: 2,
            activation: ae.activation(),
            output_activation: ae.output_activation(),
            loss: "mse".into(),
            // Three times the builder's 0.001: measured best of 0.001-0.005 on NAB with
            // SKAB held (docs/quality.md, session 6).
            learning_rate: 0.003,
            batch_size: ae.batch_size(),
            epochs: ae.epochs(),
            validation_fraction: ae.validation_fraction(),
            patience: ae.patience(),
            // Not the builder's 0 (any improvement): an improvement under 1 % of a
            // fine-tuning's validation objective is below its noise, and waiting for
            // them was 15 % of a whole-NAB eval's CPU at the same quality
            // (docs/quality.md, session 12).
            min_improvement: 0.01,
            seed: ae.seed(),
            penalty: "l1".into(),
            penalty_weight: 1e-3,
            noise: "gaussian".into(),
            noise_level: 0.1,
            pca_components: 0,
            skip: "auto".into(),
        }
    }
}

impl Default for RawTraining {
    fn default() -> Self {
        Self {
            min_windows: 100,
            retrain_every: 500,
            drift_tolerance: 0.5,
            buffer: 5000,
            parallel: 1,
        }
    }
}

impl Default for RawThreshold {
    fn default() -> Self {
        Self {
            quantile: 0.999,
            window: 10_000,
            min_scores: 100,
            score: "ae".into(),
            floor: 0.0,
            margin: 1.333,
            sensors: BTreeMap::new(),
        }
    }
}

impl Default for RawAlert {
    fn default() -> Self {
        Self {
            consecutive: 3,
            clear_after: 10,
            cooldown: 100,
            severity_bands: vec![2.0, 5.0],
            stale_after_secs: 0.0,
            stuck_rows: 64,
            subside: 0.6,
        }
    }
}

impl Default for RawScore {
    fn default() -> Self {
        Self {
            strategy: "onset".into(),
            history: 5000,
            onset_rows: 100,
            point: "z".into(),
            range_margin: 0.05,
            range_rows: 5000,
            likelihood_tail: 3e-4,
            rest_rows: 100,
        }
    }
}

impl Default for RawLearning {
    fn default() -> Self {
        Self {
            accept_after_secs: 3600.0,
        }
    }
}
