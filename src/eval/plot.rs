//! Plots of replay output (`anomalyd plot`): channels, scores and alert/label spans as SVG or PNG.
//!
//! [`read_replay`] parses the replay CSV; [`plot_replay`] draws it with plotters, using the
//! bundled DejaVu Sans font so no system fonts or libraries are needed.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, RelativeSize, register_font};

use super::EvalError;

/// Output size in pixels.
const SIZE: (u32, u32) = (1200, 800);

/// Series colours, cycled.
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

/// Columns of the replay CSV that are not sensor channels.
const KNOWN: [&str; 6] = [
    "timestamp",
    "score",
    "pca_score",
    "threshold",
    "anomaly_score",
    "alert",
];

/// A parsed replay CSV; missing or empty numeric cells are NaN.
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
    /// Whether the detector was alerting on each row.
    pub alert: Vec<bool>,
}

/// Parses a timestamp cell: RFC 3339 or unix seconds.
fn parse_time(s: &str) -> Option<f64> {
    let s = s.trim();
    s.parse::<f64>().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_millis() as f64 / 1000.0)
    })
}

/// Reads a replay CSV: `timestamp,<channels…>,score,pca_score,threshold,anomaly_score,alert`.
pub fn read_replay(path: &Path) -> Result<Replay, EvalError> {
    let csv_err = |source| EvalError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(csv_err)?;
    let headers = reader.headers().map_err(csv_err)?.clone();
    let find = |name: &str| headers.iter().position(|h| h.trim() == name);
    let missing = |column: &str| EvalError::MissingColumn {
        path: path.to_path_buf(),
        column: column.into(),
    };
    let ts_col = find("timestamp").ok_or_else(|| missing("timestamp"))?;
    let alert_col = find("alert").ok_or_else(|| missing("alert"))?;
    let (score_col, pca_col, thr_col) = (find("score"), find("pca_score"), find("threshold"));
    let channel_cols: Vec<usize> = (0..headers.len())
        .filter(|&c| !KNOWN.contains(&headers[c].trim()))
        .collect();
    let mut r = Replay {
        t: Vec::new(),
        channels: channel_cols
            .iter()
            .map(|&c| (headers[c].trim().to_string(), Vec::new()))
            .collect(),
        score: Vec::new(),
        pca_score: Vec::new(),
        threshold: Vec::new(),
        alert: Vec::new(),
    };
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| p.line());
        let bad = |c: usize| EvalError::BadValue {
            path: path.to_path_buf(),
            line,
            column: headers[c].to_string(),
            value: record.get(c).unwrap_or_default().to_string(),
        };
        // Empty cells are gaps (NaN); anything else must be a number.
        let num = |c: Option<usize>| -> Result<f64, EvalError> {
            match c.map(|c| (c, record.get(c).unwrap_or_default().trim())) {
                None | Some((_, "")) => Ok(f64::NAN),
                Some((c, s)) => s.parse().map_err(|_| bad(c)),
            }
        };
        r.t.push(parse_time(record.get(ts_col).unwrap_or_default()).ok_or_else(|| bad(ts_col))?);
        for (k, &c) in channel_cols.iter().enumerate() {
            r.channels[k].1.push(num(Some(c))?);
        }
        r.score.push(num(score_col)?);
        r.pca_score.push(num(pca_col)?);
        r.threshold.push(num(thr_col)?);
        let alert = num(Some(alert_col))?;
        r.alert.push(alert.is_finite() && alert != 0.0);
    }
    if r.t.is_empty() {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(r)
}

