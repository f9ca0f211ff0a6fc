//! Training buffers and the batched kernels that run on them: the forward pass keeping
//! every layer's activations, the objective, and backprop into the gradients.
//!
//! Why by hand: the matrices are tiny (batch 32, widths 2–128), so a general matrix
//! product spent more time packing its operands than multiplying, and every batch
//! allocated its activations, deltas and gradients afresh. A [`Workspace`] allocates
//! them once per `fit`; the loops are row-major with the inner loop over contiguous
//! memory, and the forward pass reuses the scoring kernel ([`Layer::affine_row`], or
//! its AVX2 build, then the activation), so training and scoring compute a layer the
//! same way.
//!
//! On an AVX2 CPU the whole pass is compiled for AVX2. No FMA and no reordering: each
//! value is computed by the same operations in the same order on either path, so a
//! seed trains the same weights whichever CPU runs it (tested in `tests/kernels.rs`).

use ndarray::ArrayView2;

use super::net::{Autoencoder, Layer, LayerGrad};
use super::params::{Activation, Loss, Penalty};

/// Probabilities are clamped to [EPS, 1 - EPS] inside the BCE log so a saturated sigmoid
/// gives a large but finite loss instead of `inf`.
const BCE_EPS: f64 = 1e-7;

/// Preallocated buffers for batches of up to `capacity` rows of one network shape. All
/// matrices are row-major `rows × width` slices.
pub(super) struct Workspace {
    capacity: usize,
    /// Network input (and output) width.
    width: usize,
    /// Rows currently loaded.
    rows: usize,
    /// The clean rows: the reconstruction target.
    target: Vec<f64>,
    /// `acts[0]` is the network input (the target, possibly corrupted); `acts[l + 1]` the
    /// output of layer `l`.
    acts: Vec<Vec<f64>>,
    /// Backprop deltas of the current layer and of the one below it (swapped per layer).
    delta: Vec<f64>,
    delta_prev: Vec<f64>,
    grads: Vec<LayerGrad>,
}

/// What training minimises: the reconstruction loss plus, for a sparse autoencoder, a
/// penalty on the latent code and its weight.
#[derive(Clone, Copy, Debug)]
pub(super) struct Objective {
    pub(super) loss: Loss,
    pub(super) penalty: Option<(Penalty, f64)>,
}

/// Unnormalised objective terms of some rows: the summed loss over every output element
/// and the summed penalty term (`|h|` or `h²`) over every latent element.
#[derive(Clone, Copy, Default)]
struct Sums {
    loss: f64,
    penalty: f64,
}

impl Workspace {
    /// Buffers for batches of up to `capacity` rows through `ae`.
    pub(super) fn new(ae: &Autoencoder, capacity: usize) -> Self {
        let max_width = ae.layers.iter().map(|l| l.n_in.max(l.n_out)).max().unwrap_or(0);
        let mut acts = vec![vec![0.0; capacity * ae.n_inputs]];
        acts.extend(ae.layers.iter().map(|l| vec![0.0; capacity * l.n_out]));
        Self {
            capacity,
            width: ae.n_inputs,
            rows: 0,
            target: vec![0.0; capacity * ae.n_inputs],
            acts,
            delta: vec![0.0; capacity * max_width],
            delta_prev: vec![0.0; capacity * max_width],
            grads: (ae.layers.iter())
                .map(|l| LayerGrad {
                    w: vec![0.0; l.w.len()],
                    b: vec![0.0; l.b.len()],
                })
                .collect(),
        }
    }

    /// Gathers rows `rows` of `data` as the batch target (at most `capacity` of them;
    /// `data` must be as wide as the network's input).
    pub(super) fn load(&mut self, data: ArrayView2<f64>, rows: impl ExactSizeIterator<Item = usize>) {
        assert!(rows.len() <= self.capacity, "batch larger than the workspace");
        self.rows = rows.len();
        assert_eq!(data.ncols(), self.width, "data width");
        for (dst, r) in self.target.chunks_exact_mut(self.width).zip(rows) {
            let row = data.row(r);
            match row.as_slice() {
                Some(src) => dst.copy_from_slice(src),
                None => dst.iter_mut().zip(row).for_each(|(d, &v)| *d = v),
            }
        }
    }

