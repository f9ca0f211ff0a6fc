//! Training buffers and the batched kernels that run on them: the forward pass keeping
//! every layer's activations, the objective, and backprop into the gradients, all in the
//! training float type ([`Real`], `f32`; the gradient check runs them in `f64`).
//!
//! Why by hand: the matrices are tiny (batch 32, widths 2–128), so a general matrix
//! product spent more time packing its operands than multiplying, and every batch
//! allocated its activations, deltas and gradients afresh. A [`Workspace`] allocates
//! them once per `fit`, together with its own copy of the weights in the training type
//! (refreshed by [`Workspace::set_weights`] after each optimiser step). The loops are
//! row-major with the inner loop over contiguous memory: the forward pass adds the
//! transposed weight rows scaled by each input (`y = b + Σᵢ xᵢ·Wᵀᵢ`) as backprop adds
//! the weight rows scaled by each delta, four at a time, so no loop needs a horizontal
//! sum and every one vectorises across independent outputs.
//!
//! On an AVX2 CPU the whole pass is compiled for AVX2 (8 `f32` lanes). No FMA and no
//! reordering: each value is computed by the same operations in the same order on either
//! path (the vectorised loops run across independent values; the MSE sum keeps eight
//! explicit lanes), so a seed trains the same weights whichever CPU runs it (tested in
//! `tests/kernels.rs`).

use ndarray::ArrayView2;

use super::net::{Autoencoder, Layer, LayerGrad};
use super::params::{Activation, Loss, Penalty};
use super::scalar::{Real, Scalar, activate, derivative_from_output};

/// Probabilities are clamped to [EPS, 1 - EPS] inside the BCE log so a saturated sigmoid
/// gives a large but finite loss instead of `inf`.
const BCE_EPS: f64 = 1e-7;

/// Preallocated buffers and the network's weights in `F` for batches of up to `capacity`
/// rows of one network shape. All matrices are row-major `rows × width` slices.
pub(super) struct Workspace<F: Scalar = Real> {
    capacity: usize,
    /// Network input (and output) width.
    width: usize,
    /// Rows currently loaded.
    rows: usize,
    /// The weights the pass runs with, in `F` (see [`Self::set_weights`]).
    layers: Vec<TrainLayer<F>>,
    /// Index of the layer whose output is the latent code.
    latent_layer: usize,
    /// The clean rows: the reconstruction target.
    target: Vec<F>,
    /// `acts[0]` is the network input (the target, possibly corrupted); `acts[l + 1]` the
    /// output of layer `l`.
    acts: Vec<Vec<F>>,
    /// Backprop deltas of the current layer and of the one below it (swapped per layer).
    delta: Vec<F>,
    delta_prev: Vec<F>,
    grads: Vec<LayerGrad<F>>,
}

/// One layer's weights in the training type: `w` as in [`Layer`] (row `o` the weights
/// into output `o`, for backprop) and its transpose `wt` (row `i` the weights out of input
/// `i`, for the forward pass).
struct TrainLayer<F> {
    n_in: usize,
    n_out: usize,
    w: Vec<F>,
    wt: Vec<F>,
    b: Vec<F>,
    act: Activation,
}

/// What training minimises: the reconstruction loss plus, for a sparse autoencoder, a
/// penalty on the latent code and its weight.
#[derive(Clone, Copy, Debug)]
pub(super) struct Objective {
    pub(super) loss: Loss,
    pub(super) penalty: Option<(Penalty, f64)>,
}

/// Unnormalised objective terms of some rows: the summed loss over every output element
/// and the summed penalty term (`|h|` or `h²`) over every latent element, in `f64`.
#[derive(Clone, Copy, Default)]
struct Sums {
    loss: f64,
    penalty: f64,
}

