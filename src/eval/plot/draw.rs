//! The plotters side of `anomalyd plot`: a [`Layout`] of stacked panels sharing one time
//! axis, each with its legend in a strip to the right of the data so no legend covers a
//! line.

use plotters::coord::Shift;
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::layout::{Panel, Plot};

/// Width of the picture in pixels.
pub(super) const WIDTH: u32 = 1400;
/// Width of the legend strip right of every panel.
const LEGEND_WIDTH: u32 = 200;
/// Height of the title line.
const TITLE_HEIGHT: u32 = 40;
/// Height of the time labels under the last panel.
const X_LABELS: u32 = 40;

/// Line colours, cycled (matplotlib's tab10: tells apart for most colour-blind readers).
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

/// Alert spans: red; labelled windows: green, light enough that lines show through.
fn span_colors() -> [RGBAColor; 2] {
    [RED.mix(0.18), GREEN.mix(0.22)]
}

pub(super) type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// The picture's height for `panels`.
pub(super) fn height(panels: &[Panel]) -> u32 {
    TITLE_HEIGHT + X_LABELS + panels.iter().map(|p| p.height).sum::<u32>()
}

/// One legend row: a name and how its swatch is drawn.
enum Swatch {
    Line(ShapeStyle),
    Fill(RGBAColor),
}

/// Draws `plot` onto `root`.
pub(super) fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, plot: &Plot) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let area = root.titled(&plot.title, ("sans-serif", 22))?;
    let (x0, x1) = plot.x_range();
    let span = x1 - x0;
    let fmt_x = move |x: &f64| time_label(*x, span, plot.unix_time);
    let mut rest = area;
    for (k, panel) in plot.panels.iter().enumerate() {
        let last = k + 1 == plot.panels.len();
        let h = panel.height + if last { X_LABELS } else { 0 };
        let (this, below) = rest.split_vertically(h);
        rest = below;
        let (chart_area, legend_area) = this.split_horizontally(WIDTH - LEGEND_WIDTH);
        let mut swatches: Vec<(String, Swatch)> = panel
            .lines
            .iter()
            .map(|l| (l.name.clone(), Swatch::Line(line_style(l.color, false))))
            .collect();
        // The shading means the same on every panel: its legend is on the first.
        for (i, (name, ranges)) in plot.spans.iter().enumerate() {
            if k == 0 && !ranges.is_empty() {
                swatches.push((name.to_string(), Swatch::Fill(span_colors()[i])));
            }
        }
        if panel.log {
            let (lo, hi) = panel.y;
            let mut chart =
                chart_builder(&chart_area, last).build_cartesian_2d(x0..x1, (lo..hi).log_scale())?;
            chart
                .configure_mesh()
                .y_desc(panel.y_desc.as_str())
                .x_labels(10)
                .x_label_formatter(&fmt_x)
                .y_labels(6)
                .light_line_style(TRANSPARENT)
                .y_label_formatter(&|v: &f64| format!("{v:.0e}"))
                .draw()?;
            draw_panel(&mut chart, plot, panel)?;
        } else {
            let (lo, hi) = panel.y;
            let mut chart = chart_builder(&chart_area, last).build_cartesian_2d(x0..x1, lo..hi)?;
            chart
                .configure_mesh()
                .y_desc(panel.y_desc.as_str())
                .y_labels(5)
                .x_labels(10)
                .x_label_formatter(&fmt_x)
                .light_line_style(TRANSPARENT)
                .y_label_formatter(&|v: &f64| axis_label(*v, hi - lo))
                .draw()?;
            draw_panel(&mut chart, plot, panel)?;
        }
        draw_legend(&legend_area, &swatches)?;
    }
    root.present()
}

/// A chart on `area`; only the `last` panel has room for time labels.
fn chart_builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    last: bool,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(area);
    b.margin_top(6)
        .margin_right(12)
        .x_label_area_size(if last { X_LABELS } else { 0 })
        .y_label_area_size(80);
    b
}

