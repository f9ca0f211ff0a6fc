//! SKAB (Skoltech Anomaly Benchmark) scoring, as described in `benchmarks/SKAB_SCORING.md`.
//!
//! [`point_metrics`] (pooled F1/FAR/MAR) and [`changepoint_score`] (SKAB's NAB variant) are
//! pure; [`load_skab_csv`] reads one semicolon-separated SKAB file and
//! [`SkabSeries::test_part`] pairs its test rows with a detector's alarms.

use std::f64::consts::FRAC_PI_2;
use std::path::Path;

use super::EvalError;
use super::series::{EmptyCell, Series, Table};

/// Rows at the start of each SKAB file used for training; the rest is the test part.
pub const TRAIN_ROWS: usize = 400;

/// Width of a changepoint window to the right of the changepoint, in seconds.
pub const CP_WINDOW_SECS: f64 = 60.0;

/// Number of bins for the changepoint credit curve.
const CP_BINS: usize = 1000;

/// One file's test part: timestamps, the detector's alarms and the labels, all the same length.
#[derive(Debug, Clone, PartialEq)]
pub struct SkabFile {
    /// File name, e.g. `valve1/0.csv`.
    pub name: String,
    /// Unix seconds per row.
    pub ts: Vec<f64>,
    /// The detector's binary alarm per row (test part only).
    pub alarm: Vec<bool>,
    /// The `anomaly` label per row.
    pub anomaly: Vec<bool>,
    /// The `changepoint` label per row.
    pub changepoint: Vec<bool>,
}

/// A whole SKAB file as read from disk: sensor channels and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct SkabSeries {
    /// File name as given to the loader.
    pub name: String,
    /// The sensor channels in file order (without `anomaly`, `changepoint`), time from
    /// `datetime`: what `replay` scores.
    pub series: Series,
    /// The `anomaly` label per row.
    pub anomaly: Vec<bool>,
    /// The `changepoint` label per row.
    pub changepoint: Vec<bool>,
}

impl SkabSeries {
    /// The test part (rows from [`TRAIN_ROWS`] on) paired with `alarm`, which must hold one
    /// value per test row (extra alarms are ignored, missing ones count as no alarm).
    pub fn test_part(&self, alarm: &[bool]) -> SkabFile {
        let ts = &self.series.ts;
        let start = TRAIN_ROWS.min(ts.len());
        let n = ts.len() - start;
        SkabFile {
            name: self.name.clone(),
            ts: ts[start..].to_vec(),
            alarm: (0..n).map(|i| alarm.get(i).copied().unwrap_or(false)).collect(),
            anomaly: self.anomaly[start..].to_vec(),
            changepoint: self.changepoint[start..].to_vec(),
        }
    }
}

/// Pooled point-wise metrics; `f1` is a fraction, `far` and `mar` are percentages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointMetrics {
    /// F1 = TP/(TP + ½(FP + FN)), rounded to 2 decimals as SKAB reports it.
    pub f1: f64,
    /// False alarm rate FP/(FP + TN)·100, rounded to 2 decimals.
    pub far: f64,
    /// Missed alarm rate FN/(FN + TP)·100, rounded to 2 decimals.
    pub mar: f64,
    /// F1 before rounding.
    pub f1_exact: f64,
    /// FAR before rounding.
    pub far_exact: f64,
    /// MAR before rounding.
    pub mar_exact: f64,
    /// Alarmed rows labelled anomalous.
    pub tp: usize,
    /// Alarmed rows labelled normal.
    pub fp: usize,
    /// Silent rows labelled anomalous.
    pub fn_: usize,
    /// Silent rows labelled normal.
    pub tn: usize,
}

/// SKAB's changepoint (NAB-variant) scores, normalised 0..100 and rounded to 2 decimals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpResult {
    /// Standard profile (A_TP 1, A_FP −0.11, A_FN −1).
    pub standard: f64,
    /// LowFP profile (A_TP 1, A_FP −0.22, A_FN −1).
    pub low_fp: f64,
    /// LowFN profile (A_TP 1, A_FP −0.11, A_FN −2).
    pub low_fn: f64,
    /// Windows with no predicted changepoint.
    pub missed: usize,
    /// Predicted changepoints outside every window.
    pub fps: usize,
}

