//! Reconstruction models: the autoencoder (the detector) and the PCA baseline.
//!
//! Both map a normalised, flattened window (time-major: index `t * channels + c`) to a
//! reconstruction of the same length; the score is the mean squared error.

pub mod autoencoder;
mod fastmath;

/// Errors from building or training a model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    /// A hyper-parameter is out of range; the message names it and the value.
    #[error("invalid model parameter: {0}")]
    InvalidParams(String),
    /// The autoencoder's parameter check found these problems, each under the
    /// parameter's name (as in `[model]`, `n_inputs` for the input width).
    #[error("invalid model parameters: {}", .0.iter().map(|(k, m)| format!("{k}: {m}")).collect::<Vec<_>>().join("; "))]
    Params(Vec<(&'static str, String)>),
    /// Training data does not fit the model.
    #[error("training data has {got} columns, the model expects {expected}")]
    Shape {
        /// Inputs the model was built for.
        expected: usize,
        /// Columns in the data given.
        got: usize,
    },
    /// Too few rows to train on.
    #[error("need at least {needed} training windows, got {got}")]
    TooFewRows {
        /// Minimum rows.
        needed: usize,
        /// Rows given.
        got: usize,
    },
    /// The PCA fit failed inside linfa.
    #[error("pca fit failed: {0}")]
    Pca(String),
}

pub mod normalise;
pub mod pca;

use serde::{Deserialize, Serialize};

use autoencoder::Autoencoder;
use normalise::Normaliser;
use pca::PcaModel;

/// One trained model generation for one sensor: normaliser, autoencoder and PCA
/// baseline, all fitted on the same windows. Immutable once built; a retrain makes a
/// new one with `version + 1`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Model {
    /// Generation number, 1 for the first model of a sensor.
    pub version: u64,
    /// Channels per reading.
    pub channels: usize,
    /// Channel scaling fitted on the training windows.
    pub normaliser: Normaliser,
    /// The detector.
    pub ae: Autoencoder,
    /// The baseline.
    pub pca: PcaModel,
    /// The autoencoder models what the PCA's principal subspace leaves of a window (a
    /// linear skip path): a drift along the directions the training windows already
    /// vary in is reconstructed by the linear path, and the autoencoder's error is
    /// what lies off them. Decided by `[model] skip` (docs/quality.md, session 6).
    pub residual: bool,
}

/// Reusable buffers for scoring one window without allocating.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    normalised: Vec<f64>,
    /// The PCA residual of `normalised`: the autoencoder's input with the skip path.
    residual: Vec<f64>,
    reconstruction: Vec<f64>,
    /// Squared error per input of the last autoencoder score.
    pub squared_error: Vec<f64>,
    scratch: Vec<f64>,
}

impl Workspace {
    /// Mean over channels of the newest reading's squared AE error, from the last
    /// [`Model::score`] call.
    pub fn newest_ae_error(&self, channels: usize) -> f64 {
        newest_mean(&self.squared_error, channels, |e| e)
    }

    /// Mean over channels of the newest reading's squared normalised value (distance
    /// from the training mean), from the last [`Model::score`] call.
    pub fn newest_z_error(&self, channels: usize) -> f64 {
        newest_mean(&self.normalised, channels, |x| x * x)
    }
}

fn newest_mean(v: &[f64], channels: usize, f: impl Fn(f64) -> f64) -> f64 {
    let c = channels.clamp(1, v.len().max(1));
    let from = v.len().saturating_sub(c);
    v[from..].iter().map(|&x| f(x)).sum::<f64>() / c as f64
}

/// Both scores of one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowScores {
    /// Autoencoder MSE over the window's inputs (normalised units).
    pub ae: f64,
    /// PCA MSE over the same inputs.
    pub pca: f64,
    /// Trivial baseline: MSE against the training mean window.
    pub mean: f64,
}

impl Model {
    /// Scores a raw flattened window with both models. Leaves the autoencoder's
    /// per-input squared errors in `ws.squared_error` for [`Self::channel_errors`].
    pub fn score(&self, raw: &[f64], ws: &mut Workspace) -> WindowScores {
        let n = self.normalise(raw, ws);
        // The PCA baseline first: with the skip path its residual is the AE's input.
        self.pca
            .reconstruct_into(&ws.normalised, &mut ws.reconstruction, &mut ws.scratch);
        // The PCA's and the trivial baseline's errors in one pass (two independent
        // sums, each in the order it would have alone).
        let (mut pca, mut mean) = (0.0, 0.0);
        for ((x, r), m) in (ws.normalised.iter().zip(&ws.reconstruction)).zip(self.pca.mean()) {
            pca += (x - r) * (x - r);
            mean += (x - m) * (x - m);
        }
        // The autoencoder's input: the PCA residual with the skip path, else the window.
        if self.residual {
            ws.residual.clear();
            (ws.residual).extend(ws.normalised.iter().zip(&ws.reconstruction).map(|(x, r)| x - r));
        }
        WindowScores {
            ae: self.ae_error(ws) / n,
            pca: pca / n,
            mean: mean / n,
        }
    }

    /// The autoencoder's score of a raw flattened window alone, as [`Self::score`]
    /// gives it (the same bits), without the baselines' unless the skip path needs
    /// the PCA's: rebuilding a score history after a retrain scores thousands of
    /// windows.
    pub fn ae_score(&self, raw: &[f64], ws: &mut Workspace) -> f64 {
        if self.residual {
            return self.score(raw, ws).ae;
        }
        let n = self.normalise(raw, ws);
        self.ae_error(ws) / n
    }

    /// Sizes the workspace for `raw` and normalises it into `ws.normalised`; returns
    /// the number of inputs the mean errors divide by.
    fn normalise(&self, raw: &[f64], ws: &mut Workspace) -> f64 {
        let k = raw.len();
        ws.normalised.resize(k, 0.0);
        ws.reconstruction.resize(k, 0.0);
        ws.squared_error.resize(k, 0.0);
        self.normaliser.apply_into(raw, &mut ws.normalised);
        k.max(1) as f64
    }

    /// The autoencoder's summed squared error of its input (`ws.residual` with the skip
    /// path, else `ws.normalised`), leaving the per-input errors in `ws.squared_error`.
    fn ae_error(&self, ws: &mut Workspace) -> f64 {
        let input = if self.residual {
            &ws.residual
        } else {
            &ws.normalised
        };
        self.ae
            .reconstruct_into(input, &mut ws.reconstruction, &mut ws.scratch);
        for ((e, x), r) in ws.squared_error.iter_mut().zip(input).zip(&ws.reconstruction) {
            *e = (x - r) * (x - r);
        }
        ws.squared_error.iter().sum()
    }

    /// Per-channel mean squared error and share of the total, from the last
    /// [`Self::score`] call.
    pub fn channel_errors(&self, ws: &Workspace) -> Vec<(f64, f64)> {
        let c = self.channels;
        let mut sums = vec![0.0; c];
        for (i, e) in ws.squared_error.iter().enumerate() {
            sums[i % c] += e;
        }
        let total: f64 = sums.iter().sum();
        let per_channel = (ws.squared_error.len() / c).max(1) as f64;
        sums.iter()
            .map(|s| {
                (
                    s / per_channel,
                    if total > 0.0 { s / total } else { 1.0 / c as f64 },
                )
            })
            .collect()
    }
}