impl<F: Scalar> Workspace<F> {
    /// Buffers for batches of up to `capacity` rows through `ae`, and `ae`'s weights.
    pub(super) fn new(ae: &Autoencoder, capacity: usize) -> Self {
        let max_width = ae.layers.iter().map(|l| l.n_in.max(l.n_out)).max().unwrap_or(0);
        let mut acts = vec![vec![F::ZERO; capacity * ae.n_inputs]];
        acts.extend(ae.layers.iter().map(|l| vec![F::ZERO; capacity * l.n_out]));
        let zeros = |n| vec![F::ZERO; n];
        let mut ws = Self {
            capacity,
            width: ae.n_inputs,
            rows: 0,
            layers: (ae.layers.iter())
                .map(|l| TrainLayer {
                    n_in: l.n_in,
                    n_out: l.n_out,
                    w: zeros(l.w.len()),
                    wt: zeros(l.w.len()),
                    b: zeros(l.b.len()),
                    act: l.act,
                })
                .collect(),
            latent_layer: ae.latent_layer,
            target: zeros(capacity * ae.n_inputs),
            acts,
            delta: zeros(capacity * max_width),
            delta_prev: zeros(capacity * max_width),
            grads: (ae.layers.iter())
                .map(|l| LayerGrad {
                    w: zeros(l.w.len()),
                    b: zeros(l.b.len()),
                })
                .collect(),
        };
        ws.set_weights(&ae.layers);
        ws
    }

    /// Copies `layers`' weights (the network's, after an optimiser step) into the pass's
    /// own, rounded to `F`. The architecture must be the one the workspace was built for.
    pub(super) fn set_weights(&mut self, layers: &[Layer]) {
        assert_eq!(layers.len(), self.layers.len(), "layer count");
        for (dst, src) in self.layers.iter_mut().zip(layers) {
            assert_eq!((dst.n_in, dst.n_out), (src.n_in, src.n_out), "layer shape");
            (dst.b.iter_mut().zip(&src.b)).for_each(|(d, &s)| *d = F::from_f64(s));
            // Both layouts in one pass over the source: this runs after every optimiser
            // step.
            let rows = (dst.w.chunks_exact_mut(dst.n_in)).zip(src.w.chunks_exact(src.n_in));
            for (o, (row, src_row)) in rows.enumerate() {
                for (i, (d, &s)) in row.iter_mut().zip(src_row).enumerate() {
                    *d = F::from_f64(s);
                    dst.wt[i * dst.n_out + o] = *d;
                }
            }
        }
    }

    /// Gathers rows `rows` of `data` as the batch target, rounded to `F` (at most
    /// `capacity` of them; `data` must be as wide as the network's input).
    pub(super) fn load(&mut self, data: ArrayView2<f64>, rows: impl ExactSizeIterator<Item = usize>) {
        assert!(rows.len() <= self.capacity, "batch larger than the workspace");
        self.rows = rows.len();
        assert_eq!(data.ncols(), self.width, "data width");
        for (dst, r) in self.target.chunks_exact_mut(self.width).zip(rows) {
            let row = data.row(r);
            match row.as_slice() {
                Some(src) => dst.iter_mut().zip(src).for_each(|(d, &v)| *d = F::from_f64(v)),
                None => dst.iter_mut().zip(row).for_each(|(d, &v)| *d = F::from_f64(v)),
            }
        }
    }

    /// The loaded target rows and the network input to fill from them.
    pub(super) fn target_and_input(&mut self) -> (&[F], &mut [F]) {
        let n = self.rows * self.width;
        (&self.target[..n], &mut self.acts[0][..n])
    }

    /// Gradients of the last [`Self::run`] that asked for them.
    pub(super) fn grads(&self) -> &[LayerGrad<F>] {
        &self.grads
    }

    /// The training objective of the loaded batch (mean loss over all elements plus the
    /// sparsity penalty on the latent code) for the input already in place, and with
    /// `grads` its gradient with respect to every weight and bias.
    ///
    /// For BCE with a sigmoid output the output delta uses the combined form
    /// `(x̃ - x) / n`, the exact gradient wherever the clamp is inactive.
    pub(super) fn run(&mut self, obj: Objective, grads: bool) -> f64 {
        let sums = self.pass(obj, grads);
        self.mean_objective(sums, self.rows, obj)
    }

    /// The objective of `data` reconstructed towards itself (clean inputs), in batches of
    /// the workspace's capacity.
    pub(super) fn objective(&mut self, data: ArrayView2<f64>, obj: Objective) -> f64 {
        let mut total = Sums::default();
        let mut start = 0;
        while start < data.nrows() {
            let end = data.nrows().min(start + self.capacity.max(1));
            self.load(data, start..end);
            let (target, input) = self.target_and_input();
            input.copy_from_slice(target);
            let sums = self.pass(obj, false);
            total.loss += sums.loss;
            total.penalty += sums.penalty;
            start = end;
        }
        self.mean_objective(total, data.nrows(), obj)
    }