/// Rounds to 2 decimals, as SKAB reports every metric.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `num / den`, or 0 when `den` is 0.
fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

/// Point-wise TP/FP/FN/TN pooled over all files, with F1, FAR and MAR.
pub fn point_metrics(files: &[SkabFile]) -> PointMetrics {
    let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
    for f in files {
        for (&a, &y) in f.alarm.iter().zip(&f.anomaly) {
            match (a, y) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                (false, false) => tn += 1,
            }
        }
    }
    let f1_exact = if tp + fp + fn_ == 0 {
        0.0
    } else {
        tp as f64 / (tp as f64 + 0.5 * (fp + fn_) as f64)
    };
    let far_exact = 100.0 * ratio(fp, fp + tn);
    let mar_exact = 100.0 * ratio(fn_, fn_ + tp);
    PointMetrics {
        f1: round2(f1_exact),
        far: round2(far_exact),
        mar: round2(mar_exact),
        f1_exact,
        far_exact,
        mar_exact,
        tp,
        fp,
        fn_,
        tn,
    }
}

/// Rows where the alarm series changes (|Δ|), with the first row's value kept as is.
pub fn alarm_edges(alarm: &[bool]) -> Vec<usize> {
    (0..alarm.len())
        .filter(|&i| {
            if i == 0 {
                alarm[0]
            } else {
                alarm[i] != alarm[i - 1]
            }
        })
        .collect()
}

/// Windows `[c, c + 60 s]` in seconds for the labelled changepoints of a file; a window that
/// overlaps the previous one starts at the previous one's end.
pub fn changepoint_windows(file: &SkabFile) -> Vec<(f64, f64)> {
    let mut windows: Vec<(f64, f64)> = Vec::new();
    for (i, _) in file.changepoint.iter().enumerate().filter(|(_, c)| **c) {
        let (mut start, end) = (file.ts[i], file.ts[i] + CP_WINDOW_SECS);
        if let Some(&(_, prev_end)) = windows.last() {
            if start <= prev_end {
                start = prev_end;
            }
        }
        windows.push((start, end));
    }
    windows
}

/// Credit for the first detection at relative position `rho` ∈ [0, 1] of a window.
pub fn changepoint_credit(rho: f64, a_tp: f64, a_fp: f64) -> f64 {
    let k = ((CP_BINS as f64 * rho).floor().max(0.0) as usize).min(CP_BINS - 1);
    let x = -FRAC_PI_2 + k as f64 * (2.0 * FRAC_PI_2) / (CP_BINS - 1) as f64;
    (a_tp - a_fp) / 2.0 * (1.0 - x.tanh() / FRAC_PI_2.tanh()) + a_fp
}