/// Time spans of consecutive alerting rows, each ending at the next row's time.
fn alert_spans(t: &[f64], alert: &[bool]) -> Vec<(f64, f64)> {
    let mut spans = Vec::new();
    let mut start = None;
    for i in 0..=alert.len() {
        let on = alert.get(i).copied().unwrap_or(false);
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

/// Z-normalises a series (NaNs stay NaN; a constant series becomes 0).
fn z_normalise(v: &[f64]) -> Vec<f64> {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let n = finite.len().max(1) as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let sd = (finite.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    v.iter()
        .map(|x| if sd > 0.0 { (x - mean) / sd } else { x - mean })
        .collect()
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

/// Splits a series into runs of finite points, so gaps are not bridged by lines.
fn segments(t: &[f64], v: &[f64]) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for (&x, &y) in t.iter().zip(v) {
        if y.is_finite() {
            if let Some(s) = out.last_mut() {
                s.push((x, y));
            }
        } else if !out.last().is_some_and(Vec::is_empty) {
            out.push(Vec::new());
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;
type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A legend name, a fill colour and the time ranges to shade.
type Span<'a> = (&'a str, RGBAColor, Vec<(f64, f64)>);

/// Draws a line per series (skipping gaps) with a legend entry.
fn draw_lines<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    t: &[f64],
    lines: &[(String, Vec<f64>)],
) -> DrawResult<DB> {
    for (k, (name, v)) in lines.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let paths = segments(t, v)
            .into_iter()
            .map(move |s| PathElement::new(s, color.stroke_width(2)));
        chart
            .draw_series(paths)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    Ok(())
}

/// Shades alert spans and labelled windows over the full height of a chart.
fn draw_spans<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    y: (f64, f64),
    spans: &[Span<'_>],
) -> DrawResult<DB> {
    for (name, color, ranges) in spans.iter().filter(|s| !s.2.is_empty()) {
        let color = *color;
        let rects = ranges
            .iter()
            .map(move |&(a, b)| Rectangle::new([(a, y.0), (b, y.1)], color.filled()));
        chart
            .draw_series(rects)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], color.filled()));
    }
    Ok(())
}

/// Draws the two panels onto `root`.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &Replay,
    labels: &[(f64, f64)],
    title: &str,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 24))?;
    let (top, bottom) = root.split_vertically(RelativeSize::Height(0.5));
    let (x0, x1) = y_range([&r.t]);
    let unix = r.t[0] > 1e8;
    let fmt_x = move |x: &f64| match chrono::DateTime::from_timestamp(*x as i64, 0) {
        Some(d) if unix => d.format("%m-%d %H:%M:%S").to_string(),
        _ => format!("{x:.0}"),
    };
    let spans = [
        ("alert", RED.mix(0.18), alert_spans(&r.t, &r.alert)),
        ("labelled window", GREEN.mix(0.18), labels.to_vec()),
    ];

    let several = r.channels.len() > 1;
    let channels: Vec<(String, Vec<f64>)> = r
        .channels
        .iter()
        .map(|(n, v)| (n.clone(), if several { z_normalise(v) } else { v.clone() }))
        .collect();
    let y = y_range(channels.iter().map(|c| &c.1));
    let mut chart = ChartBuilder::on(&top)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y.0..y.1)?;
    let y_desc = if several { "value (z-score)" } else { "value" };
    chart
        .configure_mesh()
        .x_desc("time")
        .y_desc(y_desc)
        .x_label_formatter(&fmt_x)
        .draw()?;
    draw_spans(&mut chart, y, &spans)?;
    draw_lines(&mut chart, &r.t, &channels)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let mut scores = vec![
        ("AE score".to_string(), r.score.clone()),
        ("PCA score".to_string(), r.pca_score.clone()),
        ("threshold".to_string(), r.threshold.clone()),
    ];
    let positive = scores
        .iter()
        .flat_map(|s| &s.1)
        .filter(|x| x.is_finite() && **x > 0.0);
    let (lo, hi) = positive.fold((f64::INFINITY, 0.0_f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    // Log axis when positive values span more than two decades: plot log10 and label 10^y.
    let log = lo.is_finite() && hi / lo > 100.0;
    if log {
        for (_, v) in &mut scores {
            v.iter_mut()
                .for_each(|x| *x = if *x > 0.0 { x.log10() } else { f64::NAN });
        }
    }
    let y = y_range(scores.iter().map(|c| &c.1));
    let fmt_y = move |v: &f64| {
        if log {
            format!("{:.0e}", 10f64.powf(*v))
        } else {
            format!("{v:.3}")
        }
    };
    let mut chart = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y.0..y.1)?;
    let y_desc = if log { "score (log)" } else { "score" };
    chart
        .configure_mesh()
        .x_desc("time")
        .y_desc(y_desc)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&fmt_y)
        .draw()?;
    draw_spans(&mut chart, y, &spans)?;
    draw_lines(&mut chart, &r.t, &scores)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()
}