    /// Forward pass, objective terms and, with `grads`, backprop, on the AVX2 build when
    /// the CPU has it.
    fn pass(&mut self, obj: Objective, grads: bool) -> Sums {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked on the line above), which is the
            // only requirement for calling a `#[target_feature(enable = "avx2")]` fn.
            return unsafe { self.pass_avx2(obj, grads) };
        }
        self.pass_portable(obj, grads)
    }

    /// [`Self::pass_portable`] compiled for AVX2: the same code, so the same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn pass_avx2(&mut self, obj: Objective, grads: bool) -> Sums {
        self.pass_portable(obj, grads)
    }

    /// [`Self::run`] with gradients on the portable build, whatever the CPU.
    #[cfg(test)]
    pub(super) fn run_portable(&mut self, obj: Objective) -> f64 {
        let sums = self.pass_portable(obj, true);
        self.mean_objective(sums, self.rows, obj)
    }

    /// [`Self::pass`] for any CPU (inlined into [`Self::pass_avx2`]).
    #[inline(always)]
    fn pass_portable(&mut self, obj: Objective, grads: bool) -> Sums {
        self.forward();
        let sums = self.sums(obj);
        if grads {
            self.backward(obj);
        }
        sums
    }

    /// Every layer's activations for the loaded rows: the pre-activations of the whole
    /// batch (each row the bias plus the transposed weight rows scaled by its inputs),
    /// then the activation over the whole batch at once.
    #[inline(always)]
    fn forward(&mut self) {
        for (l, layer) in self.layers.iter().enumerate() {
            let (below, above) = self.acts.split_at_mut(l + 1);
            let input = &below[l][..self.rows * layer.n_in];
            let output = &mut above[0][..self.rows * layer.n_out];
            // An element loop, not `copy_from_slice`: a row is a few values, and the
            // `memcpy` call for each showed in a whole-NAB profile.
            for y in output.chunks_exact_mut(layer.n_out) {
                y.iter_mut().zip(&layer.b).for_each(|(y, &b)| *y = b);
            }
            add_scaled_rows(output, input, &layer.wt, layer.n_out);
            activate(layer.act, output);
        }
    }

    #[inline(always)]
    fn sums(&self, obj: Objective) -> Sums {
        let n = self.rows * self.width;
        let (out, target) = (&self.acts[self.layers.len()][..n], &self.target[..n]);
        let mut sums = Sums::default();
        match obj.loss {
            Loss::Mse => sums.loss = sum_squared_differences(out, target),
            Loss::Bce => (out.iter().zip(target)).for_each(|(&y, &t)| {
                let (y, t) = (y.to_f64(), t.to_f64());
                let p = y.clamp(BCE_EPS, 1.0 - BCE_EPS);
                sums.loss -= t * p.ln() + (1.0 - t) * (1.0 - p).ln();
            }),
        }
        if let Some((kind, _)) = obj.penalty {
            let code = &self.acts[self.latent_layer + 1][..self.rows * self.latent_width()];
            sums.penalty = match kind {
                Penalty::L1 => code.iter().map(|h| h.abs().to_f64()).sum(),
                Penalty::L2 => code.iter().map(|&h| (h * h).to_f64()).sum(),
            };
        }
        sums
    }

    /// Backprop of the loaded batch into `self.grads`; needs [`Self::forward`] first.
    #[inline(always)]
    fn backward(&mut self, obj: Objective) {
        let Self {
            rows,
            width,
            layers,
            latent_layer,
            target,
            acts,
            delta,
            delta_prev,
            grads,
            ..
        } = self;
        let (rows, latent_layer) = (*rows, *latent_layer);
        let n = rows * *width;
        let (out, target) = (&acts[layers.len()][..n], &target[..n]);
        let n_elems = n as f64;
        // Delta with respect to the output pre-activation.
        let d = &mut delta[..n];
        // Cannot fail: a workspace is built for a network of at least one layer.
        let output_act = layers.last().expect("non-empty").act;
        match obj.loss {
            Loss::Mse => {
                let scale = F::from_f64(2.0 / n_elems);
                (d.iter_mut().zip(out).zip(target)).for_each(|((d, &y), &t)| *d = (y - t) * scale);
                scale_by_derivative(output_act, d, out);
            }
            Loss::Bce => {
                let n_elems = F::from_f64(n_elems);
                (d.iter_mut().zip(out).zip(target)).for_each(|((d, &y), &t)| *d = (y - t) / n_elems)
            }
        }
        for (l, layer) in layers.iter().enumerate().rev() {
            let (n_in, n_out) = (layer.n_in, layer.n_out);
            let a_prev = &acts[l][..rows * n_in];
            let d = &delta[..rows * n_out];
            accumulate_grads(&mut grads[l], d, a_prev, n_in);
            if l == 0 {
                break;
            }
            // Delta with respect to the previous layer's output, then its pre-activation.
            let d_prev = &mut delta_prev[..rows * n_in];
            d_prev.fill(F::ZERO);
            add_scaled_rows(d_prev, d, &layer.w, n_in);
            if l == latent_layer + 1 {
                if let Some((kind, weight)) = obj.penalty {
                    add_penalty_grad(d_prev, a_prev, kind, weight);
                }
            }
            scale_by_derivative(layers[l - 1].act, d_prev, a_prev);
            std::mem::swap(delta, delta_prev);
        }
    }

    /// Width of the latent code.
    fn latent_width(&self) -> usize {
        self.layers[self.latent_layer].n_out
    }

    /// The objective from its sums over `rows` rows: mean loss plus weight × mean penalty.
    fn mean_objective(&self, sums: Sums, rows: usize, obj: Objective) -> f64 {
        let mut value = sums.loss / (rows * self.width) as f64;
        if let Some((_, weight)) = obj.penalty {
            value += weight * (sums.penalty / (rows * self.latent_width()) as f64);
        }
        value
    }
}