/// SKAB's NAB variant over all files, for the three profiles (see the module docs).
pub fn changepoint_score(files: &[SkabFile]) -> CpResult {
    // (A_TP, A_FP, A_FN) with SKAB's signs.
    let profiles = [(1.0, -0.11, -1.0), (1.0, -0.22, -1.0), (1.0, -0.11, -2.0)];
    let mut sums = [0.0; 3];
    let (mut n_windows, mut missed, mut fps) = (0, 0, 0);
    for f in files {
        let windows = changepoint_windows(f);
        let events: Vec<f64> = alarm_edges(&f.alarm).into_iter().map(|i| f.ts[i]).collect();
        n_windows += windows.len();
        for &(start, end) in &windows {
            match events.iter().find(|&&t| start <= t && t <= end) {
                Some(&t) => {
                    let rho = if end > start {
                        (t - start) / (end - start)
                    } else {
                        0.0
                    };
                    for (sum, &(a_tp, a_fp, _)) in sums.iter_mut().zip(&profiles) {
                        *sum += changepoint_credit(rho, a_tp, a_fp);
                    }
                }
                None => {
                    missed += 1;
                    for (sum, &(_, _, a_fn)) in sums.iter_mut().zip(&profiles) {
                        *sum += a_fn;
                    }
                }
            }
        }
        let outside = events
            .iter()
            .filter(|&&t| !windows.iter().any(|&(s, e)| s <= t && t <= e))
            .count();
        fps += outside;
        for (sum, &(_, a_fp, _)) in sums.iter_mut().zip(&profiles) {
            *sum += a_fp * outside as f64;
        }
    }
    let normalise = |sum: f64, (a_tp, _, a_fn): (f64, f64, f64)| {
        let (null, perfect) = (n_windows as f64 * a_fn, n_windows as f64 * a_tp);
        if n_windows == 0 {
            0.0
        } else {
            round2(100.0 * (sum - null) / (perfect - null))
        }
    };
    CpResult {
        standard: normalise(sums[0], profiles[0]),
        low_fp: normalise(sums[1], profiles[1]),
        low_fn: normalise(sums[2], profiles[2]),
        missed,
        fps,
    }
}

