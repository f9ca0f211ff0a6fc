//! Offline evaluation: reading CSV series ([`series`]), replaying them through the
//! detector ([`replay`]), NAB and SKAB scoring of anomaly scores, and plots of replay output.
//!
//! The scorers ([`nab::score_corpus`], [`skab::point_metrics`], [`skab::changepoint_score`])
//! are pure functions over in-memory data; the loaders next to them do the file IO. The
//! `anomalyd eval` and `anomalyd plot` commands drive this module.

pub mod inject;
pub mod nab;
pub mod plot;
pub mod replay;
pub mod report;
pub mod run;
pub mod series;
pub mod skab;

use std::path::PathBuf;

/// Errors from loading evaluation data or writing plots.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file or directory could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file is malformed or has the wrong shape.
    #[error("cannot parse json {path}: {source}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A labelled window names a timestamp that is not a row of the file.
    #[error("{file}: window bound `{timestamp}` is not a timestamp of the file")]
    WindowBound {
        /// The corpus file name, e.g. `realKnownCause/nyc_taxi.csv`.
        file: String,
        /// The window bound that was not found.
        timestamp: String,
    },
    /// No scores file was found for a labelled corpus file.
    #[error("no scores for {file} in {dir} (tried {file} and <detector>_<name>)")]
    MissingScores {
        /// The corpus file name, e.g. `realKnownCause/nyc_taxi.csv`.
        file: String,
        /// The scores directory searched.
        dir: PathBuf,
    },
    /// A file holds no data rows.
    #[error("{path}: no data rows")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A CSV could not be read (every CSV goes through [`series::Table`]).
    #[error(transparent)]
    Series(Box<series::SeriesError>),
    /// The plot output extension is neither `svg` nor `png`.
    #[error("{path}: unsupported plot extension `{extension}`, expected svg or png")]
    PlotExtension {
        /// The requested output file.
        path: PathBuf,
        /// The extension found (empty if none).
        extension: String,
    },
    /// Labelled windows for a plot could not be used.
    #[error("{path}: {message}")]
    Labels {
        /// The labels file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The plotting backend failed.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// The backend's error text.
        message: String,
    },
}

impl From<series::SeriesError> for EvalError {
    fn from(e: series::SeriesError) -> Self {
        EvalError::Series(Box::new(e))
    }
}

/// The shared datasets for tests: `$ANOMALYD_DATASETS`, or `../shared/datasets` beside
/// the repo (`../../shared/datasets` for a worktree one level down). Panics, so a test
/// that needs the data fails rather than skips when it is absent.
#[cfg(test)]
pub(crate) fn test_datasets() -> PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = std::env::var_os("ANOMALYD_DATASETS").map(PathBuf::from);
    let tried: Vec<PathBuf> = env
        .into_iter()
        .chain([
            manifest.join("../shared/datasets"),
            manifest.join("../../shared/datasets"),
        ])
        .collect();
    tried
        .iter()
        .find(|d| d.join("nab/labels/combined_windows.json").is_file() && d.join("skab").is_dir())
        .cloned()
        .unwrap_or_else(|| {
            panic!("datasets not found; tried {tried:?} (set ANOMALYD_DATASETS to the datasets dir)")
        })
}

#[cfg(test)]
mod tests;
