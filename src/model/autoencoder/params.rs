//! Hyper-parameters of the autoencoder: the raw builder ([`AutoencoderParams`]) and the
//! checked form ([`AutoencoderValidParams`]) that building and training accept
//! (the linfa `Params → check → ValidParams` chain).

use serde::{Deserialize, Serialize};

use crate::model::ModelError;

/// Element-wise non-linearity of a dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, z)`; weights use He initialisation.
    Relu,
    /// `tanh(z)`; weights use Xavier (Glorot) initialisation.
    Tanh,
    /// `1 / (1 + e^-z)`; the only output activation allowed with [`Loss::Bce`].
    Sigmoid,
    /// Identity; the usual output activation for [`Loss::Mse`].
    Linear,
}

impl Activation {
    /// Applies the activation to one pre-activation value.
    #[inline(always)]
    pub fn apply(self, z: f64) -> f64 {
        match self {
            Self::Relu => z.max(0.0),
            Self::Tanh => crate::model::fastmath::tanh(z),
            Self::Sigmoid => 1.0 / (1.0 + crate::model::fastmath::exp(-z)),
            Self::Linear => z,
        }
    }

    /// Applies the activation to every pre-activation in `z`, in place. One `match` for
    /// the slice lets each arm's loop vectorise (tanh was most of a window's scoring time).
    #[inline(always)]
    pub fn apply_slice(self, z: &mut [f64]) {
        match self {
            Self::Relu => z.iter_mut().for_each(|v| *v = v.max(0.0)),
            Self::Tanh => z.iter_mut().for_each(|v| *v = crate::model::fastmath::tanh(*v)),
            Self::Sigmoid => z
                .iter_mut()
                .for_each(|v| *v = 1.0 / (1.0 + crate::model::fastmath::exp(-*v))),
            Self::Linear => {}
        }
    }

    /// The derivative `da/dz`, written in terms of the output `a = apply(z)` so that
    /// backprop only has to keep the activations.
    #[inline(always)]
    pub fn derivative_from_output(self, a: f64) -> f64 {
        match self {
            // a > 0 exactly when z > 0; the kink at 0 takes the derivative 0.
            Self::Relu => {
                if a > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Tanh => 1.0 - a * a,
            Self::Sigmoid => a * (1.0 - a),
            Self::Linear => 1.0,
        }
    }
}

/// Reconstruction loss, averaged over every element of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Mean squared error `mean((x̃ - x)²)`.
    Mse,
    /// Binary cross-entropy `-mean(x ln x̃ + (1 - x) ln(1 - x̃))`. Targets must lie in
    /// [0, 1] (the detector min-max scales windows for it) and the output activation
    /// must be [`Activation::Sigmoid`]; `x̃` is clamped to [1e-7, 1 - 1e-7] inside the log.
    Bce,
}

/// Sparsity penalty on the latent code `h` of a sparse autoencoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Penalty {
    /// `weight · mean|h|`.
    L1,
    /// `weight · mean h²`.
    L2,
}

/// Corruption applied to the training input of a denoising autoencoder.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Noise {
    /// Adds `N(0, std²)` to every input element; `std` must be finite and positive.
    Gaussian {
        /// Standard deviation of the additive noise, in normalised units.
        std: f64,
    },
    /// Sets each input element to 0 with probability `p`, which must be in (0, 1).
    Masking {
        /// Probability that an element is zeroed.
        p: f64,
    },
}

/// The three kinds of autoencoder the method requires.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum AutoencoderKind {
    /// Plain reconstruction through a bottleneck narrower than the input.
    Undercomplete,
    /// Adds `penalty` on the latent code, scaled by `weight` (finite, non-negative).
    Sparse {
        /// L1 or L2.
        penalty: Penalty,
        /// Multiplier of the penalty term in the loss.
        weight: f64,
    },
    /// Trains on corrupted inputs with the clean input as the target.
    Denoising {
        /// The corruption.
        noise: Noise,
    },
}

/// Unchecked autoencoder hyper-parameters, built linfa-style; call [`check`](Self::check).
#[derive(Clone, Debug, PartialEq)]
pub struct AutoencoderParams(AutoencoderValidParams);

