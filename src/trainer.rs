//! Training: the bounded buffer of recent windows, and the pure function that turns a
//! [`TrainJob`] into a new [`Model`].
//!
//! The detector only *asks* for a model (it emits a `TrainJob`); who runs the job
//! decides where the CPU time goes. `replay` and `eval` call [`train`] inline, so runs
//! are deterministic; the daemon runs it on a blocking thread and keeps scoring with the
//! old model until the new one is installed.

use std::collections::VecDeque;
use std::sync::Arc;

use ndarray::{Array2, Axis};

use crate::config::ModelConfig;
use crate::model::autoencoder::Autoencoder;
use crate::model::normalise::Normaliser;
use crate::model::pca::PcaModel;
use crate::model::{Model, ModelError};
use crate::reading::SensorId;

/// The newest `capacity` flattened windows, oldest evicted first, stored compactly.
///
/// Consecutive windows at stride `s` share all but `s` readings, so a window that
/// continues the newest one (its first `width − step` values equal the newest window's
/// last ones, bit for bit) adds only its `step` new values to one value stream; any
/// other window (after a gap, a skipped flagged window, or a per-window transform) adds
/// all `width`. Every window is a contiguous slice of the stream. For the default
/// 3,000 windows of 32 readings this holds ~3,031 readings per channel instead of
/// 96,000 values: ~30× less memory per sensor, and exactly the same windows.
#[derive(Clone, Debug)]
pub struct TrainingBuffer {
    /// Values; `stream[i]` has absolute position `base + i`.
    stream: Vec<f64>,
    base: u64,
    /// Absolute position of each window's first value, oldest first.
    starts: VecDeque<u64>,
    width: usize,
    /// Values between consecutive windows (stride × channels).
    step: usize,
    capacity: usize,
}

impl TrainingBuffer {
    /// A buffer for `capacity` windows of `width` values, consecutive windows being
    /// `step` values apart (stride × channels).
    pub fn new(capacity: usize, width: usize, step: usize) -> Self {
        Self {
            stream: Vec::new(),
            base: 0,
            starts: VecDeque::new(),
            width,
            step: step.max(1),
            capacity: capacity.max(1),
        }
    }

    /// Forgets every window.
    pub fn clear(&mut self) {
        self.base += self.stream.len() as u64;
        self.stream.clear();
        self.starts.clear();
    }

    /// Windows held.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Values stored, for footprint checks: about `(len + width/step) × step` for an
    /// unbroken run of windows.
    pub fn stored_values(&self) -> usize {
        self.stream.len()
    }

    /// Adds a window, evicting the oldest when full.
    ///
    /// # Panics
    ///
    /// If `window` is not `width` long (a programming error).
    pub fn push(&mut self, window: &[f64]) {
        assert_eq!(window.len(), self.width, "training window width");
        let end = self.base + self.stream.len() as u64;
        let shared = self.width.saturating_sub(self.step);
        // Every window ends where the stream ends, so the newest window's tail is the
        // stream's tail (and the stream holds at least `width` values when non-empty).
        let continues = shared > 0
            && !self.starts.is_empty()
            && self.stream[self.stream.len() - shared..]
                .iter()
                .zip(&window[..shared])
                .all(|(a, b)| a.to_bits() == b.to_bits());
        if continues {
            self.stream.extend_from_slice(&window[shared..]);
            self.starts.push_back(end - shared as u64);
        } else {
            self.stream.extend_from_slice(window);
            self.starts.push_back(end);
        }
        if self.starts.len() > self.capacity {
            self.starts.pop_front();
            self.compact();
        }
    }

    /// Drops values no window needs any more once they are at least half the stream,
    /// so the cost is amortised O(1) per window.
    fn compact(&mut self) {
        let Some(&first) = self.starts.front() else {
            return;
        };
        let unused = (first - self.base) as usize;
        if unused > 0 && unused * 2 >= self.stream.len() {
            self.stream.drain(..unused);
            self.base = first;
        }
    }

    fn window(&self, start: u64) -> &[f64] {
        let at = (start - self.base) as usize;
        &self.stream[at..at + self.width]
    }

    /// The newest `n` windows (fewer if fewer are held), oldest of them first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &[f64]> + '_ {
        let n = n.min(self.starts.len());
        self.starts
            .iter()
            .skip(self.starts.len() - n)
            .map(move |&start| self.window(start))
    }

    /// The windows, oldest first, as `len × width`.
    pub fn to_array(&self) -> Array2<f64> {
        let mut out = Array2::zeros((self.starts.len(), self.width));
        for (mut row, &start) in out.rows_mut().into_iter().zip(&self.starts) {
            row.assign(&ndarray::ArrayView1::from(self.window(start)));
        }
        out
    }
}

/// A request for a new model generation.
#[derive(Clone, Debug)]
pub struct TrainJob {
    /// Whose model.
    pub sensor: SensorId,
    /// Version the new model will carry.
    pub version: u64,
    /// Raw training windows, oldest first, compact (a queued job holds ~100 KB, not
    /// the 2.3 MB of its windows laid out; they are laid out when training starts).
    pub windows: TrainingBuffer,
    /// Channels per reading.
    pub channels: usize,
    /// How many of the newest windows arrived since the previous job.
    pub fresh: usize,
    /// The current model, to warm-start from.
    pub warm: Option<Arc<Model>>,
}