    /// The loaded target rows and the network input to fill from them.
    pub(super) fn target_and_input(&mut self) -> (&[f64], &mut [f64]) {
        let n = self.rows * self.width;
        (&self.target[..n], &mut self.acts[0][..n])
    }

    /// Gradients of the last [`Self::run`] that asked for them.
    pub(super) fn grads(&self) -> &[LayerGrad] {
        &self.grads
    }

    /// The training objective of the loaded batch (mean loss over all elements plus the
    /// sparsity penalty on the latent code) for the input already in place, and with
    /// `grads` its gradient with respect to every weight and bias.
    ///
    /// For BCE with a sigmoid output the output delta uses the combined form
    /// `(x̃ - x) / n`, the exact gradient wherever the clamp is inactive.
    pub(super) fn run(&mut self, ae: &Autoencoder, obj: Objective, grads: bool) -> f64 {
        let sums = self.pass(ae, obj, grads);
        mean_objective(ae, sums, self.rows, obj)
    }

    /// The objective of `data` reconstructed towards itself (clean inputs), in batches of
    /// the workspace's capacity.
    pub(super) fn objective(&mut self, ae: &Autoencoder, data: ArrayView2<f64>, obj: Objective) -> f64 {
        let mut total = Sums::default();
        let mut start = 0;
        while start < data.nrows() {
            let end = data.nrows().min(start + self.capacity.max(1));
            self.load(data, start..end);
            let (target, input) = self.target_and_input();
            input.copy_from_slice(target);
            let sums = self.pass(ae, obj, false);
            total.loss += sums.loss;
            total.penalty += sums.penalty;
            start = end;
        }
        mean_objective(ae, total, data.nrows(), obj)
    }

