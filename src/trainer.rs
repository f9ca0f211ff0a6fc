//! Training: the bounded buffer of recent windows, and the pure function that turns a
//! [`TrainJob`] into a new [`Model`].
//!
//! The detector only *asks* for a model (it emits a `TrainJob`); who runs the job
//! decides where the CPU time goes. `replay` and `eval` call [`train`] inline, so runs
//! are deterministic; the daemon runs it on a blocking thread and keeps scoring with the
//! old model until the new one is installed.

use std::sync::Arc;

use ndarray::Array2;

use crate::config::ModelConfig;
use crate::model::autoencoder::Autoencoder;
use crate::model::normalise::Normaliser;
use crate::model::pca::PcaModel;
use crate::model::{Model, ModelError};
use crate::reading::SensorId;

/// A fixed-capacity ring of flattened windows, oldest evicted first. One flat
/// allocation, so adding a window never allocates.
#[derive(Clone, Debug)]
pub struct TrainingBuffer {
    data: Vec<f64>,
    width: usize,
    capacity: usize,
    len: usize,
    /// Slot the next window goes into.
    head: usize,
}

impl TrainingBuffer {
    /// A buffer for `capacity` windows of `width` values.
    pub fn new(capacity: usize, width: usize) -> Self {
        Self {
            data: vec![0.0; capacity * width],
            width,
            capacity,
            len: 0,
            head: 0,
        }
    }

    /// Windows held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a window, evicting the oldest when full.
    ///
    /// # Panics
    ///
    /// If `window` is not `width` long (a programming error).
    pub fn push(&mut self, window: &[f64]) {
        assert_eq!(window.len(), self.width, "training window width");
        let at = self.head * self.width;
        self.data[at..at + self.width].copy_from_slice(window);
        self.head = (self.head + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// The newest `n` windows (fewer if fewer are held), oldest of them first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &[f64]> + '_ {
        let n = n.min(self.len);
        (0..n).map(move |i| {
            let slot = (self.head + self.capacity - n + i) % self.capacity;
            &self.data[slot * self.width..(slot + 1) * self.width]
        })
    }

    /// The windows, oldest first, as `len × width`.
    pub fn to_array(&self) -> Array2<f64> {
        let start = if self.len < self.capacity { 0 } else { self.head };
        let mut out = Array2::zeros((self.len, self.width));
        for (i, mut row) in out.rows_mut().into_iter().enumerate() {
            let slot = (start + i) % self.capacity;
            let at = slot * self.width;
            row.assign(&ndarray::ArrayView1::from(&self.data[at..at + self.width]));
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
    /// Raw training windows, oldest first (`rows × size·channels`).
    pub windows: Array2<f64>,
    /// Channels per reading.
    pub channels: usize,
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
    let width = job.windows.ncols();
    let params = config.ae_params(width)?;
    let normaliser = Normaliser::fit(job.windows.view(), job.channels, config.normalise);
    let data = normaliser.apply_batch(job.windows.view());
    let mut ae = match &job.warm {
        Some(m) if m.ae.n_inputs() == width => m.ae.clone(),
        _ => Autoencoder::new(&params),
    };
    ae.fit(&params, data.view())?;
    let pca = PcaModel::fit(data.view(), config.pca_components.min(width - 1))?;
    Ok(Model {
        version: job.version,
        channels: job.channels,
        normaliser,
        ae,
        pca,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_keeps_the_newest_windows_in_order() {
        let mut b = TrainingBuffer::new(3, 2);
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

    #[test]
    fn buffer_below_capacity_starts_at_the_first_window() {
        let mut b = TrainingBuffer::new(4, 1);
        b.push(&[7.0]);
        b.push(&[8.0]);
        assert_eq!(b.to_array().column(0).to_vec(), vec![7.0, 8.0]);
    }
}
