//! The detector's model: a dense MLP autoencoder written by hand on ndarray (f64
//! weights and scoring, an f32 training pass; seeded, deterministic).
//!
//! It maps a normalised, flattened window to a reconstruction of the same width through
//! a narrow latent code; the detector scores a window by its reconstruction error. Three
//! kinds are supported ([`AutoencoderKind`]): undercomplete, sparse (L1/L2 penalty on the
//! code) and denoising (noise on the input, clean target). Training is mini-batch Adam with
//! early stopping and warm starts ([`Autoencoder::fit`]); scoring one window is
//! allocation-free ([`Autoencoder::reconstruct_into`]).
//!
//! This module does not normalise, window or threshold; the detector does.
//!
//! ```
//! use anomalyd::model::autoencoder::{Autoencoder, AutoencoderParams};
//! let params = AutoencoderParams::new(8).hidden(vec![6]).latent(2).epochs(2).check().unwrap();
//! let data = ndarray::Array2::from_shape_fn((64, 8), |(i, j)| ((i + j) as f64 * 0.3).sin());
//! let mut ae = Autoencoder::new(&params);
//! let report = ae.fit(&params, data.view()).unwrap();
//! assert!(report.train_loss.is_finite());
//! let (mut out, mut scratch) = (vec![0.0; 8], Vec::new());
//! ae.reconstruct_into(data.row(0).as_slice().unwrap(), &mut out, &mut scratch);
//! ```

#[cfg(target_arch = "x86_64")]
mod avx2;
mod net;
mod params;
mod scalar;
mod train;
mod workspace;

pub use net::Autoencoder;
pub use params::{
    Activation, AutoencoderKind, AutoencoderParams, AutoencoderValidParams, Loss, Noise, Penalty,
};
pub use train::TrainReport;

#[cfg(test)]
mod tests;
