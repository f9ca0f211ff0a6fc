//! NAB (Numenta Anomaly Benchmark) scoring, as described in `benchmarks/NAB_SCORING.md`.
//!
//! [`score_corpus`] is pure: it takes per-row anomaly scores with windows already mapped to
//! row ranges and returns the swept, normalised score for one [`Profile`]. The loaders
//! in `load` ([`load_windows`], [`load_scores_dir`]) read NAB's label JSON and precomputed
//! score CSVs; [`file_shares`] splits a score into each file's part.

mod load;
mod share;

pub use load::{load_scores_dir, load_windows, read_scores_csv};
pub use share::{FileShare, file_shares};

use std::collections::HashMap;

use super::EvalError;
use super::series::parse_timestamp;

/// One NAB cost profile (`config/profiles.json`); `tnWeight` is unused by NAB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Profile name as NAB spells it.
    pub name: &'static str,
    /// Credit for a detection at the start of a window.
    pub a_tp: f64,
    /// Cost of an undiscounted false-positive row (positive number).
    pub a_fp: f64,
    /// Cost of a window with no detection (positive number).
    pub a_fn: f64,
}

/// NAB's three profiles: standard, reward_low_FP_rate, reward_low_FN_rate.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        a_tp: 1.0,
        a_fp: 0.11,
        a_fn: 1.0,
    },
    Profile {
        name: "reward_low_FP_rate",
        a_tp: 1.0,
        a_fp: 0.22,
        a_fn: 1.0,
    },
    Profile {
        name: "reward_low_FN_rate",
        a_tp: 1.0,
        a_fp: 0.11,
        a_fn: 2.0,
    },
];

/// One corpus file: per-row anomaly scores and its labelled windows as row ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledFile {
    /// Corpus name, e.g. `realKnownCause/nyc_taxi.csv`.
    pub name: String,
    /// Row timestamps as unix seconds ([`parse_timestamp`]), in file order.
    pub timestamps: Vec<f64>,
    /// The detector's `anomaly_score` per row, in [0, 1].
    pub scores: Vec<f64>,
    /// Windows as inclusive `(first_row, last_row)` ranges, in order and non-overlapping.
    pub windows: Vec<(usize, usize)>,
}

impl LabelledFile {
    /// Builds a file, mapping each window's timestamp bounds to row indices.
    ///
    /// Fails if a bound does not parse or is not a timestamp of the file.
    pub fn new(
        name: &str,
        timestamps: Vec<f64>,
        scores: Vec<f64>,
        windows: &[(String, String)],
    ) -> Result<Self, EvalError> {
        // Keyed by the bits: the rows and the bounds went through the same parser, so a
        // bound names a row exactly when the two floats are identical.
        let rows: HashMap<u64, usize> = timestamps
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_bits(), i))
            .collect();
        let row_of = |s: &str| {
            parse_timestamp(s)
                .and_then(|t| rows.get(&t.to_bits()).copied())
                .ok_or_else(|| EvalError::WindowBound {
                    file: name.to_string(),
                    timestamp: s.to_string(),
                })
        };
        let windows = windows
            .iter()
            .map(|(l, r)| Ok((row_of(l)?, row_of(r)?)))
            .collect::<Result<Vec<_>, EvalError>>()?;
        Ok(Self {
            name: name.to_string(),
            timestamps,
            scores,
            windows,
        })
    }
}

/// The result of scoring a corpus under one profile at its best threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileResult {
    /// Profile name.
    pub profile: String,
    /// The best global threshold (1.1 means "never fire").
    pub threshold: f64,
    /// Raw score R(θ*) summed over the corpus.
    pub raw: f64,
    /// Normalised score: 0 = never fires, 100 = perfect.
    pub score: f64,
    /// Windows with at least one firing row at θ*.
    pub tp_windows: usize,
    /// Windows with no firing row at θ*.
    pub fn_windows: usize,
    /// Firing rows outside every window at θ* (after the probationary period).
    pub fp_rows: usize,
}

/// Rows ignored at the start of a file of `n` rows: min(⌊0.15·n⌋, 750).
pub fn probationary_rows(n: usize) -> usize {
    ((0.15 * n as f64).floor() as usize).min(750)
}

/// NAB's scaled sigmoid 2/(1 + e^{5y}) − 1, exactly −1 for y > 3.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// Per-row weighted score s_i (NAB's `S(t)` column) for a file of `n` rows.
///
/// Rows in a window get the positive TP credit, rows outside get the (negative) FP
/// penalty discounted by the distance past the preceding window.
pub fn row_weights(n: usize, windows: &[(usize, usize)], profile: &Profile) -> Vec<f64> {
    let max_tp = scaled_sigmoid(-1.0);
    let mut out = Vec::with_capacity(n);
    let mut next = 0; // index of the next window not yet ended
    let mut prev: Option<(usize, usize)> = None; // (right row, width) of the last ended window
    for i in 0..n {
        while next < windows.len() && windows[next].1 < i {
            let (l, r) = windows[next];
            prev = Some((r, r - l + 1));
            next += 1;
        }
        let s = match windows.get(next) {
            Some(&(l, r)) if l <= i => {
                let width = (r - l + 1) as f64;
                let y = -((r - i + 1) as f64) / width;
                profile.a_tp * scaled_sigmoid(y) / max_tp
            }
            _ => match prev {
                None => -profile.a_fp,
                Some((r, width)) => {
                    // A one-row window would divide by zero; NAB never has one, treat as far.
                    let y = if width > 1 {
                        (i - r) as f64 / (width - 1) as f64
                    } else {
                        f64::INFINITY
                    };
                    profile.a_fp * scaled_sigmoid(y)
                }
            },
        };
        out.push(s);
    }
    out
}

