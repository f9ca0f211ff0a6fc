//! Training: mini-batch Adam with seeded shuffling, input corruption for the denoising
//! kind, and early stopping on a held-out tail that restores the best weights. The
//! batched forward pass and backprop run in a [`Workspace`] allocated once per fit, in
//! the training float type ([`Real`]); the weights Adam updates, and its moments, are
//! `f64`.

use ndarray::{ArrayView2, Axis};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_distr::StandardNormal;

use super::net::{Autoencoder, Layer, LayerGrad};
use super::params::{Activation, AutoencoderKind, AutoencoderValidParams, Loss, Noise};
use super::scalar::Real;
use super::workspace::{Objective, Workspace};
use crate::model::ModelError;

/// Adam moment decay rates and denominator guard, the paper's defaults
/// (<https://arxiv.org/abs/1412.6980>, Algorithm 1).
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

/// Decorrelates the training stream (shuffles, noise) from the initialisation stream,
/// which uses the bare seed.
const TRAIN_SEED_SALT: u64 = 0x9E37_79B9_7F4A_7C15;

/// Summary of one [`Autoencoder::fit`] call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainReport {
    /// Epochs actually run (fewer than configured when early stopping triggered).
    pub epochs_run: usize,
    /// Mean training objective (loss + penalty, on corrupted inputs when denoising)
    /// over the last epoch run.
    pub train_loss: f64,
    /// Best validation objective (clean inputs), whose weights were kept; `None`
    /// without a validation split.
    pub val_loss: Option<f64>,
}

/// Adam optimiser state; lives for one `fit` call.
struct Adam {
    m: Vec<LayerGrad>,
    v: Vec<LayerGrad>,
    t: i32,
    lr: f64,
}

impl Adam {
    fn new(layers: &[Layer], lr: f64) -> Self {
        let zeros: Vec<LayerGrad> = layers
            .iter()
            .map(|l| LayerGrad {
                w: vec![0.0; l.w.len()],
                b: vec![0.0; l.b.len()],
            })
            .collect();
        Self {
            m: zeros.clone(),
            v: zeros,
            t: 0,
            lr,
        }
    }

    /// One update of every weight and bias from the batch's gradients, on the AVX2 build
    /// when the CPU has it (a square root and a division per parameter: twice the lanes).
    fn step(&mut self, layers: &mut [Layer], grads: &[LayerGrad<Real>]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked on the line above), which is the
            // only requirement for calling a `#[target_feature(enable = "avx2")]` fn.
            return unsafe { self.step_avx2(layers, grads) };
        }
        self.step_portable(layers, grads);
    }

    /// [`Self::step_portable`] compiled for AVX2: the same operations (IEEE square root
    /// and division, no FMA), so the same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn step_avx2(&mut self, layers: &mut [Layer], grads: &[LayerGrad<Real>]) {
        self.step_portable(layers, grads);
    }

    /// [`Self::step`] for any CPU (inlined into [`Self::step_avx2`]).
    #[inline(always)]
    fn step_portable(&mut self, layers: &mut [Layer], grads: &[LayerGrad<Real>]) {
        self.t = self.t.saturating_add(1);
        let c1 = 1.0 - BETA1.powi(self.t);
        let c2 = 1.0 - BETA2.powi(self.t);
        let step = self.lr * c2.sqrt() / c1;
        for (((layer, g), m), v) in layers.iter_mut().zip(grads).zip(&mut self.m).zip(&mut self.v) {
            update(&mut layer.w, &g.w, &mut m.w, &mut v.w, step);
            update(&mut layer.b, &g.b, &mut m.b, &mut v.b, step);
        }
    }
}

/// Adam update with the bias corrections folded into `step` (the paper's efficient form),
/// in `f64` from the pass's gradients.
#[inline(always)]
fn update(p: &mut [f64], g: &[Real], m: &mut [f64], v: &mut [f64], step: f64) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = f64::from(g);
        *m = BETA1 * *m + (1.0 - BETA1) * g;
        *v = BETA2 * *v + (1.0 - BETA2) * g * g;
        *p -= step * *m / (v.sqrt() + ADAM_EPS);
    }
}

