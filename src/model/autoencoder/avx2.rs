//! The scoring forward pass with AVX2 intrinsics, four output neurons at a time.
//!
//! Why by hand: compiled from [`Layer::forward_row`](super::net) under
//! `target_feature(avx2)`, the compiler vectorised each neuron's dot product on 2 lanes
//! with shuffles, one neuron after another, and the pass was a fifth of a whole replay.
//! Here each neuron's eight accumulators are two 4-lane registers, four neurons run side
//! by side, and their reductions are done together with `hadd`.
//!
//! Every value is computed by the same floating-point operations in the same order as
//! the portable path (products and sums rounded separately, no FMA; the same pairwise
//! reduction, then the bias, then the tail), so scores are bit-identical whichever path
//! runs (tested in `tests/kernels.rs`).

use std::arch::x86_64::{
    __m256d, _mm256_add_pd, _mm256_hadd_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_permute2f128_pd,
    _mm256_setzero_pd, _mm256_storeu_pd,
};

use super::net::Layer;

/// `output = act(W input + b)` for one row, as `Layer::forward_row`.
///
/// # Panics
///
/// If `input` is shorter than `n_in` or `output` than `n_out`.
#[target_feature(enable = "avx2")]
pub(super) fn forward_row(layer: &Layer, input: &[f64], output: &mut [f64]) {
    affine_row(layer, input, output);
    layer.act.apply_slice(&mut output[..layer.n_out]);
}

/// The pre-activations `output = W input + b` of one row, as `Layer::affine_row`.
///
/// # Panics
///
/// If `input` is shorter than `n_in` or `output` than `n_out`.
#[inline]
#[target_feature(enable = "avx2")]
fn affine_row(layer: &Layer, input: &[f64], output: &mut [f64]) {
    let (n_in, n_out) = (layer.n_in, layer.n_out);
    let input = &input[..n_in];
    let output = &mut output[..n_out];
    let chunks = n_in / 8;
    let tail = chunks * 8;
    let mut o = 0;
    while o + 4 <= n_out {
        let rows = &layer.w[o * n_in..(o + 4) * n_in];
        let acc = accumulate4(rows, input, chunks);
        let bias = [layer.b[o], layer.b[o + 1], layer.b[o + 2], layer.b[o + 3]];
        let mut sums = [0.0; 4];
        reduce4(&acc, &bias, &mut sums);
        for (r, s) in sums.iter_mut().enumerate() {
            for (w, x) in rows[r * n_in + tail..(r + 1) * n_in].iter().zip(&input[tail..]) {
                *s += w * x;
            }
        }
        output[o..o + 4].copy_from_slice(&sums);
        o += 4;
    }
    while o < n_out {
        let row = &layer.w[o * n_in..(o + 1) * n_in];
        let (lo, hi) = accumulate(row, input, chunks);
        let (mut a, mut b) = ([0.0; 4], [0.0; 4]);
        // SAFETY: both arrays hold 4 f64, what an unaligned 256-bit store writes.
        unsafe {
            _mm256_storeu_pd(a.as_mut_ptr(), lo);
            _mm256_storeu_pd(b.as_mut_ptr(), hi);
        }
        let mut s = layer.b[o] + ((a[0] + a[1]) + (a[2] + a[3])) + ((b[0] + b[1]) + (b[2] + b[3]));
        for (w, x) in row[tail..].iter().zip(&input[tail..]) {
            s += w * x;
        }
        output[o] = s;
        o += 1;
    }
}

/// One neuron's eight accumulators (lanes 0–3 and 4–7) over the first `chunks` × 8
/// inputs: `acc[k] += w[8c + k] · x[8c + k]`, chunk by chunk.
#[inline(always)]
fn accumulate(row: &[f64], input: &[f64], chunks: usize) -> (__m256d, __m256d) {
    assert!(row.len() >= chunks * 8 && input.len() >= chunks * 8);
    // SAFETY: AVX2 is enabled in every caller; the loads read [8c, 8c + 8) of `row` and
    // `input`, in bounds by the assertion above.
    unsafe {
        let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        for c in 0..chunks {
            let (w, x) = (row.as_ptr().add(8 * c), input.as_ptr().add(8 * c));
            lo = _mm256_add_pd(lo, _mm256_mul_pd(_mm256_loadu_pd(w), _mm256_loadu_pd(x)));
            hi = _mm256_add_pd(
                hi,
                _mm256_mul_pd(_mm256_loadu_pd(w.add(4)), _mm256_loadu_pd(x.add(4))),
            );
        }
        (lo, hi)
    }
}

/// [`accumulate`] for four neurons whose weight rows are consecutive in `rows`, in one
/// loop (eight independent addition chains per chunk instead of two).
#[inline(always)]
fn accumulate4(rows: &[f64], input: &[f64], chunks: usize) -> [(__m256d, __m256d); 4] {
    let n_in = input.len();
    assert!(rows.len() >= 4 * n_in && n_in >= chunks * 8);
    // SAFETY: AVX2 is enabled in every caller; the loads read [8c, 8c + 8) of `input`
    // and of each of the four rows, in bounds by the assertion above.
    unsafe {
        let mut acc = [(_mm256_setzero_pd(), _mm256_setzero_pd()); 4];
        for c in 0..chunks {
            let x = input.as_ptr().add(8 * c);
            let (x_lo, x_hi) = (_mm256_loadu_pd(x), _mm256_loadu_pd(x.add(4)));
            for (r, (lo, hi)) in acc.iter_mut().enumerate() {
                let w = rows.as_ptr().add(r * n_in + 8 * c);
                *lo = _mm256_add_pd(*lo, _mm256_mul_pd(_mm256_loadu_pd(w), x_lo));
                *hi = _mm256_add_pd(*hi, _mm256_mul_pd(_mm256_loadu_pd(w.add(4)), x_hi));
            }
        }
        acc
    }
}

/// `sums[r] = bias[r] + ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))` for the four
/// neurons' accumulators, all four at once.
#[inline(always)]
fn reduce4(acc: &[(__m256d, __m256d); 4], bias: &[f64; 4], sums: &mut [f64; 4]) {
    // SAFETY: AVX2 is enabled in every caller; the load and store touch 4 f64 arrays.
    unsafe {
        let p = pairwise(acc[0].0, acc[1].0, acc[2].0, acc[3].0);
        let q = pairwise(acc[0].1, acc[1].1, acc[2].1, acc[3].1);
        let s = _mm256_add_pd(_mm256_add_pd(_mm256_loadu_pd(bias.as_ptr()), p), q);
        _mm256_storeu_pd(sums.as_mut_ptr(), s);
    }
}

/// Lane r of the result is `(v_r[0] + v_r[1]) + (v_r[2] + v_r[3])`.
#[inline(always)]
fn pairwise(v0: __m256d, v1: __m256d, v2: __m256d, v3: __m256d) -> __m256d {
    // SAFETY: AVX2 is enabled in every caller; these intrinsics touch no memory.
    unsafe {
        // [v0₀+v0₁, v1₀+v1₁, v0₂+v0₃, v1₂+v1₃] and the same for v2, v3.
        let (h01, h23) = (_mm256_hadd_pd(v0, v1), _mm256_hadd_pd(v2, v3));
        let low = _mm256_permute2f128_pd::<0x20>(h01, h23);
        let high = _mm256_permute2f128_pd::<0x31>(h01, h23);
        _mm256_add_pd(low, high)
    }
}
