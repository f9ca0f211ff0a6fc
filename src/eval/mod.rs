//! Offline evaluation: reading CSV series ([`series`]), replaying them through the
//! detector ([`replay`]), NAB and SKAB scoring of anomaly scores, and plots of replay output.
//!
//! The scorers ([`nab::score_corpus`], [`skab::point_metrics`], [`skab::changepoint_score`])
//! are pure functions over in-memory data; the loaders next to them do the file IO. The
//! `anomalyd eval` and `anomalyd plot` commands drive this module.

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
    /// A CSV file is malformed.
    #[error("cannot parse csv {path}: {source}")]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// The underlying error.
        source: csv::Error,
    },
    /// A JSON file is malformed or has the wrong shape.
    #[error("cannot parse json {path}: {source}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A required column is absent from a CSV header.
    #[error("{path}: missing column `{column}`")]
    MissingColumn {
        /// The CSV file.
        path: PathBuf,
        /// The column that was expected.
        column: String,
    },
    /// A cell could not be parsed.
    #[error("{path}:{line}: bad {column} value `{value}`")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line number in the file (the header is line 1).
        line: u64,
        /// The column or field being parsed.
        column: String,
        /// The offending text.
        value: String,
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
    /// A series CSV could not be read.
    #[error(transparent)]
    Series(Box<crate::eval::series::SeriesError>),
    /// The plot output extension is neither `svg` nor `png`.
    #[error("{path}: unsupported plot extension `{extension}`, expected svg or png")]
    PlotExtension {
        /// The requested output file.
        path: PathBuf,
        /// The extension found (empty if none).
        extension: String,
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