impl Autoencoder {
    /// Trains from the current weights, so a second call is a warm start. Uses the
    /// training hyper-parameters of `params` (loss, kind, learning rate, batch size,
    /// epochs, validation fraction, patience, min improvement, seed); the architecture is
    /// the model's own.
    ///
    /// The last `floor(rows · validation_fraction)` rows (at least one when the fraction
    /// is positive) are held out; after each epoch the validation objective is measured on
    /// them, training stops after `patience` epochs that did not lower the best by at
    /// least the `min_improvement` fraction, and the best weights are restored. Training rows are shuffled each epoch by a seeded rng.
    /// Sparse: the penalty on the latent code is part of the objective. Denoising: each
    /// batch is corrupted afresh, the target is the clean input. With [`Loss::Bce`] the
    /// data must lie in [0, 1].
    ///
    /// # Errors
    ///
    /// - [`ModelError::Shape`] if `data` or `params` has a different input width;
    /// - [`ModelError::TooFewRows`] if there is not at least one training row (and one
    ///   validation row when the fraction is positive);
    /// - [`ModelError::InvalidParams`] for non-finite data, or bce on a model whose
    ///   output activation is not sigmoid.
    pub fn fit(
        &mut self,
        params: &AutoencoderValidParams,
        data: ArrayView2<f64>,
    ) -> Result<TrainReport, ModelError> {
        self.check_fit_inputs(params, data)?;
        let n = data.nrows();
        let n_val = if params.validation_fraction() > 0.0 {
            ((n as f64 * params.validation_fraction()).floor() as usize).max(1)
        } else {
            0
        };
        let (train, val) = data.split_at(Axis(0), n - n_val);
        let mut rng = SmallRng::seed_from_u64(params.seed() ^ TRAIN_SEED_SALT);
        let mut adam = Adam::new(&self.layers, params.learning_rate());
        let mut order: Vec<usize> = (0..train.nrows()).collect();
        let mut ws: Workspace = Workspace::new(self, params.batch_size().min(train.nrows()));
        let obj = Objective {
            loss: params.loss(),
            penalty: params.penalty(),
        };
        let corruption = Corruption::new(params.kind(), &mut rng);
        let mut best: Option<(f64, Vec<Layer>)> = None;
        let mut since_best = 0;
        let mut report = TrainReport {
            epochs_run: 0,
            train_loss: f64::NAN,
            val_loss: None,
        };
        for _ in 0..params.epochs() {
            order.shuffle(&mut rng);
            let mut total = 0.0;
            for chunk in order.chunks(params.batch_size()) {
                ws.load(train, chunk.iter().copied());
                let (target, input) = ws.target_and_input();
                corruption.apply(target, input, &mut rng);
                let value = ws.run(obj, true);
                adam.step(&mut self.layers, ws.grads());
                ws.set_weights(&self.layers);
                total += value * chunk.len() as f64;
            }
            report.epochs_run += 1;
            report.train_loss = total / train.nrows() as f64;
            if n_val == 0 {
                continue;
            }
            let v = ws.objective(val, obj);
            if best
                .as_ref()
                .is_none_or(|(b, _)| v < *b * (1.0 - params.min_improvement()))
            {
                best = Some((v, self.layers.clone()));
                since_best = 0;
            } else {
                since_best += 1;
                if params.patience() > 0 && since_best >= params.patience() {
                    break;
                }
            }
        }
        if let Some((v, layers)) = best {
            self.layers = layers;
            report.val_loss = Some(v);
        }
        Ok(report)
    }

    fn check_fit_inputs(
        &self,
        params: &AutoencoderValidParams,
        data: ArrayView2<f64>,
    ) -> Result<(), ModelError> {
        for got in [params.n_inputs(), data.ncols()] {
            if got != self.n_inputs {
                return Err(ModelError::Shape {
                    expected: self.n_inputs,
                    got,
                });
            }
        }
        let needed = if params.validation_fraction() > 0.0 { 2 } else { 1 };
        if data.nrows() < needed {
            return Err(ModelError::TooFewRows {
                needed,
                got: data.nrows(),
            });
        }
        if params.loss() == Loss::Bce && self.output_activation() != Activation::Sigmoid {
            return Err(ModelError::InvalidParams(
                format!(
                    "loss bce requires output activation sigmoid, the model has {:?}",
                    self.output_activation()
                )
                .to_lowercase(),
            ));
        }
        if let Some(((row, col), v)) = data.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(ModelError::InvalidParams(format!(
                "training data must be finite, got {v} at row {row}, column {col}"
            )));
        }
        Ok(())
    }
}

/// How a batch's network input is made from its clean rows, built once per fit.
enum Corruption {
    /// A plain copy (undercomplete and sparse kinds).
    None,
    /// Additive Gaussian noise, looked up in a table of draws (see [`NoiseTable`]).
    Gaussian(NoiseTable),
    /// Each element zeroed with this probability.
    Masking(f64),
}

impl Corruption {
    fn new(kind: AutoencoderKind, rng: &mut SmallRng) -> Self {
        match kind {
            AutoencoderKind::Denoising {
                noise: Noise::Gaussian { std },
            } => Self::Gaussian(NoiseTable::new(std, rng)),
            AutoencoderKind::Denoising {
                noise: Noise::Masking { p },
            } => Self::Masking(p),
            _ => Self::None,
        }
    }

    /// Fills the network input of one batch from its clean rows: a corrupted copy when
    /// denoising, else a plain copy.
    fn apply(&self, clean: &[Real], input: &mut [Real], rng: &mut SmallRng) {
        match self {
            Self::None => input.copy_from_slice(clean),
            Self::Gaussian(table) => table.add(clean, input, rng),
            Self::Masking(p) => {
                (input.iter_mut().zip(clean)).for_each(|(x, &c)| *x = if rng.gen_bool(*p) { 0.0 } else { c })
            }
        }
    }
}

