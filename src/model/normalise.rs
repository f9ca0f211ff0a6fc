//! Per-channel normalisation fitted on training windows only (never on the future).
//!
//! Windows are flattened time-major (`t * channels + c`), so channel `c` of input `i`
//! is `i % channels`.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

/// How channels are scaled before the models see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormaliseMode {
    /// `(x − mean) / std` per channel: the default for `mse`.
    Zscore,
    /// Into [0, 1] using the training range widened by 10 % each side, then clamped:
    /// required by the `bce` loss, whose targets must be probabilities.
    Minmax,
}

/// Fitted per-channel affine map `x' = (x − offset) · scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normaliser {
    mode: NormaliseMode,
    offset: Vec<f64>,
    scale: Vec<f64>,
}

/// Below this spread a channel counts as constant: it is centred and left unscaled,
/// so a flat channel never divides by zero and any later movement shows as error.
const MIN_SPREAD: f64 = 1e-9;

impl Normaliser {
    /// Fits channel statistics on raw training windows (`rows × size·channels`).
    ///
    /// # Panics
    ///
    /// If `channels` is zero or does not divide the row length (a programming error).
    pub fn fit(data: ArrayView2<'_, f64>, channels: usize, mode: NormaliseMode) -> Self {
        assert!(channels > 0 && data.ncols() % channels == 0, "bad channel count");
        let mut offset = Vec::with_capacity(channels);
        let mut scale = Vec::with_capacity(channels);
        for c in 0..channels {
            // Logical order is row-major and rows hold whole readings, so every
            // `channels`-th element from `c` belongs to channel `c`.
            let values = data.iter().skip(c).step_by(channels).copied();
            let (o, s) = match mode {
                NormaliseMode::Zscore => zscore_stats(values),
                NormaliseMode::Minmax => minmax_stats(values),
            };
            offset.push(o);
            scale.push(s);
        }
        Self { mode, offset, scale }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.offset.len()
    }

    /// Normalises one flattened window into `out` (same length).
    pub fn apply_into(&self, x: &[f64], out: &mut [f64]) {
        let clamp = self.mode == NormaliseMode::Minmax;
        let channels = self.channels();
        if channels == 1 && !clamp {
            // One channel, z-scores: a loop the compiler vectorises.
            let (offset, scale) = (self.offset[0], self.scale[0]);
            for (o, v) in out.iter_mut().zip(x) {
                *o = (v - offset) * scale;
            }
            return;
        }
        // The channel of each value (a window is row-major) by a wrapping counter, not
        // an `i % channels` division per value.
        let mut c = 0;
        for (o, v) in out.iter_mut().zip(x) {
            let z = (v - self.offset[c]) * self.scale[c];
            *o = if clamp { z.clamp(0.0, 1.0) } else { z };
            c += 1;
            if c == channels {
                c = 0;
            }
        }
    }

    /// Normalises every row of `data`.
    pub fn apply_batch(&self, data: ArrayView2<'_, f64>) -> ndarray::Array2<f64> {
        let mut out = data.to_owned();
        for mut row in out.rows_mut() {
            let raw = row.to_vec();
            self.apply_into(&raw, row.as_slice_mut().expect("owned rows are contiguous"));
        }
        out
    }
}

fn zscore_stats(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut n, mut mean, mut m2) = (0.0, 0.0, 0.0);
    // Welford: stable for large offsets such as 233 V ± 0.5.
    for v in values {
        n += 1.0;
        let d = v - mean;
        mean += d / n;
        m2 += d * (v - mean);
    }
    let std = if n > 1.0 { (m2 / (n - 1.0)).sqrt() } else { 0.0 };
    (mean, if std > MIN_SPREAD { 1.0 / std } else { 1.0 })
}

fn minmax_stats(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let range = hi - lo;
    if range.is_nan() || range <= MIN_SPREAD {
        // Constant channel: put it mid-scale so deviations either way stay visible.
        return (lo - 0.5, 1.0);
    }
    (lo - 0.1 * range, 1.0 / (1.2 * range))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn zscore_centres_and_scales_each_channel() {
        // two channels, windows of 2 readings
        let data = array![[1.0, 10.0, 3.0, 30.0], [1.0, 10.0, 3.0, 30.0]];
        let n = Normaliser::fit(data.view(), 2, NormaliseMode::Zscore);
        let mut out = [0.0; 4];
        n.apply_into(&[2.0, 20.0, 2.0, 20.0], &mut out);
        assert!(out[0].abs() < 1e-12 && out[1].abs() < 1e-12, "{out:?}");
    }

    #[test]
    fn constant_channel_gives_finite_values() {
        let data = array![[5.0, 5.0], [5.0, 5.0]];
        for mode in [NormaliseMode::Zscore, NormaliseMode::Minmax] {
            let n = Normaliser::fit(data.view(), 1, mode);
            let mut out = [0.0; 2];
            n.apply_into(&[5.0, 7.0], &mut out);
            assert!(out.iter().all(|v| v.is_finite()), "{mode:?}: {out:?}");
            assert!(out[1] > out[0], "{mode:?}: movement must stay visible");
        }
    }

    #[test]
    fn minmax_stays_in_unit_interval() {
        let data = array![[0.0, 1.0], [2.0, 3.0]];
        let n = Normaliser::fit(data.view(), 1, NormaliseMode::Minmax);
        let mut out = [0.0; 2];
        n.apply_into(&[-100.0, 100.0], &mut out);
        assert_eq!(out, [0.0, 1.0]);
    }
}