/// Spans first (under the lines), then each line, split at its gaps.
fn draw_panel<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    plot: &Plot,
    panel: &Panel,
) -> DrawResult<DB> {
    let (lo, hi) = panel.y;
    for (i, (_, ranges)) in plot.spans.iter().enumerate() {
        let color = span_colors()[i];
        chart.draw_series(
            ranges
                .iter()
                .map(|&(a, b)| Rectangle::new([(a, lo), (b, hi)], color.filled())),
        )?;
    }
    for line in &panel.lines {
        let style = line_style(line.color, line.thin);
        let keep = |y: f64| y.is_finite() && (!panel.log || y > 0.0);
        for run in segments(&plot.t, &line.values, keep) {
            chart.draw_series(std::iter::once(PathElement::new(run, style)))?;
        }
    }
    Ok(())
}

/// Colour `i` of the palette, or black past its end (the threshold), 1 or 2 px wide.
/// Data lines are thin: a 2 px polyline's miter joins at a series' sharp spikes reach
/// far past the spike, even below the panel.
fn line_style(i: usize, thin: bool) -> ShapeStyle {
    let color = COLORS.get(i).copied().unwrap_or(BLACK);
    color.stroke_width(if thin { 1 } else { 2 })
}

/// The legend strip: one swatch and name per row, from the top.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[(String, Swatch)],
) -> DrawResult<DB> {
    let font = ("sans-serif", 15).into_font();
    for (k, (name, swatch)) in rows.iter().enumerate() {
        let y = 14 + 20 * k as i32;
        match swatch {
            Swatch::Line(style) => area.draw(&PathElement::new(vec![(6, y), (30, y)], *style))?,
            Swatch::Fill(color) => area.draw(&Rectangle::new([(6, y - 6), (30, y + 6)], color.filled()))?,
        }
        area.draw(&Text::new(name.clone(), (36, y - 8), font.clone()))?;
    }
    Ok(())
}

/// Runs of consecutive points that `keep` accepts, so gaps are not bridged by lines.
fn segments(t: &[f64], v: &[f64], keep: impl Fn(f64) -> bool) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for (&x, &y) in t.iter().zip(v) {
        if keep(y) {
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

/// A time-axis label for unix seconds `x`, as fine as the plotted `span` needs; plain
/// numbers when the file's times are not unix times.
fn time_label(x: f64, span: f64, unix: bool) -> String {
    let Some(d) = chrono::DateTime::from_timestamp(x as i64, 0).filter(|_| unix) else {
        return axis_label(x, span);
    };
    let fmt = if span > 4.0 * 86_400.0 {
        "%Y-%m-%d"
    } else if span > 3_600.0 {
        "%m-%d %H:%M"
    } else {
        "%H:%M:%S"
    };
    d.format(fmt).to_string()
}

/// A y-axis label with as many decimals as ticks a quarter of the axis `range` apart
/// need to differ; scientific notation for large values or tiny ranges.
fn axis_label(v: f64, range: f64) -> String {
    if v.abs() >= 1e5 || (range > 0.0 && range < 1e-4) {
        return format!("{v:.2e}");
    }
    let step = range / 4.0;
    let decimals = if step > 0.0 {
        (-step.log10()).ceil().max(0.0) as usize
    } else {
        2
    };
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_break_at_rejected_points() {
        let t = [0.0, 1.0, 2.0, 3.0, 4.0];
        let v = [1.0, f64::NAN, 2.0, 0.0, 3.0];
        assert_eq!(segments(&t, &v, f64::is_finite).len(), 2);
        assert_eq!(
            segments(&t, &v, |y| y > 0.0),
            vec![vec![(0.0, 1.0)], vec![(2.0, 2.0)], vec![(4.0, 3.0)]]
        );
    }

    #[test]
    fn time_labels_follow_the_span() {
        let t = 1_583_750_073.0; // 2020-03-09 10:34:33 UTC
        assert_eq!(time_label(t, 1_200.0, true), "10:34:33");
        assert_eq!(time_label(t, 86_400.0, true), "03-09 10:34");
        assert_eq!(time_label(t, 30.0 * 86_400.0, true), "2020-03-09");
        assert_eq!(time_label(120.0, 100.0, false), "120");
    }

    #[test]
    fn axis_labels_tell_neighbouring_ticks_apart() {
        assert_eq!(axis_label(0.0265, 0.002), "0.0265");
        assert_eq!(axis_label(25.6, 0.3), "25.60");
        assert_eq!(axis_label(100.0, 100.0), "100");
        assert_eq!(axis_label(123_456.0, 1e5), "1.23e5");
    }
}