/// Gaussian corruption noise: `NOISE_DRAWS` normal draws made once per fit, rescaled to
/// mean 0 and the configured standard deviation exactly (then rounded to [`Real`]), and each element's noise one
/// of them picked by 12 random bits (five elements per 64-bit draw). Drawing a normal
/// variate for every element of every batch was a tenth of a whole-NAB eval; a table of
/// 4,096 values is as good a corruption (the noise only has to keep the autoencoder
/// from copying its input) at a fifth of the random bits and no rejection sampling.
struct NoiseTable(Vec<Real>);

/// Entries of a [`NoiseTable`]; a power of two, indexed by `NOISE_BITS` bits.
const NOISE_BITS: u32 = 12;
const NOISE_DRAWS: usize = 1 << NOISE_BITS;

impl NoiseTable {
    fn new(std: f64, rng: &mut SmallRng) -> Self {
        let draws: Vec<f64> = (0..NOISE_DRAWS).map(|_| rng.sample(StandardNormal)).collect();
        let n = NOISE_DRAWS as f64;
        let mean = draws.iter().sum::<f64>() / n;
        let sd = (draws.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / n).sqrt();
        Self(draws.iter().map(|d| ((d - mean) / sd * std) as Real).collect())
    }

    /// `input = clean + noise`, element by element.
    fn add(&self, clean: &[Real], input: &mut [Real], rng: &mut SmallRng) {
        const PER_DRAW: usize = (u64::BITS / NOISE_BITS) as usize;
        const MASK: u64 = NOISE_DRAWS as u64 - 1;
        for (xs, cs) in input.chunks_mut(PER_DRAW).zip(clean.chunks(PER_DRAW)) {
            let mut bits = rng.next_u64();
            for (x, &c) in xs.iter_mut().zip(cs) {
                *x = c + self.0[(bits & MASK) as usize];
                bits >>= NOISE_BITS;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatched_adam_steps_are_bit_identical_to_the_portable_path() {
        // A seed must train the same weights whichever CPU runs it. Layer lengths that
        // are and are not multiples of the vector width; gradients over many scales.
        let mut rng = SmallRng::seed_from_u64(11);
        let layer = |n_in: usize, n_out: usize, rng: &mut SmallRng| Layer {
            n_in,
            n_out,
            w: (0..n_in * n_out).map(|_| rng.gen_range(-1.0..1.0)).collect(),
            b: (0..n_out).map(|_| rng.gen_range(-1.0..1.0)).collect(),
            act: Activation::Tanh,
        };
        let start = vec![
            layer(32, 7, &mut rng),
            layer(7, 3, &mut rng),
            layer(3, 32, &mut rng),
        ];
        let grads: Vec<Vec<LayerGrad<Real>>> = (0..20)
            .map(|_| {
                (start.iter())
                    .map(|l| {
                        let mut g = |n: usize| -> Vec<Real> {
                            (0..n)
                                .map(|_| rng.gen_range(-1.0..1.0) * 10f32.powi(rng.gen_range(-6..3)))
                                .collect()
                        };
                        LayerGrad {
                            w: g(l.w.len()),
                            b: g(l.b.len()),
                        }
                    })
                    .collect()
            })
            .collect();
        let (mut dispatched, mut portable) = (start.clone(), start.clone());
        let (mut a, mut b) = (Adam::new(&start, 0.003), Adam::new(&start, 0.003));
        for g in &grads {
            a.step(&mut dispatched, g);
            b.step_portable(&mut portable, g);
        }
        let bits = |ls: &[Layer]| -> Vec<u64> {
            ls.iter()
                .flat_map(|l| l.w.iter().chain(&l.b))
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&dispatched), bits(&portable));
        assert_ne!(bits(&dispatched), bits(&start), "the steps moved the weights");
    }

    #[test]
    fn gaussian_noise_has_the_configured_spread_and_independent_elements() {
        let mut rng = SmallRng::seed_from_u64(7);
        let table = NoiseTable::new(0.1, &mut rng);
        let n = 100_000;
        let clean = vec![1.0; n];
        let mut input = vec![0.0; n];
        table.add(&clean, &mut input, &mut rng);
        let noise: Vec<f64> = input.iter().map(|&x| f64::from(x) - 1.0).collect();
        let mean = noise.iter().sum::<f64>() / n as f64;
        let sd = (noise.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!(
            mean.abs() < 0.002 && (sd - 0.1).abs() < 0.002,
            "mean {mean}, sd {sd}"
        );
        // Neighbours (which share a 64-bit draw) are uncorrelated.
        let lag1 = noise.windows(2).map(|p| p[0] * p[1]).sum::<f64>() / (n as f64 * sd * sd);
        assert!(lag1.abs() < 0.02, "lag-1 correlation {lag1}");
        // Normal tails: about 4.6 % beyond two standard deviations.
        let beyond = noise.iter().filter(|d| d.abs() > 0.2).count() as f64 / n as f64;
        assert!((0.035..0.058).contains(&beyond), "{beyond}");
    }
}
