//! `anomalyd plot`: a replay CSV drawn for an operator, as SVG or PNG.
//!
//! One panel per channel (all of them up to [`PlotOptions::max_channels`], else the
//! channels farthest from their normal range while alerts are raised), then the
//! autoencoder and PCA scores with the threshold on a log scale, then `anomaly_score`.
//! Alert spans and labelled windows (NAB's label JSON, or a CSV with an `anomaly`
//! column such as a SKAB file) are shaded on every panel; legends sit beside the data.
//!
//! [`read_replay`] reads the replay CSV with the one offline reader
//! ([`crate::eval::series::Table`]); the drawing is in `draw`, with the bundled DejaVu
//! Sans font so no system fonts or libraries are needed.

mod draw;

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::EvalError;
use super::series::{EmptyCell, Table, parse_timestamp};

/// The replay CSV columns after the channels (see [`crate::eval::replay::write_csv`]).
/// The channels are the columns between `timestamp` and the first of these; columns
/// after them that plot does not know (a later version's additions) are ignored.
const SCORE_COLUMNS: [&str; 5] = ["score", "pca_score", "threshold", "anomaly_score", "alert"];

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
    let windows = super::nab::load_windows(path)?;
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
fn flag_spans(t: &[f64], flags: &[bool]) -> Vec<(f64, f64)> {
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

/// How far a channel sits from its normal range while alerts are raised: the mean |z|
/// over alerting rows, z taken against the rows without an alert. Without alerts, the
/// largest |z| over the file.
fn deviation(v: &[f64], alert: &[bool]) -> f64 {
    let finite = |on: Option<bool>| {
        v.iter()
            .zip(alert)
            .filter(move |(x, a)| x.is_finite() && on.is_none_or(|on| **a == on))
            .map(|(x, _)| *x)
    };
    let normal: Vec<f64> = if finite(Some(false)).next().is_some() {
        finite(Some(false)).collect()
    } else {
        finite(None).collect()
    };
    let n = normal.len().max(1) as f64;
    let mean = normal.iter().sum::<f64>() / n;
    let sd = (normal.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    // A constant normal part: any move away from it is large, not infinite.
    let sd = sd.max(1e-9 * (1.0 + mean.abs()));
    let z = |x: f64| (x - mean).abs() / sd;
    if alert.iter().any(|a| *a) {
        let during: Vec<f64> = finite(Some(true)).map(z).collect();
        during.iter().sum::<f64>() / during.len().max(1) as f64
    } else {
        finite(None).map(z).fold(0.0, f64::max)
    }
}

/// The channels to draw: every one in file order when they fit in `max`, else the `max`
/// with the largest [`deviation`], largest first.
fn pick_channels(r: &Replay, max: usize) -> Vec<usize> {
    let max = max.max(1);
    if r.channels.len() <= max {
        return (0..r.channels.len()).collect();
    }
    let dev: Vec<f64> = r.channels.iter().map(|(_, v)| deviation(v, &r.alert)).collect();
    let mut order: Vec<usize> = (0..r.channels.len()).collect();
    order.sort_by(|&a, &b| dev[b].total_cmp(&dev[a]).then(a.cmp(&b)));
    order.truncate(max);
    order
}

/// Palette index past the palette's end: black, for the threshold.
const THRESHOLD_COLOR: usize = usize::MAX;

/// One line of a panel.
struct Line {
    name: String,
    values: Vec<f64>,
    /// Index into the palette; past its end, black.
    color: usize,
    thin: bool,
}

/// One panel: its lines, y range and height in pixels.
struct Panel {
    y_desc: String,
    height: u32,
    log: bool,
    y: (f64, f64),
    lines: Vec<Line>,
}

/// Everything `draw` needs.
struct Plot {
    title: String,
    t: Vec<f64>,
    unix_time: bool,
    panels: Vec<Panel>,
    /// Alert spans, then labelled windows.
    spans: [(&'static str, Vec<(f64, f64)>); 2],
}

impl Plot {
    fn x_range(&self) -> (f64, f64) {
        let (a, b) = (self.t[0], self.t[self.t.len() - 1]);
        if b > a { (a, b) } else { (a, a + 1.0) }
    }
}

/// Finite min and max over several series, padded by 5 %; (0, 1) if none is finite.
fn y_range<'a>(series: impl IntoIterator<Item = &'a Vec<f64>>) -> (f64, f64) {
    let (lo, hi) = series
        .into_iter()
        .flatten()
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    (lo - pad, hi + pad)
}

/// Positive finite min and max, widened by half a decade; (10⁻³, 1) if none.
fn log_range<'a>(series: impl IntoIterator<Item = &'a Vec<f64>>) -> (f64, f64) {
    let (lo, hi) = series
        .into_iter()
        .flatten()
        .filter(|x| x.is_finite() && **x > 0.0)
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if lo > hi {
        return (1e-3, 1.0);
    }
    (lo / 3.0, hi * 3.0)
}

/// Lays out `r` as panels.
fn build_plot(r: &Replay, title: &str, options: &PlotOptions) -> Plot {
    let picked = pick_channels(r, options.max_channels);
    let channel_height = if picked.len() <= 2 { 200 } else { 140 };
    let mut panels: Vec<Panel> = picked
        .iter()
        .map(|&c| {
            let (name, values) = &r.channels[c];
            Panel {
                // The name is in the legend; a long one would not fit up the axis.
                y_desc: String::new(),
                height: channel_height,
                log: false,
                y: y_range([values]),
                lines: vec![Line {
                    name: name.clone(),
                    values: values.clone(),
                    color: 0,
                    thin: true,
                }],
            }
        })
        .collect();
    let line = |name: &str, values: &Vec<f64>, color| Line {
        name: name.into(),
        values: values.clone(),
        color,
        // Only the threshold, a step line without spikes, is drawn thick.
        thin: color != THRESHOLD_COLOR,
    };
    panels.push(Panel {
        y_desc: "score (log)".into(),
        height: 240,
        log: true,
        y: log_range([&r.score, &r.pca_score, &r.threshold]),
        lines: vec![
            line("AE score", &r.score, 0),
            line("PCA score", &r.pca_score, 1),
            line("threshold", &r.threshold, THRESHOLD_COLOR),
        ],
    });
    panels.push(Panel {
        y_desc: "anomaly_score".into(),
        height: 130,
        log: false,
        y: (0.0, 1.05),
        lines: vec![line("anomaly_score", &r.anomaly_score, 3)],
    });
    let alerts = flag_spans(&r.t, &r.alert);
    let mut title = format!("{title}: {} rows, {} alert(s)", r.t.len(), alerts.len());
    if picked.len() < r.channels.len() {
        title += &format!(
            "; {} of {} channels, most deviant during alerts first",
            picked.len(),
            r.channels.len()
        );
    }
    Plot {
        title,
        t: r.t.clone(),
        unix_time: r.t[0] > 1e8,
        panels,
        spans: [("alert", alerts), ("labelled window", options.labels.clone())],
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
mod tests {
    use super::*;

    /// Writes a small replay CSV: `channels` channels (the second one jumps during the
    /// alert), gaps in the scores, one alert run, and a trailing `state` column such as a
    /// later version writes.
    fn build_replay(dir: &Path, rfc3339: bool, channels: usize) -> std::path::PathBuf {
        let path = dir.join("replay.csv");
        let names: Vec<String> = (0..channels).map(|c| format!("ch{c}")).collect();
        let mut body = format!(
            "timestamp,{},score,pca_score,threshold,anomaly_score,alert,state\n",
            names.join(",")
        );
        for i in 0..120 {
            let t = 1_700_000_000 + 10 * i;
            let ts = if rfc3339 {
                chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339()
            } else {
                t.to_string()
            };
            let x = i as f64 / 10.0;
            let alerting = (60..70).contains(&i);
            let (score, pca) = if i < 20 {
                (String::new(), String::new())
            } else {
                let spike = if alerting { 500.0 } else { 1.0 };
                (
                    format!("{}", 1e-3 * (1.0 + x.sin().abs()) * spike),
                    format!("{}", 0.01 + 0.001 * x),
                )
            };
            let values: Vec<String> = (0..channels)
                .map(|c| {
                    let jump = if c == 1 && alerting { 10.0 } else { 0.0 };
                    format!("{}", 20.0 + (x + c as f64).sin() + jump)
                })
                .collect();
            let state = if alerting { "raised" } else { "normal" };
            body += &format!(
                "{ts},{},{score},{pca},0.05,{},{},{state}\n",
                values.join(","),
                u8::from(alerting),
                u8::from(alerting)
            );
        }
        std::fs::write(&path, body).unwrap();
        path
    }

    fn options(labels: Vec<(f64, f64)>, max_channels: usize) -> PlotOptions {
        PlotOptions { labels, max_channels }
    }

    /// The `x` of the first `<text>` element whose content is exactly `content`.
    fn text_x(svg: &str, content: &str) -> Option<f64> {
        svg.split("<text").skip(1).find_map(|el| {
            let (attrs, rest) = el.split_once('>')?;
            if rest.split('<').next()?.trim() != content {
                return None;
            }
            let x = attrs.split("x=\"").nth(1)?.split('"').next()?;
            x.parse().ok()
        })
    }

    #[test]
    fn svg_has_a_panel_per_channel_scores_and_legends_beside_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let input = build_replay(dir.path(), true, 2);
        let out = dir.path().join("plot.svg");
        plot_replay(
            &input,
            &out,
            &options(vec![(1_700_000_550.0, 1_700_000_750.0)], 6),
        )
        .unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.contains("<svg"));
        for text in [
            "ch0",
            "ch1",
            "AE score",
            "PCA score",
            "threshold",
            "anomaly_score",
            "alert",
            "labelled window",
            "score (log)",
        ] {
            let x = text_x(&svg, text).unwrap_or_else(|| panic!("svg lacks a text {text:?}"));
            // Legend rows and y captions: never inside the data area of a panel.
            assert!(
                x > f64::from(draw::WIDTH - 200) || x < 80.0,
                "{text:?} at x = {x} lies over the data"
            );
        }
        assert!(svg.contains("replay.csv: 120 rows, 1 alert(s)"), "title");
    }

    #[test]
    fn png_plot_is_a_non_empty_png() {
        let dir = tempfile::tempdir().unwrap();
        let input = build_replay(dir.path(), false, 3);
        let out = dir.path().join("plot.png");
        plot_replay(&input, &out, &PlotOptions::default()).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert!(bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    }

    #[test]
    fn unknown_extension_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let input = build_replay(dir.path(), false, 1);
        let err = plot_replay(&input, &dir.path().join("plot.jpg"), &PlotOptions::default()).unwrap_err();
        assert!(err.to_string().contains("`jpg`"), "{err}");
    }

    #[test]
    fn replay_parses_both_timestamp_forms_empty_cells_and_ignores_later_columns() {
        let dir = tempfile::tempdir().unwrap();
        let a = read_replay(&build_replay(dir.path(), true, 2)).unwrap();
        let b = read_replay(&build_replay(dir.path(), false, 2)).unwrap();
        assert_eq!(a.t, b.t);
        let names: Vec<&str> = a.channels.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["ch0", "ch1"], "`state` is not a channel");
        assert!(a.score[0].is_nan() && a.score[30].is_finite());
        assert_eq!(a.anomaly_score[65], 1.0);
        assert_eq!(flag_spans(&a.t, &a.alert), vec![(a.t[60], a.t[70])]);
    }

    #[test]
    fn replay_without_a_score_column_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "timestamp,v,alert\n1,2,0\n").unwrap();
        let err = read_replay(&path).unwrap_err().to_string();
        assert!(err.contains("no column named \"score\""), "{err}");
    }

    #[test]
    fn many_channels_keep_the_most_deviant_during_alerts_first() {
        let dir = tempfile::tempdir().unwrap();
        let r = read_replay(&build_replay(dir.path(), false, 8)).unwrap();
        let picked = pick_channels(&r, 3);
        assert_eq!(picked.len(), 3);
        assert_eq!(picked[0], 1, "ch1 jumps during the alert");
        assert_eq!(pick_channels(&r, 8), (0..8).collect::<Vec<_>>());
        let plot = build_plot(&r, "x", &options(vec![], 3));
        assert_eq!(plot.panels.len(), 3 + 2);
        assert!(plot.title.contains("3 of 8 channels"), "{}", plot.title);
    }

    #[test]
    fn labels_come_from_nab_json_or_an_anomaly_column() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("windows.json");
        std::fs::write(
            &json,
            r#"{"a/x.csv": [["2020-01-01 00:00:00.000000", "2020-01-01 01:00:00.000000"]], "a/y.csv": []}"#,
        )
        .unwrap();
        let t0 = parse_timestamp("2020-01-01 00:00:00").unwrap();
        assert_eq!(
            load_labels(&json, Some("a/x.csv")).unwrap(),
            vec![(t0, t0 + 3600.0)]
        );
        let err = load_labels(&json, None).unwrap_err().to_string();
        assert!(err.contains("--label-key"), "{err}");
        let err = load_labels(&json, Some("a/z.csv")).unwrap_err().to_string();
        assert!(err.contains("a/z.csv"), "{err}");

        let csv = dir.path().join("1.csv");
        std::fs::write(
            &csv,
            "datetime;A;anomaly;changepoint\n2020-01-01 00:00:00;1;0;0\n2020-01-01 00:00:01;1;1.0;1\n\
             2020-01-01 00:00:02;1;1.0;0\n2020-01-01 00:00:03;1;0.0;0\n",
        )
        .unwrap();
        assert_eq!(load_labels(&csv, None).unwrap(), vec![(t0 + 1.0, t0 + 3.0)]);
    }

    #[test]
    fn deviation_ranks_a_jump_during_alerts_over_noise() {
        let alert: Vec<bool> = (0..100).map(|i| (50..60).contains(&i)).collect();
        let quiet: Vec<f64> = (0..100).map(|i| (i as f64).sin()).collect();
        let jump: Vec<f64> = (0..100)
            .map(|i| (i as f64).cos() + if alert[i] { 5.0 } else { 0.0 })
            .collect();
        assert!(deviation(&jump, &alert) > 3.0 * deviation(&quiet, &alert));
        let constant = vec![2.0; 100];
        assert!(deviation(&constant, &alert).is_finite());
    }
}
