//! The network itself: layer storage (`f64`), seeded initialisation, the allocation-free
//! scoring path and batched forward passes. Training's batched kernels, in the training
//! float type, live in `workspace`.

use ndarray::{Array2, ArrayView2};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::params::{Activation, AutoencoderValidParams};

/// One dense layer `a = act(W x + b)`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Layer {
    pub(crate) n_in: usize,
    pub(crate) n_out: usize,
    /// Row-major `n_out × n_in`: row `o` holds the weights into output `o`, so the
    /// scoring inner loop walks one contiguous slice.
    pub(crate) w: Vec<f64>,
    pub(crate) b: Vec<f64>,
    pub(crate) act: Activation,
}

impl Layer {
    /// Scores one row: `output = act(W input + b)` (all pre-activations first, then the
    /// activation over the slice, so it vectorises).
    #[inline(always)]
    pub(super) fn forward_row(&self, input: &[f64], output: &mut [f64]) {
        self.affine_row(input, output);
        self.act.apply_slice(&mut output[..self.n_out]);
    }

    /// The pre-activations `output = W input + b` of one row.
    #[inline(always)]
    fn affine_row(&self, input: &[f64], output: &mut [f64]) {
        let input = &input[..self.n_in];
        for ((row, &bias), o) in self
            .w
            .chunks_exact(self.n_in)
            .zip(&self.b)
            .zip(output[..self.n_out].iter_mut())
        {
            // Eight independent accumulators break the add dependency chain so the loop
            // pipelines and vectorises; fixed-size chunks let the compiler drop bounds checks.
            let mut acc = [0.0f64; 8];
            let (rc, ic) = (row.chunks_exact(8), input.chunks_exact(8));
            let (rr, ir) = (rc.remainder(), ic.remainder());
            for (w8, x8) in rc.zip(ic) {
                let (w8, x8): (&[f64; 8], &[f64; 8]) = match (w8.try_into(), x8.try_into()) {
                    (Ok(w), Ok(x)) => (w, x),
                    // Unreachable: chunks_exact(8) yields slices of exactly 8.
                    _ => unreachable!("chunk of 8"),
                };
                for k in 0..8 {
                    acc[k] += w8[k] * x8[k];
                }
            }
            let mut s =
                bias + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
            for (w, x) in rr.iter().zip(ir) {
                s += w * x;
            }
            *o = s;
        }
    }
}

/// Per-layer gradients or optimiser moments (same layout as [`Layer`]): `f64` for Adam,
/// the training type for the pass's gradients.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LayerGrad<F = f64> {
    pub(crate) w: Vec<F>,
    pub(crate) b: Vec<F>,
}

/// A dense MLP autoencoder: input → hidden… → latent → mirrored hidden… → output.
///
/// Weights are plain `f64` vectors so a trained model serialises compactly and scores
/// without ndarray overhead on the hot path.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "AutoencoderRepr")]
pub struct Autoencoder {
    pub(crate) n_inputs: usize,
    pub(crate) layers: Vec<Layer>,
    /// Index of the layer whose output is the latent code.
    pub(crate) latent_layer: usize,
    /// Widest layer output; sizes the two ping-pong halves of the scoring scratch.
    #[serde(skip)]
    max_width: usize,
}

/// Serde shape of [`Autoencoder`], validated on the way in so a corrupt snapshot cannot
/// make the scoring path index out of bounds.
#[derive(Deserialize)]
struct AutoencoderRepr {
    n_inputs: usize,
    layers: Vec<Layer>,
    latent_layer: usize,
}

impl TryFrom<AutoencoderRepr> for Autoencoder {
    type Error = String;