/// Hyper-parameters that passed [`AutoencoderParams::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct AutoencoderValidParams {
    n_inputs: usize,
    hidden: Vec<usize>,
    latent: usize,
    activation: Activation,
    output_activation: Activation,
    loss: Loss,
    kind: AutoencoderKind,
    learning_rate: f64,
    batch_size: usize,
    epochs: usize,
    validation_fraction: f64,
    patience: usize,
    min_improvement: f64,
    seed: u64,
}

impl AutoencoderParams {
    /// Defaults for `n_inputs` inputs: hidden `[16]`, latent 4, tanh, linear output, MSE,
    /// undercomplete, learning rate 1e-3, batch 32, 20 epochs, validation fraction 0.1,
    /// patience 3, any validation improvement counting, seed 42.
    pub fn new(n_inputs: usize) -> Self {
        Self(AutoencoderValidParams {
            n_inputs,
            hidden: vec![16],
            latent: 4,
            activation: Activation::Tanh,
            output_activation: Activation::Linear,
            loss: Loss::Mse,
            kind: AutoencoderKind::Undercomplete,
            learning_rate: 1e-3,
            batch_size: 32,
            epochs: 20,
            validation_fraction: 0.1,
            patience: 3,
            min_improvement: 0.0,
            seed: 42,
        })
    }

    /// Input width (window length × channels), e.g. to reuse one template per sensor.
    pub fn n_inputs(mut self, n_inputs: usize) -> Self {
        self.0.n_inputs = n_inputs;
        self
    }

    /// Widths of the encoder's hidden layers, input side first; the decoder mirrors them.
    pub fn hidden(mut self, widths: Vec<usize>) -> Self {
        self.0.hidden = widths;
        self
    }

    /// Width of the latent code (the bottleneck).
    pub fn latent(mut self, width: usize) -> Self {
        self.0.latent = width;
        self
    }

    /// Activation of every hidden layer and of the latent layer.
    pub fn activation(mut self, activation: Activation) -> Self {
        self.0.activation = activation;
        self
    }

    /// Activation of the output layer.
    pub fn output_activation(mut self, activation: Activation) -> Self {
        self.0.output_activation = activation;
        self
    }

    /// Reconstruction loss.
    pub fn loss(mut self, loss: Loss) -> Self {
        self.0.loss = loss;
        self
    }

    /// Undercomplete, sparse or denoising.
    pub fn kind(mut self, kind: AutoencoderKind) -> Self {
        self.0.kind = kind;
        self
    }

    /// Adam step size.
    pub fn learning_rate(mut self, rate: f64) -> Self {
        self.0.learning_rate = rate;
        self
    }

    /// Rows per mini-batch.
    pub fn batch_size(mut self, size: usize) -> Self {
        self.0.batch_size = size;
        self
    }

