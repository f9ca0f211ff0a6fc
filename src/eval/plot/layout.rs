//! The layout of a plot: which channels get a panel ([`pick_channels`], by their
//! [`deviation`] during alerts), the panels' lines and y ranges, and the [`Plot`] that
//! `draw` renders.

use super::PlotOptions;
use super::input::{Replay, flag_spans};

/// How far a channel sits from its normal range while alerts are raised: the mean |z|
/// over alerting rows, z taken against the rows without an alert. Without alerts, the
/// largest |z| over the file.
pub(super) fn deviation(v: &[f64], alert: &[bool]) -> f64 {
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
pub(super) fn pick_channels(r: &Replay, max: usize) -> Vec<usize> {
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
pub(super) struct Line {
    pub(super) name: String,
    pub(super) values: Vec<f64>,
    /// Index into the palette; past its end, black.
    pub(super) color: usize,
    pub(super) thin: bool,
}

/// One panel: its lines, y range and height in pixels.
pub(super) struct Panel {
    pub(super) y_desc: String,
    pub(super) height: u32,
    pub(super) log: bool,
    pub(super) y: (f64, f64),
    pub(super) lines: Vec<Line>,
}

/// Everything `draw` needs.
pub(super) struct Plot {
    pub(super) title: String,
    pub(super) t: Vec<f64>,
    pub(super) unix_time: bool,
    pub(super) panels: Vec<Panel>,
    /// Alert spans, then labelled windows.
    pub(super) spans: [(&'static str, Vec<(f64, f64)>); 2],
}

impl Plot {
    pub(super) fn x_range(&self) -> (f64, f64) {
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
pub(super) fn build_plot(r: &Replay, title: &str, options: &PlotOptions) -> Plot {
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