/// What a scorable row contributes when it fires.
#[derive(Clone, Copy)]
struct Event {
    score: f64,
    /// Global window index, or `None` for a row outside every window.
    window: Option<usize>,
    weight: f64,
}

/// Scores a corpus under one profile, sweeping one global threshold over all distinct scores.
///
/// Rows before the probationary period are ignored. The sweep sorts the scorable rows by
/// score, descending, and adds one score level at a time (O(n log n)); ties keep the
/// higher threshold. With no windows in the corpus the normalised score is 0.
pub fn score_corpus(files: &[LabelledFile], profile: &Profile) -> ProfileResult {
    sweep(files, profile, None)
}

/// Scores a corpus under one profile at a fixed threshold θ (rows fire when score ≥ θ),
/// with no sweep: what a detector with a threshold chosen in advance achieves.
pub fn score_at_threshold(files: &[LabelledFile], profile: &Profile, threshold: f64) -> ProfileResult {
    sweep(files, profile, Some(threshold))
}

/// A file's scorable rows (those after the probationary period): each row's score, its
/// weight under `profile` ([`row_weights`]) and the index of the file's window it falls
/// in, if any. The sweep and [`file_shares`] both judge these.
fn scorable_rows<'a>(
    f: &'a LabelledFile,
    profile: &Profile,
) -> impl Iterator<Item = (f64, f64, Option<usize>)> + 'a {
    let weights = row_weights(f.scores.len(), &f.windows, profile);
    let start = probationary_rows(f.scores.len());
    let mut w = 0;
    (f.scores.iter().zip(weights).enumerate().skip(start)).map(move |(i, (&score, weight))| {
        while w < f.windows.len() && f.windows[w].1 < i {
            w += 1;
        }
        (
            score,
            weight,
            f.windows.get(w).filter(|(l, _)| *l <= i).map(|_| w),
        )
    })
}