    /// Forward pass, objective terms and, with `grads`, backprop, on the AVX2 build when
    /// the CPU has it.
    fn pass(&mut self, ae: &Autoencoder, obj: Objective, grads: bool) -> Sums {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked on the line above), which is the
            // only requirement for calling a `#[target_feature(enable = "avx2")]` fn.
            return unsafe { self.pass_avx2(ae, obj, grads) };
        }
        self.pass_portable(ae, obj, grads)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn pass_avx2(&mut self, ae: &Autoencoder, obj: Objective, grads: bool) -> Sums {
        // A safe call: the closure inherits this function's AVX2, all affine_row needs.
        let affine =
            |layer: &Layer, input: &[f64], output: &mut [f64]| super::avx2::affine_row(layer, input, output);
        self.pass_with(ae, obj, grads, affine)
    }

    /// [`Self::run`] with gradients on the portable build, whatever the CPU.
    #[cfg(test)]
    pub(super) fn run_portable(&mut self, ae: &Autoencoder, obj: Objective) -> f64 {
        let sums = self.pass_portable(ae, obj, true);
        mean_objective(ae, sums, self.rows, obj)
    }

    /// [`Self::pass`] for any CPU.
    fn pass_portable(&mut self, ae: &Autoencoder, obj: Objective, grads: bool) -> Sums {
        self.pass_with(ae, obj, grads, Layer::affine_row)
    }

    #[inline(always)]
    fn pass_with(
        &mut self,
        ae: &Autoencoder,
        obj: Objective,
        grads: bool,
        affine: impl Fn(&Layer, &[f64], &mut [f64]),
    ) -> Sums {
        self.forward(ae, affine);
        let sums = self.sums(ae, obj);
        if grads {
            self.backward(ae, obj);
        }
        sums
    }

    /// Every layer's activations for the loaded rows: the pre-activations row by row,
    /// then the activation over the whole batch at once (a row of 2 or 8 values is too
    /// short for the vectorised activation loop; the values are the same either way).
    #[inline(always)]
    fn forward(&mut self, ae: &Autoencoder, affine: impl Fn(&Layer, &[f64], &mut [f64])) {
        for (l, layer) in ae.layers.iter().enumerate() {
            let (below, above) = self.acts.split_at_mut(l + 1);
            let input = below[l].chunks_exact(layer.n_in);
            let output = &mut above[0][..self.rows * layer.n_out];
            for (x, y) in input.zip(output.chunks_exact_mut(layer.n_out)) {
                affine(layer, x, y);
            }
            layer.act.apply_slice(output);
        }
    }

    #[inline(always)]
    fn sums(&self, ae: &Autoencoder, obj: Objective) -> Sums {
        let n = self.rows * ae.n_inputs;
        let (out, target) = (&self.acts[ae.layers.len()][..n], &self.target[..n]);
        let mut sums = Sums::default();
        match obj.loss {
            Loss::Mse => (out.iter().zip(target)).for_each(|(&y, &t)| sums.loss += (y - t) * (y - t)),
            Loss::Bce => (out.iter().zip(target)).for_each(|(&y, &t)| {
                let p = y.clamp(BCE_EPS, 1.0 - BCE_EPS);
                sums.loss -= t * p.ln() + (1.0 - t) * (1.0 - p).ln();
            }),
        }
        if let Some((kind, _)) = obj.penalty {
            let code = &self.acts[ae.latent_layer + 1][..self.rows * ae.latent_width()];
            sums.penalty = match kind {
                Penalty::L1 => code.iter().map(|h| h.abs()).sum(),
                Penalty::L2 => code.iter().map(|h| h * h).sum(),
            };
        }
        sums
    }

    /// Backprop of the loaded batch into `self.grads`; needs [`Self::forward`] first.
    #[inline(always)]
    fn backward(&mut self, ae: &Autoencoder, obj: Objective) {
        let Self {
            rows,
            target,
            acts,
            delta,
            delta_prev,
            grads,
            ..
        } = self;
        let rows = *rows;
        let n = rows * ae.n_inputs;
        let (out, target) = (&acts[ae.layers.len()][..n], &target[..n]);
        let n_elems = n as f64;
        // Delta with respect to the output pre-activation.
        let d = &mut delta[..n];
        match obj.loss {
            Loss::Mse => {
                let scale = 2.0 / n_elems;
                (d.iter_mut().zip(out).zip(target)).for_each(|((d, &y), &t)| *d = (y - t) * scale);
                scale_by_derivative(ae.output_activation(), d, out);
            }
            Loss::Bce => (d.iter_mut().zip(out).zip(target)).for_each(|((d, &y), &t)| *d = (y - t) / n_elems),
        }
        for (l, layer) in ae.layers.iter().enumerate().rev() {
            let (n_in, n_out) = (layer.n_in, layer.n_out);
            let a_prev = &acts[l][..rows * n_in];
            let d = &delta[..rows * n_out];
            accumulate_grads(&mut grads[l], d, a_prev, n_in);
            if l == 0 {
                break;
            }
            // Delta with respect to the previous layer's output, then its pre-activation.
            let d_prev = &mut delta_prev[..rows * n_in];
            backprop_delta(d_prev, d, &layer.w, n_in);
            if l == ae.latent_layer + 1 {
                if let Some((kind, weight)) = obj.penalty {
                    add_penalty_grad(d_prev, a_prev, kind, weight);
                }
            }
            scale_by_derivative(ae.layers[l - 1].act, d_prev, a_prev);
            std::mem::swap(delta, delta_prev);
        }
    }
}