/// Registers the bundled DejaVu Sans as "sans-serif" once per process.
fn ensure_font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../assets/DejaVuSans.ttf"),
        )
        .map_err(|_| "bundled font DejaVuSans.ttf is invalid".to_string())
    })
    .clone()
}

/// Plots a replay CSV to `output` (`.svg` or `.png`): channels on top, AE/PCA scores and
/// threshold below, alert spans and labelled windows (unix seconds) shaded.
pub fn plot_replay(input_csv: &Path, output: &Path, labels: Option<&[(f64, f64)]>) -> Result<(), EvalError> {
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
    let title = input_csv
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let labels = labels.unwrap_or_default();
    let result = if extension == "svg" {
        draw(
            &SVGBackend::new(output, SIZE).into_drawing_area(),
            &replay,
            labels,
            &title,
        )
        .map_err(|e| e.to_string())
    } else {
        draw(
            &BitMapBackend::new(output, SIZE).into_drawing_area(),
            &replay,
            labels,
            &title,
        )
        .map_err(|e| e.to_string())
    };
    result.map_err(plot_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a small replay CSV with two channels, gaps in the scores and one alert run.
    fn build_replay(dir: &Path, rfc3339: bool) -> std::path::PathBuf {
        let path = dir.join("replay.csv");
        let mut body =
            String::from("timestamp,temp,vibration,score,pca_score,threshold,anomaly_score,alert\n");
        for i in 0..120 {
            let t = 1_700_000_000 + 10 * i;
            let ts = if rfc3339 {
                chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339()
            } else {
                t.to_string()
            };
            let x = i as f64 / 10.0;
            let (score, pca) = if i < 20 {
                (String::new(), String::new())
            } else {
                (
                    format!(
                        "{}",
                        1e-3 * (1.0 + x.sin().abs()) * if (60..70).contains(&i) { 500.0 } else { 1.0 }
                    ),
                    format!("{}", 0.01 + 0.001 * x),
                )
            };
            let alert = u8::from((60..70).contains(&i));
            body += &format!(
                "{ts},{},{},{score},{pca},0.05,{},{alert}\n",
                20.0 + x.sin(),
                0.1 * x.cos(),
                alert
            );
        }
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn svg_plot_has_svg_root_and_legend_text() {
        let dir = tempfile::tempdir().unwrap();
        let input = build_replay(dir.path(), true);
        let out = dir.path().join("plot.svg");
        plot_replay(&input, &out, Some(&[(1_700_000_550.0, 1_700_000_750.0)])).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.contains("<svg"));
        for text in [
            "temp",
            "vibration",
            "AE score",
            "PCA score",
            "threshold",
            "alert",
            "labelled window",
            "replay.csv",
        ] {
            assert!(svg.contains(text), "svg lacks {text}");
        }
    }

    #[test]
    fn png_plot_is_a_non_empty_png() {
        let dir = tempfile::tempdir().unwrap();
        let input = build_replay(dir.path(), false);
        let out = dir.path().join("plot.png");
        plot_replay(&input, &out, None).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert!(bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    }

    #[test]
    fn unknown_extension_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let input = build_replay(dir.path(), false);
        let err = plot_replay(&input, &dir.path().join("plot.jpg"), None).unwrap_err();
        assert!(err.to_string().contains("`jpg`"), "{err}");
    }

    #[test]
    fn replay_parses_both_timestamp_forms_and_empty_cells() {
        let dir = tempfile::tempdir().unwrap();
        let a = read_replay(&build_replay(dir.path(), true)).unwrap();
        let b = read_replay(&build_replay(dir.path(), false)).unwrap();
        assert_eq!(a.t, b.t);
        assert_eq!(a.channels.len(), 2);
        assert!(a.score[0].is_nan() && a.score[30].is_finite());
        assert_eq!(alert_spans(&a.t, &a.alert), vec![(a.t[60], a.t[70])]);
    }
}