/// The threshold sweep behind [`score_corpus`]; with `fixed`, stops at that threshold and
/// reports it instead of the best one.
fn sweep(files: &[LabelledFile], profile: &Profile, fixed: Option<f64>) -> ProfileResult {
    let mut events = Vec::new();
    let mut n_windows = 0;
    for f in files {
        for (score, weight, window) in scorable_rows(f, profile) {
            events.push(Event {
                score,
                window: window.map(|w| n_windows + w),
                weight,
            });
        }
        n_windows += f.windows.len();
    }
    events.sort_by(|a, b| b.score.total_cmp(&a.score));

    let mut best_credit: Vec<Option<f64>> = vec![None; n_windows];
    let mut raw = -profile.a_fn * n_windows as f64;
    let (mut tp, mut fp) = (0, 0);
    let mut best = (raw, fixed.unwrap_or(1.1), tp, fp);
    let mut k = 0;
    while k < events.len() {
        let level = events[k].score;
        if fixed.is_some_and(|t| level < t) {
            break;
        }
        while k < events.len() && events[k].score == level {
            let e = events[k];
            match e.window {
                None => {
                    raw += e.weight;
                    fp += 1;
                }
                Some(w) => match best_credit[w] {
                    None => {
                        raw += e.weight + profile.a_fn;
                        tp += 1;
                        best_credit[w] = Some(e.weight);
                    }
                    Some(c) if e.weight > c => {
                        raw += e.weight - c;
                        best_credit[w] = Some(e.weight);
                    }
                    Some(_) => {}
                },
            }
            k += 1;
        }
        if let Some(t) = fixed {
            best = (raw, t, tp, fp);
        } else if raw > best.0 {
            best = (raw, level, tp, fp);
        }
    }

    let (raw, threshold, tp_windows, fp_rows) = best;
    let perfect = profile.a_tp * n_windows as f64;
    let null = -profile.a_fn * n_windows as f64;
    let score = if n_windows == 0 {
        0.0
    } else {
        100.0 * (raw - null) / (perfect - null)
    };
    ProfileResult {
        profile: profile.name.to_string(),
        threshold,
        raw,
        score,
        tp_windows,
        fn_windows: n_windows - tp_windows,
        fp_rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: Profile = PROFILES[0];

    /// A file of `n` rows, one minute apart, with the given scores and windows.
    fn build_file(scores: Vec<f64>, windows: Vec<(usize, usize)>) -> LabelledFile {
        let t0 = parse_timestamp("2020-01-01 00:00:00").unwrap();
        let timestamps = (0..scores.len()).map(|i| t0 + 60.0 * i as f64).collect();
        LabelledFile {
            name: "test/x.csv".into(),
            timestamps,
            scores,
            windows,
        }
    }

    #[test]
    fn scaled_sigmoid_matches_reference_values() {
        for (y, want) in [
            (-1.0, 0.986614),
            (-0.5, 0.848284),
            (0.0, 0.0),
            (1.0, -0.986614),
            (3.5, -1.0),
        ] {
            assert!((scaled_sigmoid(y) - want).abs() < 1e-6, "sigma({y})");
        }
    }

    #[test]
    fn probationary_period_is_fifteen_percent_capped_at_750() {
        assert_eq!(probationary_rows(100), 15);
        assert_eq!(probationary_rows(10_000), 750);
    }

    #[test]
    fn hit_at_window_start_scores_a_tp() {
        // 100 rows, probation 15; window rows 50..=59; fire only at row 50.
        let mut scores = vec![0.0; 100];
        scores[50] = 1.0;
        let r = score_corpus(&[build_file(scores, vec![(50, 59)])], &STANDARD);
        assert!((r.raw - 1.0).abs() < 1e-12, "raw {}", r.raw);
        assert!((r.score - 100.0).abs() < 1e-9);
        assert_eq!(
            (r.tp_windows, r.fn_windows, r.fp_rows, r.threshold),
            (1, 0, 0, 1.0)
        );
    }

    #[test]
    fn late_hit_earns_little_and_only_the_earliest_hit_counts() {
        let w = row_weights(100, &[(50, 59)], &STANDARD);
        assert!((w[59] - STANDARD.a_tp * scaled_sigmoid(-0.1) / scaled_sigmoid(-1.0)).abs() < 1e-12);
        assert!(
            w.windows(2).skip(50).take(9).all(|p| p[0] > p[1]),
            "credit falls across window"
        );
    }

    #[test]
    fn false_positive_before_first_window_costs_a_fp() {
        // Fire at row 20 (after probation, before the window) and at the window start.
        let mut scores = vec![0.0; 100];
        scores[20] = 1.0;
        scores[50] = 1.0;
        let r = score_corpus(&[build_file(scores, vec![(50, 59)])], &STANDARD);
        assert!((r.raw - (1.0 - 0.11)).abs() < 1e-12, "raw {}", r.raw);
        assert_eq!(r.fp_rows, 1);
    }

    #[test]
    fn false_positive_just_after_a_window_is_discounted() {
        let w = row_weights(100, &[(50, 59)], &STANDARD);
        assert!(w[60] < 0.0 && w[60] > -0.11 * 0.5, "w[60] = {}", w[60]);
        assert!((w[99] + 0.11).abs() < 1e-3, "far rows cost about a_fp");
    }

    #[test]
    fn rows_in_the_probationary_period_are_ignored() {
        let mut scores = vec![0.0; 100];
        scores[5] = 1.0; // probation is 15 rows
        let r = score_corpus(&[build_file(scores, vec![(50, 59)])], &STANDARD);
        assert_eq!((r.fp_rows, r.tp_windows, r.threshold), (0, 0, 1.1));
    }

    #[test]
    fn never_firing_detector_scores_zero_normalised() {
        for profile in &PROFILES {
            let r = score_corpus(&[build_file(vec![0.0; 100], vec![(50, 59), (80, 89)])], profile);
            // All-zero scores: firing everywhere is worse than never firing.
            assert_eq!(r.threshold, 1.1);
            assert!(r.score.abs() < 1e-9, "{}: {}", profile.name, r.score);
        }
    }

    #[test]
    fn perfect_detector_scores_one_hundred_on_every_profile() {
        let mut scores = vec![0.0; 200];
        scores[50] = 0.9;
        scores[120] = 0.8;
        let file = build_file(scores, vec![(50, 69), (120, 139)]);
        for profile in &PROFILES {
            let r = score_corpus(std::slice::from_ref(&file), profile);
            assert!((r.score - 100.0).abs() < 1e-9, "{}: {}", profile.name, r.score);
            assert_eq!(r.threshold, 0.8);
        }
    }

    #[test]
    fn window_bounds_map_to_rows_by_timestamp() {
        let file = build_file(vec![0.0; 10], vec![]);
        let bounds = [(
            "2020-01-01 00:02:00.000000".to_string(),
            "2020-01-01 00:04:00".to_string(),
        )];
        let f = LabelledFile::new("x", file.timestamps.clone(), file.scores.clone(), &bounds).unwrap();
        assert_eq!(f.windows, vec![(2, 4)]);
        let bad = [(
            "2021-01-01 00:00:00".to_string(),
            "2021-01-01 00:00:00".to_string(),
        )];
        let err = LabelledFile::new("x", file.timestamps, file.scores, &bad).unwrap_err();
        assert!(err.to_string().contains("2021-01-01 00:00:00"), "{err}");
    }
}