/// `Σ (y - t)²` in `f64`, each difference squared in `F`, on eight explicit lanes (lane
/// `k` sums elements `k`, `k + 8`, …; then `((s₀ + s₁) + (s₂ + s₃)) + ((s₄ + s₅) + (s₆ +
/// s₇))`, then the tail in order): one running sum would be a chain of dependent adds
/// as long as the batch, and these lanes vectorise the same way on every build.
#[inline(always)]
fn sum_squared_differences<F: Scalar>(out: &[F], target: &[F]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (o8, t8) = (out.chunks_exact(8), target.chunks_exact(8));
    let (o_rest, t_rest) = (o8.remainder(), t8.remainder());
    for (o, t) in o8.zip(t8) {
        for k in 0..8 {
            let e = o[k] - t[k];
            acc[k] += (e * e).to_f64();
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (&o, &t) in o_rest.iter().zip(t_rest) {
        let e = o - t;
        s += (e * e).to_f64();
    }
    s
}

/// `g.w = deltaᵀ · a_prev` and `g.b` = the column sums of `delta`.
///
/// Four batch rows per sweep over the weight rows, added in row order
/// (`g + d₀a₀ + d₁a₁ + d₂a₂ + d₃a₃`, left to right): the same sums as one row at a time,
/// with a quarter of the loads and stores of `g`. The inner loops run along contiguous
/// weight rows.
#[inline(always)]
fn accumulate_grads<F: Scalar>(g: &mut LayerGrad<F>, delta: &[F], a_prev: &[F], n_in: usize) {
    let n_out = g.b.len();
    g.w.fill(F::ZERO);
    g.b.fill(F::ZERO);
    let (a4, d4) = (a_prev.chunks_exact(4 * n_in), delta.chunks_exact(4 * n_out));
    let (a_rest, d_rest) = (a4.remainder(), d4.remainder());
    for (a, d) in a4.zip(d4) {
        let (a0, a) = a.split_at(n_in);
        let (a1, a) = a.split_at(n_in);
        let (a2, a3) = a.split_at(n_in);
        for (o, (gw, gb)) in g.w.chunks_exact_mut(n_in).zip(g.b.iter_mut()).enumerate() {
            let (d0, d1, d2, d3) = (d[o], d[n_out + o], d[2 * n_out + o], d[3 * n_out + o]);
            *gb = *gb + d0 + d1 + d2 + d3;
            for ((((g, &x0), &x1), &x2), &x3) in gw.iter_mut().zip(a0).zip(a1).zip(a2).zip(a3) {
                *g = *g + d0 * x0 + d1 * x1 + d2 * x2 + d3 * x3;
            }
        }
    }
    for (a, d) in a_rest.chunks_exact(n_in).zip(d_rest.chunks_exact(n_out)) {
        for ((gw, &d), gb) in g.w.chunks_exact_mut(n_in).zip(d).zip(g.b.iter_mut()) {
            *gb += d;
            gw.iter_mut().zip(a).for_each(|(gw, &a)| *gw += d * a);
        }
    }
}

/// `out += coef · m` for row-major `coef` (`rows × k`) and `m` (`k × width`): each row of
/// `out` gains the rows of `m` scaled by that row's coefficients, added in order of `k`.
/// The forward pass (`coef` the inputs, `m` the transposed weights) and backprop (`coef`
/// the deltas, `m` the weights) both use it.
///
/// Four rows of `m` per sweep over the batch, added left to right as
/// [`accumulate_grads`] does: consecutive updates touch different rows of `out`, so
/// they do not wait on each other's stores.
#[inline(always)]
fn add_scaled_rows<F: Scalar>(out: &mut [F], coef: &[F], m: &[F], width: usize) {
    let k = m.len() / width;
    let m4 = m.chunks_exact(4 * width);
    let m_rest = m4.remainder();
    for (block, m) in m4.enumerate() {
        let (m0, m) = m.split_at(width);
        let (m1, m) = m.split_at(width);
        let (m2, m3) = m.split_at(width);
        for (p, c) in out.chunks_exact_mut(width).zip(coef.chunks_exact(k)) {
            let c = &c[4 * block..4 * block + 4];
            let (c0, c1, c2, c3) = (c[0], c[1], c[2], c[3]);
            for ((((p, &x0), &x1), &x2), &x3) in p.iter_mut().zip(m0).zip(m1).zip(m2).zip(m3) {
                *p = *p + c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3;
            }
        }
    }
    let done = k - m_rest.len() / width;
    for (j, m) in m_rest.chunks_exact(width).enumerate() {
        for (p, c) in out.chunks_exact_mut(width).zip(coef.chunks_exact(k)) {
            let c = c[done + j];
            p.iter_mut().zip(m).for_each(|(p, &x)| *p += c * x);
        }
    }
}

/// `d *= da/dz` element-wise, from the layer's outputs `a`; one `match` for the slice so
/// each arm's loop vectorises.
#[inline(always)]
fn scale_by_derivative<F: Scalar>(act: Activation, d: &mut [F], a: &[F]) {
    let pairs = d.iter_mut().zip(a);
    match act {
        Activation::Linear => {}
        Activation::Tanh => pairs.for_each(|(d, &a)| *d = *d * derivative_from_output(Activation::Tanh, a)),
        Activation::Sigmoid => {
            pairs.for_each(|(d, &a)| *d = *d * derivative_from_output(Activation::Sigmoid, a))
        }
        Activation::Relu => pairs.for_each(|(d, &a)| *d = *d * derivative_from_output(Activation::Relu, a)),
    }
}

/// Adds the gradient of `weight · mean(|h|)` or `weight · mean(h²)` to `d` (w.r.t. `h`).
#[inline(always)]
fn add_penalty_grad<F: Scalar>(d: &mut [F], code: &[F], kind: Penalty, weight: f64) {
    let scale = weight / code.len() as f64;
    match kind {
        // The subgradient 0 at the kink h = 0 (relu codes hit it exactly).
        Penalty::L1 => {
            let (up, down) = (F::from_f64(scale), F::from_f64(-scale));
            d.iter_mut().zip(code).for_each(|(d, &h)| {
                if h > F::ZERO {
                    *d += up
                } else if h < F::ZERO {
                    *d += down
                }
            })
        }
        Penalty::L2 => {
            let scale = F::from_f64(2.0 * scale);
            d.iter_mut().zip(code).for_each(|(d, &h)| *d += scale * h)
        }
    }
}
