//! Reconstruction models: the autoencoder (the detector) and the PCA baseline.
//!
//! Both map a normalised, flattened window (time-major: index `t * channels + c`) to a
//! reconstruction of the same length; the score is the mean squared error.

pub mod autoencoder;

/// Errors from building or training a model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    /// A hyper-parameter is out of range; the message names it and the value.
    #[error("invalid model parameter: {0}")]
    InvalidParams(String),
    /// Training data does not fit the model.
    #[error("training data has {got} columns, the model expects {expected}")]
    Shape {
        /// Inputs the model was built for.
        expected: usize,
        /// Columns in the data given.
        got: usize,
    },
    /// Too few rows to train on.
    #[error("need at least {needed} training windows, got {got}")]
    TooFewRows {
        /// Minimum rows.
        needed: usize,
        /// Rows given.
        got: usize,
    },
    /// The PCA fit failed inside linfa.
    #[error("pca fit failed: {0}")]
    Pca(String),
}