    /// Maximum passes over the training rows per [`fit`](super::Autoencoder::fit).
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.0.epochs = epochs;
        self
    }

    /// Fraction of the rows, taken from the end, held out for early stopping; 0 disables it.
    pub fn validation_fraction(mut self, fraction: f64) -> Self {
        self.0.validation_fraction = fraction;
        self
    }

    /// Epochs without a validation improvement before training stops; 0 never stops early.
    pub fn patience(mut self, epochs: usize) -> Self {
        self.0.patience = epochs;
        self
    }

    /// Least relative fall of the validation objective that counts as an improvement
    /// for early stopping (`0.01`: an epoch must lower the best by 1 %); 0 counts any.
    pub fn min_improvement(mut self, fraction: f64) -> Self {
        self.0.min_improvement = fraction;
        self
    }

    /// Seed of weight initialisation, shuffling and noise.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// The seed set so far (the builder's [`Self::seed`] sets it).
    pub fn seed_value(&self) -> u64 {
        self.0.seed
    }

    /// Checks every range and cross-field rule.
    ///
    /// # Errors
    ///
    /// [`ModelError::Params`] listing every problem under its parameter, each naming
    /// the value.
    pub fn check(self) -> Result<AutoencoderValidParams, ModelError> {
        let p = &self.0;
        let mut errors = Vec::new();
        if p.n_inputs == 0 {
            errors.push(("n_inputs", "input width must be at least 1, got 0".to_string()));
        }
        if let Some(w) = p.hidden.iter().find(|&&w| w == 0) {
            errors.push(("hidden", format!("hidden widths must be at least 1, got {w}")));
        }
        if p.latent == 0 {
            errors.push(("latent", "latent width must be at least 1, got 0".to_string()));
        }
        if p.kind == AutoencoderKind::Undercomplete && p.latent >= p.n_inputs {
            errors.push((
                "latent",
                format!(
                    "latent width must be smaller than the input width {}, got {}",
                    p.n_inputs, p.latent
                ),
            ));
        }
        if p.loss == Loss::Bce && p.output_activation != Activation::Sigmoid {
            errors.push((
                "loss",
                format!(
                    "loss bce requires output activation sigmoid, got {:?}",
                    p.output_activation
                )
                .to_lowercase(),
            ));
        }
        match p.kind {
            AutoencoderKind::Sparse { weight, .. } if !(weight.is_finite() && weight >= 0.0) => {
                errors.push((
                    "penalty_weight",
                    format!("sparsity weight must be finite and non-negative, got {weight}"),
                ))
            }
            AutoencoderKind::Denoising {
                noise: Noise::Gaussian { std },
            } if !(std.is_finite() && std > 0.0) => errors.push((
                "noise_level",
                format!("noise std must be finite and positive, got {std}"),
            )),
            AutoencoderKind::Denoising {
                noise: Noise::Masking { p },
            } if !(p > 0.0 && p < 1.0) => errors.push((
                "noise_level",
                format!("masking probability must be in (0, 1), got {p}"),
            )),
            _ => {}
        }
        if !(p.learning_rate.is_finite() && p.learning_rate > 0.0) {
            errors.push((
                "learning_rate",
                format!(
                    "learning rate must be finite and positive, got {}",
                    p.learning_rate
                ),
            ));
        }
        if p.batch_size == 0 {
            errors.push(("batch_size", "batch size must be at least 1, got 0".to_string()));
        }
        if p.epochs == 0 {
            errors.push(("epochs", "epochs must be at least 1, got 0".to_string()));
        }
        let vf = p.validation_fraction;
        if !(0.0..1.0).contains(&vf) {
            errors.push((
                "validation_fraction",
                format!("validation fraction must be in [0, 1), got {vf}"),
            ));
        }
        let mi = p.min_improvement;
        if !(0.0..1.0).contains(&mi) {
            errors.push((
                "min_improvement",
                format!("min improvement must be in [0, 1), got {mi}"),
            ));
        }
        if errors.is_empty() {
            Ok(self.0)
        } else {
            Err(ModelError::Params(errors))
        }
    }
}

impl AutoencoderValidParams {
    /// Input (and output) width.
    pub fn n_inputs(&self) -> usize {
        self.n_inputs
    }
    /// Encoder hidden widths, input side first.
    pub fn hidden(&self) -> &[usize] {
        &self.hidden
    }
    /// Latent code width.
    pub fn latent(&self) -> usize {
        self.latent
    }
    /// Hidden and latent activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }
    /// Output activation.
    pub fn output_activation(&self) -> Activation {
        self.output_activation
    }
    /// Reconstruction loss.
    pub fn loss(&self) -> Loss {
        self.loss
    }
    /// Undercomplete, sparse or denoising.
    pub fn kind(&self) -> AutoencoderKind {
        self.kind
    }
    /// Adam step size.
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }
    /// Rows per mini-batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
    /// Maximum epochs per fit.
    pub fn epochs(&self) -> usize {
        self.epochs
    }
    /// Held-out fraction for early stopping.
    pub fn validation_fraction(&self) -> f64 {
        self.validation_fraction
    }
    /// Early-stopping patience in epochs (0: never stop early).
    pub fn patience(&self) -> usize {
        self.patience
    }
    /// Least relative validation improvement that resets the patience.
    pub fn min_improvement(&self) -> f64 {
        self.min_improvement
    }
    /// Random seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// The sparsity penalty and its weight, if this is a sparse autoencoder.
    pub(crate) fn penalty(&self) -> Option<(Penalty, f64)> {
        match self.kind {
            AutoencoderKind::Sparse { penalty, weight } => Some((penalty, weight)),
            _ => None,
        }
    }
}
