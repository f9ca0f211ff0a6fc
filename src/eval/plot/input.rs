//! What a plot reads: the replay CSV ([`read_replay`]) and labelled windows
//! ([`load_labels`]), both through the one offline reader, and [`flag_spans`], which turns
//! flagged rows (alerts, labels) into time spans.

use std::path::Path;

use crate::eval::EvalError;
use crate::eval::series::{EmptyCell, Table, parse_timestamp};

/// The replay CSV columns after the channels (see [`crate::eval::replay::write_csv`]).
/// The channels are the columns between `timestamp` and the first of these; columns
/// after them that plot does not know (a later version's additions) are ignored.
const SCORE_COLUMNS: [&str; 5] = ["score", "pca_score", "threshold", "anomaly_score", "alert"];

/// A parsed replay CSV; empty score cells (before the first model) are NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// Unix seconds per row.
    pub t: Vec<f64>,
    /// Sensor channels: name and one value per row.
    pub channels: Vec<(String, Vec<f64>)>,
    /// Autoencoder score per row.
    pub score: Vec<f64>,
    /// PCA score per row.
    pub pca_score: Vec<f64>,
    /// Alert threshold per row.
    pub threshold: Vec<f64>,
    /// Onset anomaly score in [0, 1] per row.
    pub anomaly_score: Vec<f64>,
    /// Whether the detector was alerting on each row.
    pub alert: Vec<bool>,
}

/// Reads a replay CSV: `timestamp,<channels…>,score,pca_score,threshold,anomaly_score,alert`,
/// through the same [`Table`] reader and timestamp parser as `replay`'s input.
///
/// # Errors
///
/// A [`SeriesError`](crate::eval::series::SeriesError) for a missing column or a bad cell.
pub fn read_replay(path: &Path) -> Result<Replay, EvalError> {
    let table = Table::read(path)?;
    let ts = table.column("timestamp")?;
    let cols = SCORE_COLUMNS
        .iter()
        .map(|name| table.column(name))
        .collect::<Result<Vec<_>, _>>()?;
    let first_score = cols.iter().copied().min().unwrap_or(ts);
    let numbers = |c: usize| table.numbers(c, EmptyCell::Gap);
    let channels = (ts + 1..first_score)
        .map(|c| Ok((table.header()[c].clone(), numbers(c)?)))
        .collect::<Result<Vec<_>, EvalError>>()?;
    Ok(Replay {
        t: table.times(ts)?,
        channels,
        score: numbers(cols[0])?,
        pca_score: numbers(cols[1])?,
        threshold: numbers(cols[2])?,
        anomaly_score: numbers(cols[3])?,
        alert: numbers(cols[4])?
            .into_iter()
            .map(|a| a.is_finite() && a != 0.0)
            .collect(),
    })
}

/// Labelled windows for a plot, as unix-second spans: from NAB's `combined_windows.json`
/// (`key` names the corpus file, e.g. `realKnownCause/nyc_taxi.csv`; it may be left out
/// when the file has one key), or from a CSV with an `anomaly` column (SKAB's files:
/// rows with a non-zero `anomaly` are shaded; the time is the first column).
///
/// # Errors
///
/// An unreadable file, an unknown or missing key, a bound that is not a timestamp, or a
/// CSV without an `anomaly` column.
pub fn load_labels(path: &Path, key: Option<&str>) -> Result<Vec<(f64, f64)>, EvalError> {
    let labels_err = |message: String| EvalError::Labels {
        path: path.to_path_buf(),
        message,
    };
    if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        let table = Table::read(path)?;
        let t = table.times(0)?;
        let anomaly = table.numbers(table.column("anomaly")?, EmptyCell::Reject)?;
        let flags: Vec<bool> = anomaly.iter().map(|&a| a != 0.0).collect();
        return Ok(flag_spans(&t, &flags));
    }
    let windows = crate::eval::nab::load_windows(path)?;
    let key = match key {
        Some(k) => k.to_string(),
        None if windows.len() == 1 => windows.keys().next().cloned().unwrap_or_default(),
        None => {
            return Err(labels_err(
                "name the file with --label-key, e.g. realKnownCause/nyc_taxi.csv".into(),
            ));
        }
    };
    let spans = windows
        .get(&key)
        .ok_or_else(|| labels_err(format!("no key {key:?}")))?;
    let time = |s: &str| parse_timestamp(s).ok_or_else(|| labels_err(format!("bad window bound {s:?}")));
    spans.iter().map(|(a, b)| Ok((time(a)?, time(b)?))).collect()
}

/// Time spans of consecutive flagged rows, each ending at the next row's time.
pub(super) fn flag_spans(t: &[f64], flags: &[bool]) -> Vec<(f64, f64)> {
    let mut spans = Vec::new();
    let mut start = None;
    for i in 0..=flags.len() {
        let on = flags.get(i).copied().unwrap_or(false);
        match (on, start) {
            (true, None) => start = Some(t[i]),
            (false, Some(s)) => {
                spans.push((s, t.get(i).copied().unwrap_or(t[i - 1])));
                start = None;
            }
            _ => {}
        }
    }
    spans
}
