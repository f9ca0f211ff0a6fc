//! Each file's share of a NAB score at a given threshold: where a detector's points come
//! from and where they go.
//!
//! [`file_shares`] applies the same rules as the corpus sweep (`super::sweep`), over the
//! same scorable rows (`super::scorable_rows`): rows after the probationary period fire
//! when their score is at least the threshold; a window earns the largest weight among
//! its firing rows, or costs `a_fn`; a firing row outside every window costs its
//! (discounted) weight. A file's share is its part of the normalised score, so the
//! shares of a corpus add up to the corpus's score at that threshold.

use super::{LabelledFile, Profile, scorable_rows};

/// One file's part of a NAB score.
#[derive(Clone, Debug, PartialEq)]
pub struct FileShare {
    /// Corpus name, e.g. `realKnownCause/nyc_taxi.csv`.
    pub name: String,
    /// Labelled windows.
    pub windows: usize,
    /// Windows with a firing row.
    pub hit: usize,
    /// Firing rows outside every window (after the probationary period).
    pub fp_rows: usize,
    /// Its part of the normalised score, in NAB points.
    pub points: f64,
}

/// Every file's share of the score of `files` under `profile` at `threshold`.
pub fn file_shares(files: &[LabelledFile], profile: &Profile, threshold: f64) -> Vec<FileShare> {
    let n_windows: usize = files.iter().map(|f| f.windows.len()).sum();
    let span = (profile.a_tp + profile.a_fn) * n_windows as f64;
    files
        .iter()
        .map(|f| {
            let mut credit: Vec<Option<f64>> = vec![None; f.windows.len()];
            let mut raw = 0.0;
            let mut fp_rows = 0;
            for (_, weight, window) in scorable_rows(f, profile).filter(|r| r.0 >= threshold) {
                match window {
                    Some(w) => credit[w] = Some(credit[w].map_or(weight, |c: f64| c.max(weight))),
                    None => {
                        raw += weight;
                        fp_rows += 1;
                    }
                }
            }
            raw += credit.iter().map(|c| c.unwrap_or(-profile.a_fn)).sum::<f64>();
            let null = -profile.a_fn * f.windows.len() as f64;
            FileShare {
                name: f.name.clone(),
                windows: f.windows.len(),
                hit: credit.iter().flatten().count(),
                fp_rows,
                points: if span > 0.0 {
                    100.0 * (raw - null) / span
                } else {
                    0.0
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{PROFILES, score_at_threshold, score_corpus};
    use super::*;

    fn file(name: &str, scores: Vec<f64>, windows: Vec<(usize, usize)>) -> LabelledFile {
        LabelledFile {
            name: name.into(),
            timestamps: (0..scores.len()).map(|i| 60.0 * i as f64).collect(),
            scores,
            windows,
        }
    }

    /// Two files of 200 rows: one window hit early plus a false positive far after it,
    /// one window missed with a near miss in it.
    fn corpus() -> Vec<LabelledFile> {
        let mut a = vec![0.0; 200];
        a[105] = 0.9;
        a[190] = 0.8;
        let mut b = vec![0.0; 200];
        b[120] = 0.4;
        vec![
            file("c/a.csv", a, vec![(100, 139)]),
            file("c/b.csv", b, vec![(100, 139)]),
        ]
    }

    #[test]
    fn the_shares_add_up_to_the_corpus_score_at_its_swept_threshold() {
        for profile in &PROFILES {
            let best = score_corpus(&corpus(), profile);
            let shares = file_shares(&corpus(), profile, best.threshold);
            let total: f64 = shares.iter().map(|s| s.points).sum();
            assert!((total - best.score).abs() < 1e-9, "{total} vs {best:?}");
            assert_eq!(shares.iter().map(|s| s.hit).sum::<usize>(), best.tp_windows);
            assert_eq!(shares.iter().map(|s| s.fp_rows).sum::<usize>(), best.fp_rows);
        }
    }

    #[test]
    fn a_lower_threshold_moves_the_near_miss_into_its_files_share() {
        let profile = &PROFILES[0];
        let at = |t: f64| file_shares(&corpus(), profile, t);
        let (high, low) = (at(0.5), at(0.3));
        assert_eq!((high[1].hit, low[1].hit), (0, 1));
        assert!(low[1].points > high[1].points, "{high:?} {low:?}");
        assert_eq!(high[0], low[0], "the other file does not move");
        let total: f64 = low.iter().map(|s| s.points).sum();
        assert!((total - score_at_threshold(&corpus(), profile, 0.3).score).abs() < 1e-9);
    }
}