/// Fits normaliser, autoencoder (warm-started when possible) and PCA on the job's
/// windows. Pure and deterministic for a given job and config.
///
/// # Errors
///
/// A [`ModelError`] if the parameters do not fit the window width or there is too
/// little data.
pub fn train(job: &TrainJob, config: &ModelConfig) -> Result<Model, ModelError> {
    let windows = job.windows.to_array();
    let width = windows.ncols();
    let params = config.ae_params(width)?;
    let normaliser = Normaliser::fit(windows.view(), job.channels, config.normalise);
    let data = normaliser.apply_batch(windows.view());
    drop(windows);
    // A warm start fine-tunes on what is new (plus as much replayed older data) instead
    // of refitting the whole buffer: about half the cost of a NAB replay, and no loss of
    // quality (docs/quality.md, session 4).
    let ae = match &job.warm {
        Some(m) if m.ae.n_inputs() == width => {
            let mut ae = m.ae.clone();
            let rows = finetune_rows(data.nrows(), job.fresh, params.seed() ^ job.version);
            ae.fit(&params, data.select(Axis(0), &rows).view())?;
            ae
        }
        _ => {
            let mut ae = Autoencoder::new(&params);
            ae.fit(&params, data.view())?;
            ae
        }
    };
    let pca = PcaModel::fit(data.view(), config.pca_components.min(width - 1))?;
    Ok(Model {
        version: job.version,
        channels: job.channels,
        normaliser,
        ae,
        pca,
    })
}

/// The rows a warm-started model is fine-tuned on: the `fresh` newest windows and as
/// many older ones drawn at random (so it does not forget what it knew), oldest first,
/// so the held-out validation tail is new data.
fn finetune_rows(len: usize, fresh: usize, seed: u64) -> Vec<usize> {
    use rand::SeedableRng;
    let fresh = fresh.clamp(1, len);
    let older = len - fresh;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut rows = rand::seq::index::sample(&mut rng, older, fresh.min(older)).into_vec();
    rows.sort_unstable();
    rows.extend(older..len);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_keeps_the_newest_windows_in_order() {
        let mut b = TrainingBuffer::new(3, 2, 2);
        for i in 0..5 {
            b.push(&[i as f64, -(i as f64)]);
        }
        let a = b.to_array();
        assert_eq!(a.column(0).to_vec(), vec![2.0, 3.0, 4.0]);
        assert_eq!(b.len(), 3);
        let newest: Vec<f64> = b.newest(2).map(|w| w[0]).collect();
        assert_eq!(newest, vec![3.0, 4.0]);
        assert_eq!(b.newest(10).count(), 3);
    }

    /// Windows of `size` readings × 2 channels sliding by `stride` over a ramp, with a
    /// break (a jump) every 37 readings so some windows do not continue the previous.
    fn sliding(n: usize, size: usize, stride: usize) -> Vec<Vec<f64>> {
        let reading = |t: usize| [t as f64 + (t / 37) as f64 * 1000.0, -(t as f64)];
        (0..n)
            .map(|w| (w * stride..w * stride + size).flat_map(reading).collect())
            .collect()
    }

    #[test]
    fn compact_buffer_returns_exactly_the_windows_pushed() {
        for (size, stride) in [(8, 1), (8, 3), (4, 4), (3, 5)] {
            let windows = sliding(200, size, stride);
            let mut b = TrainingBuffer::new(50, size * 2, stride * 2);
            for (i, w) in windows.iter().enumerate() {
                // Skip some, as skip_flagged does, to break the chain now and then.
                if i % 23 != 5 {
                    b.push(w);
                }
            }
            let kept: Vec<&Vec<f64>> = windows
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 23 != 5)
                .map(|(_, w)| w)
                .collect();
            let want = &kept[kept.len() - 50..];
            let got = b.to_array();
            for (row, w) in got.rows().into_iter().zip(want) {
                assert_eq!(row.to_vec(), **w, "size {size} stride {stride}");
            }
            let newest: Vec<Vec<f64>> = b.newest(7).map(<[f64]>::to_vec).collect();
            assert_eq!(
                newest,
                want[43..].iter().map(|w| (*w).clone()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn sliding_windows_are_stored_once_per_reading() {
        let (size, channels, capacity) = (32, 3, 3000);
        let mut b = TrainingBuffer::new(capacity, size * channels, channels);
        let mut window: Vec<f64> = (0..size * channels).map(|i| i as f64).collect();
        for t in 0..10_000 {
            b.push(&window);
            window.drain(..channels);
            window.extend((0..channels).map(|c| (size * channels + t * channels + c) as f64));
        }
        assert_eq!(b.len(), capacity);
        // At most twice the live span (compaction is lazy), far below capacity × width.
        let live = (capacity + size) * channels;
        assert!(b.stored_values() <= 2 * live, "{} values", b.stored_values());
        assert!(b.stored_values() * 10 < capacity * size * channels);
    }

    #[test]
    fn finetuning_sees_every_fresh_window_and_as_many_older_ones() {
        let rows = finetune_rows(1000, 100, 7);
        assert_eq!(rows.len(), 200);
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert_eq!(rows[100..], (900..1000).collect::<Vec<_>>()[..]);
        assert!(rows[..100].iter().all(|&r| r < 900));
        // Deterministic per seed, different across seeds.
        assert_eq!(rows, finetune_rows(1000, 100, 7));
        assert_ne!(rows, finetune_rows(1000, 100, 8));
        // More fresh windows than older ones: everything, once.
        assert_eq!(finetune_rows(10, 8, 1), (0..10).collect::<Vec<_>>());
        // Nothing new (a retried job): still one row to learn from.
        assert_eq!(finetune_rows(10, 0, 1).len(), 2);
    }

    #[test]
    fn buffer_below_capacity_starts_at_the_first_window() {
        let mut b = TrainingBuffer::new(4, 1, 1);
        b.push(&[7.0]);
        b.push(&[8.0]);
        assert_eq!(b.to_array().column(0).to_vec(), vec![7.0, 8.0]);
    }
}