    fn try_from(r: AutoencoderRepr) -> Result<Self, String> {
        let mut width = r.n_inputs;
        for (i, l) in r.layers.iter().enumerate() {
            if l.n_in != width || l.w.len() != l.n_in * l.n_out || l.b.len() != l.n_out {
                return Err(format!("autoencoder layer {i} has inconsistent shape"));
            }
            width = l.n_out;
        }
        if r.layers.is_empty() || width != r.n_inputs || r.latent_layer >= r.layers.len() {
            return Err(format!(
                "autoencoder with {} layers does not map {} inputs back to {} (latent layer {})",
                r.layers.len(),
                r.n_inputs,
                r.n_inputs,
                r.latent_layer
            ));
        }
        Ok(Self::from_layers(r.n_inputs, r.layers, r.latent_layer))
    }
}

impl Autoencoder {
    /// Builds the layers for `params` with seeded initialisation: He-normal
    /// (`N(0, 2/n_in)`) for relu layers, Xavier-uniform (`±√(6/(n_in+n_out))`) otherwise,
    /// zero biases. <https://proceedings.mlr.press/v9/glorot10a.html>,
    /// <https://arxiv.org/abs/1502.01852>.
    pub fn new(params: &AutoencoderValidParams) -> Self {
        let mut rng = SmallRng::seed_from_u64(params.seed());
        let mut widths = vec![params.n_inputs()];
        widths.extend_from_slice(params.hidden());
        widths.push(params.latent());
        widths.extend(params.hidden().iter().rev());
        widths.push(params.n_inputs());
        let n_layers = widths.len() - 1;
        let layers = (0..n_layers)
            .map(|l| {
                let (n_in, n_out) = (widths[l], widths[l + 1]);
                let act = if l + 1 == n_layers {
                    params.output_activation()
                } else {
                    params.activation()
                };
                let w = init_weights(&mut rng, n_in, n_out, act);
                Layer {
                    n_in,
                    n_out,
                    w,
                    b: vec![0.0; n_out],
                    act,
                }
            })
            .collect();
        Self::from_layers(params.n_inputs(), layers, params.hidden().len())
    }

    fn from_layers(n_inputs: usize, layers: Vec<Layer>, latent_layer: usize) -> Self {
        let max_width = layers.iter().map(|l| l.n_out).max().unwrap_or(0);
        Self {
            n_inputs,
            layers,
            latent_layer,
            max_width,
        }
    }

    /// Input (and output) width.
    pub fn n_inputs(&self) -> usize {
        self.n_inputs
    }

    /// Whether `other` has the same architecture: the same layer widths and activations
    /// (its weights may differ). A model of another architecture must not be restored
    /// under a config that asks for this one.
    pub fn same_architecture(&self, other: &Self) -> bool {
        self.n_inputs == other.n_inputs
            && self.latent_layer == other.latent_layer
            && self.layers.len() == other.layers.len()
            && (self.layers.iter().zip(&other.layers))
                .all(|(a, b)| (a.n_in, a.n_out, a.act) == (b.n_in, b.n_out, b.act))
    }

    /// Width of the latent code.
    pub fn latent_width(&self) -> usize {
        self.layers[self.latent_layer].n_out
    }

    /// Output activation of the last layer.
    pub fn output_activation(&self) -> Activation {
        // Cannot fail: construction and deserialisation both require at least one layer.
        self.layers.last().expect("non-empty").act
    }

