//! `anomalyd plot`: a replay CSV drawn for an operator, as SVG or PNG.
//!
//! One panel per channel (all of them up to [`PlotOptions::max_channels`], else the
//! channels farthest from their normal range while alerts are raised), then the
//! autoencoder and PCA scores with the threshold on a log scale, then `anomaly_score`.
//! Alert spans and labelled windows (NAB's label JSON, or a CSV with an `anomaly`
//! column such as a SKAB file) are shaded on every panel; legends sit beside the data.
//!
//! [`read_replay`] reads the replay CSV with the one offline reader
//! ([`crate::eval::series::Table`]) in `input`, with the labels; `layout` picks the
//! panels; the drawing is in `draw`, with the bundled DejaVu Sans font so no system
//! fonts or libraries are needed.

mod draw;
mod input;
mod layout;

pub use input::{Replay, load_labels, read_replay};

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::EvalError;
use layout::build_plot;

/// Channel panels drawn by default.
pub const DEFAULT_MAX_CHANNELS: usize = 6;

/// What to draw besides the replay CSV.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotOptions {
    /// Labelled windows, unix seconds (see [`load_labels`]).
    pub labels: Vec<(f64, f64)>,
    /// At most this many channel panels (at least 1).
    pub max_channels: usize,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            labels: Vec::new(),
            max_channels: DEFAULT_MAX_CHANNELS,
        }
    }
}

/// Registers the bundled DejaVu Sans as "sans-serif" once per process.
fn ensure_font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../../assets/DejaVuSans.ttf"),
        )
        .map_err(|_| "bundled font DejaVuSans.ttf is invalid".to_string())
    })
    .clone()
}

/// Plots a replay CSV to `output` (`.svg` or `.png`); see the module docs for the panels.
///
/// # Errors
///
/// [`EvalError::PlotExtension`] for another extension, a reading error of the CSV, or
/// [`EvalError::Plot`] when the backend fails (e.g. the output is not writable).
pub fn plot_replay(input_csv: &Path, output: &Path, options: &PlotOptions) -> Result<(), EvalError> {
    let extension = output
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if extension != "svg" && extension != "png" {
        return Err(EvalError::PlotExtension {
            path: output.to_path_buf(),
            extension,
        });
    }
    let replay = read_replay(input_csv)?;
    let plot_err = |message: String| EvalError::Plot {
        path: output.to_path_buf(),
        message,
    };
    ensure_font().map_err(plot_err)?;
    let name = input_csv
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let plot = build_plot(&replay, &name, options);
    let size = (draw::WIDTH, draw::height(&plot.panels));
    let result = if extension == "svg" {
        draw::draw(&SVGBackend::new(output, size).into_drawing_area(), &plot).map_err(|e| e.to_string())
    } else {
        draw::draw(&BitMapBackend::new(output, size).into_drawing_area(), &plot).map_err(|e| e.to_string())
    };
    result.map_err(plot_err)
}

#[cfg(test)]
mod tests;