/// `g.w = deltaᵀ · a_prev` and `g.b` = the column sums of `delta`.
///
/// Four batch rows per sweep over the weight rows, added in row order
/// (`g + d₀a₀ + d₁a₁ + d₂a₂ + d₃a₃`, left to right): the same sums as one row at a time,
/// with a quarter of the loads and stores of `g`. The inner loops run along contiguous
/// weight rows.
#[inline(always)]
fn accumulate_grads(g: &mut LayerGrad, delta: &[f64], a_prev: &[f64], n_in: usize) {
    let n_out = g.b.len();
    g.w.fill(0.0);
    g.b.fill(0.0);
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

/// `d_prev = delta · W`: each row of `d_prev` is the sum over outputs `o` of
/// `delta[o] · W[o]`, added in order of `o`.
///
/// Four weight rows per sweep over the batch, added left to right as
/// [`accumulate_grads`] does: consecutive updates touch different rows of `d_prev`, so
/// they do not wait on each other's stores.
#[inline(always)]
fn backprop_delta(d_prev: &mut [f64], delta: &[f64], w: &[f64], n_in: usize) {
    let n_out = w.len() / n_in;
    d_prev.fill(0.0);
    let w4 = w.chunks_exact(4 * n_in);
    let w_rest = w4.remainder();
    for (block, w) in w4.enumerate() {
        let (w0, w) = w.split_at(n_in);
        let (w1, w) = w.split_at(n_in);
        let (w2, w3) = w.split_at(n_in);
        for (dp, d) in d_prev.chunks_exact_mut(n_in).zip(delta.chunks_exact(n_out)) {
            let d = &d[4 * block..4 * block + 4];
            let (d0, d1, d2, d3) = (d[0], d[1], d[2], d[3]);
            for ((((p, &x0), &x1), &x2), &x3) in dp.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
                *p = *p + d0 * x0 + d1 * x1 + d2 * x2 + d3 * x3;
            }
        }
    }
    let done = n_out - w_rest.len() / n_in;
    for (o, w) in w_rest.chunks_exact(n_in).enumerate() {
        for (dp, d) in d_prev.chunks_exact_mut(n_in).zip(delta.chunks_exact(n_out)) {
            let d = d[done + o];
            dp.iter_mut().zip(w).for_each(|(p, &w)| *p += d * w);
        }
    }
}

/// The objective from its sums over `rows` rows: mean loss plus weight × mean penalty.
fn mean_objective(ae: &Autoencoder, sums: Sums, rows: usize, obj: Objective) -> f64 {
    let mut value = sums.loss / (rows * ae.n_inputs) as f64;
    if let Some((_, weight)) = obj.penalty {
        value += weight * (sums.penalty / (rows * ae.latent_width()) as f64);
    }
    value
}

/// `d *= da/dz` element-wise, from the layer's outputs `a`; one `match` for the slice so
/// each arm's loop vectorises.
#[inline(always)]
fn scale_by_derivative(act: Activation, d: &mut [f64], a: &[f64]) {
    let pairs = d.iter_mut().zip(a);
    match act {
        Activation::Linear => {}
        Activation::Tanh => pairs.for_each(|(d, &a)| *d *= Activation::Tanh.derivative_from_output(a)),
        Activation::Sigmoid => pairs.for_each(|(d, &a)| *d *= Activation::Sigmoid.derivative_from_output(a)),
        Activation::Relu => pairs.for_each(|(d, &a)| *d *= Activation::Relu.derivative_from_output(a)),
    }
}

/// Adds the gradient of `weight · mean(|h|)` or `weight · mean(h²)` to `d` (w.r.t. `h`).
#[inline(always)]
fn add_penalty_grad(d: &mut [f64], code: &[f64], kind: Penalty, weight: f64) {
    let scale = weight / code.len() as f64;
    match kind {
        // The subgradient 0 at the kink h = 0 (relu codes hit it exactly).
        Penalty::L1 => d.iter_mut().zip(code).for_each(|(d, &h)| {
            *d += scale
                * if h > 0.0 {
                    1.0
                } else if h < 0.0 {
                    -1.0
                } else {
                    0.0
                }
        }),
        Penalty::L2 => d.iter_mut().zip(code).for_each(|(d, &h)| *d += 2.0 * scale * h),
    }
}