    /// Reconstructs one flattened window into `out`. Allocation-free once `scratch` has
    /// grown to twice the widest layer (it only ever grows; reuse it across calls).
    ///
    /// # Panics
    ///
    /// If `x` or `out` is not [`n_inputs`](Self::n_inputs) long.
    pub fn reconstruct_into(&self, x: &[f64], out: &mut [f64], scratch: &mut Vec<f64>) {
        assert_eq!(x.len(), self.n_inputs, "input length");
        assert_eq!(out.len(), self.n_inputs, "output length");
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked on the line above), which is the
            // only requirement for calling a `#[target_feature(enable = "avx2")]` fn.
            unsafe { self.reconstruct_avx2(x, out, scratch) };
            return;
        }
        self.reconstruct_portable(x, out, scratch);
    }

    /// [`Self::reconstruct_portable`] with AVX2 intrinsics (`super::avx2`): the same
    /// operations in the same order on 4 lanes, no FMA, so results are bit-identical.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn reconstruct_avx2(&self, x: &[f64], out: &mut [f64], scratch: &mut Vec<f64>) {
        // A safe call: the closure inherits this function's AVX2, all forward_row needs.
        let forward =
            |layer: &Layer, input: &[f64], output: &mut [f64]| super::avx2::forward_row(layer, input, output);
        self.forward_layers(&self.layers, x, out, scratch, forward);
    }

    /// The forward pass of [`Self::reconstruct_into`] for any CPU.
    pub(crate) fn reconstruct_portable(&self, x: &[f64], out: &mut [f64], scratch: &mut Vec<f64>) {
        self.forward_layers(&self.layers, x, out, scratch, Layer::forward_row);
    }

    /// Runs `forward` through `layers` (this network's, or its first few), ping-ponging
    /// between the two halves of `scratch`.
    #[inline(always)]
    fn forward_layers(
        &self,
        layers: &[Layer],
        x: &[f64],
        out: &mut [f64],
        scratch: &mut Vec<f64>,
        forward: impl Fn(&Layer, &[f64], &mut [f64]),
    ) {
        let half = self.max_width;
        if scratch.len() < 2 * half {
            scratch.resize(2 * half, 0.0);
        }
        let (mut cur, mut next) = scratch.split_at_mut(half);
        let (last, inner) = layers.split_last().expect("non-empty"); // see output_activation
        let mut input: &[f64] = x;
        for layer in inner {
            forward(layer, input, next);
            std::mem::swap(&mut cur, &mut next);
            input = cur;
        }
        forward(last, input, out);
    }

    /// Reconstructs every row of `x` (rows are windows).
    ///
    /// # Panics
    ///
    /// If `x` does not have [`n_inputs`](Self::n_inputs) columns.
    pub fn reconstruct_batch(&self, x: ArrayView2<f64>) -> Array2<f64> {
        self.forward_upto(x, self.layers.len())
    }

    /// Latent codes of every row of `x`.
    ///
    /// # Panics
    ///
    /// If `x` does not have [`n_inputs`](Self::n_inputs) columns.
    pub fn encode_batch(&self, x: ArrayView2<f64>) -> Array2<f64> {
        self.forward_upto(x, self.latent_layer + 1)
    }

    /// The first `n_layers` layers on every row of `x`, row by row through the scoring
    /// kernel (so a row gives exactly what [`Self::reconstruct_into`] gives).
    fn forward_upto(&self, x: ArrayView2<f64>, n_layers: usize) -> Array2<f64> {
        assert_eq!(x.ncols(), self.n_inputs, "input columns");
        let width = self.layers[n_layers - 1].n_out;
        let mut out = vec![0.0; x.nrows() * width];
        let (mut row, mut scratch) = (vec![0.0; self.n_inputs], Vec::new());
        for (x, y) in x.rows().into_iter().zip(out.chunks_exact_mut(width)) {
            row.iter_mut().zip(x).for_each(|(r, &v)| *r = v);
            self.forward_layers(
                &self.layers[..n_layers],
                &row,
                y,
                &mut scratch,
                Layer::forward_row,
            );
        }
        // Cannot fail: `out` holds exactly nrows × width values.
        Array2::from_shape_vec((x.nrows(), width), out).expect("output shape")
    }
}

fn init_weights(rng: &mut SmallRng, n_in: usize, n_out: usize, act: Activation) -> Vec<f64> {
    let n = n_in * n_out;
    if act == Activation::Relu {
        // Cannot fail: the standard deviation is finite and positive for n_in >= 1.
        let normal = Normal::new(0.0, (2.0 / n_in as f64).sqrt()).expect("valid std");
        (0..n).map(|_| normal.sample(rng)).collect()
    } else {
        let limit = (6.0 / (n_in + n_out) as f64).sqrt();
        (0..n).map(|_| rng.gen_range(-limit..limit)).collect()
    }
}
