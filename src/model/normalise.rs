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
        assert!(channels > 0, "bad channel count");
        let readings = data.rows().into_iter().flat_map(move |r| {
            let window = r.to_slice().expect("standard layout");
            assert!(window.len() % channels == 0, "bad channel count");
            window.chunks_exact(channels).map(|reading| (reading, 1))
        });
        Self::fit_counted(readings, channels, mode)
    }

    /// Fits channel statistics on readings, each given with the number of training
    /// windows it appears in (the training buffer's distinct `f32` readings: sliding
    /// windows hold each reading up to `size` times, and the statistics are those of the
    /// windows, at 1/`size` of the work).
    ///
    /// # Panics
    ///
    /// If `channels` is zero or a reading is not `channels` long (a programming error).
    pub fn fit_counted<'a, T>(
        readings: impl Iterator<Item = (&'a [T], u32)> + Clone,
        channels: usize,
        mode: NormaliseMode,
    ) -> Self
    where
        T: Copy + Into<f64> + 'a,
    {
        assert!(channels > 0, "bad channel count");
        let readings = readings.inspect(move |(r, _)| assert_eq!(r.len(), channels, "bad channel count"));
        let (offset, scale) = match mode {
            NormaliseMode::Zscore => zscore_stats(readings, channels),
            NormaliseMode::Minmax => minmax_stats(readings, channels),
        };
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
}

/// Per-channel `(offset, scale)` lists.
type Stats = (Vec<f64>, Vec<f64>);

/// Mean and inverse standard deviation per channel of readings counted `count` times
/// each, by two passes (the weighted sum, then the weighted squared deviations from the
/// mean): stable for large offsets such as 233 V ± 0.5, without a division per value.
fn zscore_stats<'a, T>(readings: impl Iterator<Item = (&'a [T], u32)> + Clone, channels: usize) -> Stats
where
    T: Copy + Into<f64> + 'a,
{
    let mut n = 0.0;
    let mut mean = vec![0.0; channels];
    for (reading, count) in readings.clone() {
        let w = f64::from(count);
        n += w;
        mean.iter_mut()
            .zip(reading)
            .for_each(|(s, &v)| *s += w * v.into());
    }
    mean.iter_mut().for_each(|s| *s /= n);
    let mut m2 = vec![0.0; channels];
    for (reading, count) in readings {
        let w = f64::from(count);
        for ((m2, &v), mean) in m2.iter_mut().zip(reading).zip(&mean) {
            let d = v.into() - mean;
            *m2 += w * d * d;
        }
    }
    let scale = m2.iter().map(|m2| {
        let std = if n > 1.0 { (m2 / (n - 1.0)).sqrt() } else { 0.0 };
        if std > MIN_SPREAD { 1.0 / std } else { 1.0 }
    });
    (mean, scale.collect())
}

/// The training range per channel, widened by 10 % each side.
fn minmax_stats<'a, T>(readings: impl Iterator<Item = (&'a [T], u32)>, channels: usize) -> Stats
where
    T: Copy + Into<f64> + 'a,
{
    let mut lo = vec![f64::INFINITY; channels];
    let mut hi = vec![f64::NEG_INFINITY; channels];
    for (reading, _) in readings.filter(|&(_, count)| count > 0) {
        for ((lo, hi), &v) in lo.iter_mut().zip(&mut hi).zip(reading) {
            *lo = lo.min(v.into());
            *hi = hi.max(v.into());
        }
    }
    (lo.iter().zip(&hi))
        .map(|(&lo, &hi)| {
            let range = hi - lo;
            if range.is_nan() || range <= MIN_SPREAD {
                // Constant channel: put it mid-scale so deviations either way stay visible.
                return (lo - 0.5, 1.0);
            }
            (lo - 0.1 * range, 1.0 / (1.2 * range))
        })
        .unzip()
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
    fn counted_readings_fit_as_the_windows_they_stand_for() {
        // Windows of 3 readings sliding by one over 6 two-channel readings: the readings
        // counted 1, 2, 3, 3, 2, 1 times give the windows' statistics.
        let readings: Vec<[f64; 2]> = (0..6).map(|t| [233.0 + t as f64 * 0.1, (t * t) as f64]).collect();
        let windows = ndarray::Array2::from_shape_fn((4, 6), |(w, i)| readings[w + i / 2][i % 2]);
        let counts = [1, 2, 3, 3, 2, 1];
        for mode in [NormaliseMode::Zscore, NormaliseMode::Minmax] {
            let want = Normaliser::fit(windows.view(), 2, mode);
            let counted = readings.iter().map(<[f64; 2]>::as_slice).zip(counts);
            let got = Normaliser::fit_counted(counted, 2, mode);
            for (g, w) in (got.offset.iter().chain(&got.scale)).zip(want.offset.iter().chain(&want.scale)) {
                assert!((g - w).abs() <= 1e-12 * w.abs(), "{mode:?}: {got:?} vs {want:?}");
            }
        }
        // A reading no window holds any more counts for nothing, not even its range.
        let stale = [[-50.0, 1e6]];
        let counted = (stale.iter().map(<[f64; 2]>::as_slice).zip([0]))
            .chain(readings.iter().map(<[f64; 2]>::as_slice).zip(counts));
        let got = Normaliser::fit_counted(counted, 2, NormaliseMode::Minmax);
        let want = Normaliser::fit(windows.view(), 2, NormaliseMode::Minmax);
        assert_eq!(got, want);
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