/// Reads one SKAB CSV (`datetime;<channels…>;anomaly;changepoint`, `;`-separated)
/// through the offline [`Table`] reader.
pub fn load_skab_csv(path: &Path) -> Result<SkabSeries, EvalError> {
    let table = Table::read(path)?;
    let labels = ["datetime", "anomaly", "changepoint"];
    for name in labels {
        table.column(name)?;
    }
    let channels: Vec<String> = table
        .header()
        .iter()
        .filter(|h| !labels.contains(&h.as_str()))
        .cloned()
        .collect();
    let flags = |name: &str| -> Result<Vec<bool>, EvalError> {
        let values = table.numbers(table.column(name)?, EmptyCell::Reject)?;
        Ok(values.into_iter().map(|v| v != 0.0).collect())
    };
    Ok(SkabSeries {
        name: path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        series: table.series(Some("datetime"), Some(channels.as_slice()))?,
        anomaly: flags("anomaly")?,
        changepoint: flags("changepoint")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test part of `n` rows one second apart with the given changepoint rows.
    fn build_file(n: usize, alarm_rows: &[usize], anomaly_rows: &[usize], cps: &[usize]) -> SkabFile {
        let flags = |rows: &[usize]| (0..n).map(|i| rows.contains(&i)).collect::<Vec<_>>();
        SkabFile {
            name: "t.csv".into(),
            ts: (0..n).map(|i| 1_000.0 + i as f64).collect(),
            alarm: flags(alarm_rows),
            anomaly: flags(anomaly_rows),
            changepoint: flags(cps),
        }
    }

    #[test]
    fn credit_curve_runs_from_one_to_minus_a_fp() {
        assert!((changepoint_credit(0.0, 1.0, -0.11) - 1.0).abs() < 1e-12);
        assert!((changepoint_credit(1.0, 1.0, -0.11) + 0.11).abs() < 1e-12);
        assert!((changepoint_credit(0.5, 1.0, -0.11) - 0.444).abs() < 2e-3);
    }

    #[test]
    fn first_prediction_at_window_start_gets_full_credit() {
        // CP at row 100; window [100 s, 160 s]; alarm rises at row 100 and never falls.
        let r = changepoint_score(&[build_file(300, &(100..300).collect::<Vec<_>>(), &[], &[100])]);
        assert_eq!(
            (r.standard, r.low_fp, r.low_fn, r.missed, r.fps),
            (100.0, 100.0, 100.0, 0, 0)
        );
    }

    #[test]
    fn first_prediction_at_window_end_scores_minus_a_fp() {
        // Single rising edge at row 160 = window end: S = −0.11, normalised (−0.11 + 1)/2.
        let r = changepoint_score(&[build_file(300, &(160..300).collect::<Vec<_>>(), &[], &[100])]);
        assert_eq!(r.standard, round2(100.0 * (1.0 - 0.11) / 2.0));
        assert_eq!(r.low_fn, round2(100.0 * (2.0 - 0.11) / 3.0));
    }

    #[test]
    fn false_positive_costs_a_flat_a_fp() {
        // Hit at window start plus a one-row blip far away (2 edges, both outside the window).
        let mut alarm: Vec<usize> = (100..300).collect();
        alarm.retain(|&i| i != 250);
        let r = changepoint_score(&[build_file(300, &alarm, &[], &[100])]);
        assert_eq!(r.fps, 2);
        assert_eq!(r.standard, round2(100.0 * (1.0 - 0.22 + 1.0) / 2.0));
        assert_eq!(r.low_fp, round2(100.0 * (1.0 - 0.44 + 1.0) / 2.0));
    }

    #[test]
    fn missed_window_costs_a_fn() {
        let r = changepoint_score(&[build_file(300, &[], &[], &[100, 200])]);
        assert_eq!((r.standard, r.low_fn, r.missed, r.fps), (0.0, 0.0, 2, 0));
    }

    #[test]
    fn alarm_held_for_300_rows_is_two_events() {
        let alarm: Vec<bool> = (0..500).map(|i| (100..400).contains(&i)).collect();
        assert_eq!(alarm_edges(&alarm), vec![100, 400]);
        assert_eq!(alarm_edges(&[true, true, false]), vec![0, 2]);
    }

    #[test]
    fn overlapping_windows_start_at_the_previous_end() {
        let w = changepoint_windows(&build_file(300, &[], &[], &[100, 130]));
        assert_eq!(w, vec![(1100.0, 1160.0), (1160.0, 1190.0)]);
    }

    #[test]
    fn perfect_alarm_has_f1_one_and_no_false_or_missed_alarms() {
        let rows: Vec<usize> = (50..80).collect();
        let m = point_metrics(&[build_file(100, &rows, &rows, &[])]);
        assert_eq!(
            (m.f1, m.far, m.mar, m.tp, m.fp, m.fn_, m.tn),
            (1.0, 0.0, 0.0, 30, 0, 0, 70)
        );
    }

    #[test]
    fn point_metrics_pool_counts_across_files_and_round() {
        let a = build_file(10, &[0, 1, 2], &[0, 1], &[]); // tp 2, fp 1, tn 7
        let b = build_file(10, &[], &[5], &[]); // fn 1, tn 9
        let m = point_metrics(&[a, b]);
        assert_eq!((m.tp, m.fp, m.fn_, m.tn), (2, 1, 1, 16));
        assert_eq!((m.f1, m.far, m.mar), (0.67, 5.88, 33.33));
    }

    #[test]
    fn loads_a_skab_file_and_splits_the_test_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.csv");
        let mut body = String::from("datetime;A;B;anomaly;changepoint\n");
        for i in 0..405 {
            body += &format!(
                "2020-03-09 10:{:02}:{:02};{i};0.5;{}.0;0.0\n",
                i / 60,
                i % 60,
                u8::from(i >= 402)
            );
        }
        std::fs::write(&path, body).unwrap();
        let s = load_skab_csv(&path).unwrap();
        assert_eq!(
            (s.series.channels.len(), s.series.len(), s.series.row(3)[0]),
            (2, 405, 3.0)
        );
        let f = s.test_part(&[true; 5]);
        assert_eq!((f.ts.len(), f.ts[1] - f.ts[0]), (5, 1.0));
        assert_eq!(f.anomaly, vec![false, false, true, true, true]);
    }

    #[test]
    fn loads_every_valve1_file_from_the_shared_dataset() {
        let dir = crate::eval::test_datasets().join("skab/valve1");
        let cps: usize = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| load_skab_csv(&e.unwrap().path()).unwrap())
            .map(|s| s.changepoint.iter().skip(TRAIN_ROWS).filter(|c| **c).count())
            .sum();
        assert!(cps > 0, "valve1 has labelled changepoints in its test parts");
    }
}
