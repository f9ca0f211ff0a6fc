//! Loading NAB inputs: the label windows JSON and per-file score CSVs in NAB's results
//! layout or anomalyd's own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::LabelledFile;
use crate::eval::EvalError;
use crate::eval::series::{EmptyCell, Table};

/// Reads `labels/combined_windows.json`: corpus name → list of `[start, end]` timestamps.
pub fn load_windows(path: &Path) -> Result<BTreeMap<String, Vec<(String, String)>>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| EvalError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a CSV with `timestamp` and `anomaly_score` columns (other columns are ignored):
/// unix seconds and scores per row.
pub fn read_scores_csv(path: &Path) -> Result<(Vec<f64>, Vec<f64>), EvalError> {
    let table = Table::read(path)?;
    let timestamps = table.times(table.column("timestamp")?)?;
    let scores = table.numbers(table.column("anomaly_score")?, EmptyCell::Reject)?;
    Ok((timestamps, scores))
}

/// Finds the scores file for corpus file `name` (`category/file.csv`) under `dir`.
///
/// Accepts the anomalyd layout `dir/category/file.csv` and NAB's results layout
/// `dir/category/<detector>_file.csv` (the shortest detector prefix wins).
fn find_scores_file(dir: &Path, name: &str) -> Result<PathBuf, EvalError> {
    let missing = || EvalError::MissingScores {
        file: name.to_string(),
        dir: dir.to_path_buf(),
    };
    let direct = dir.join(name);
    if direct.is_file() {
        return Ok(direct);
    }
    let (category, file) = name.rsplit_once('/').unwrap_or(("", name));
    let cat_dir = dir.join(category);
    let entries = match std::fs::read_dir(&cat_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(source) => {
            return Err(EvalError::Io {
                path: cat_dir,
                source,
            });
        }
    };
    let suffix = format!("_{file}");
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(&suffix))
        .min_by_key(|n| n.len())
        .map(|n| cat_dir.join(n))
        .ok_or_else(missing)
}

/// Loads precomputed scores for every labelled file from `dir` (see `find_scores_file`
/// for the layouts), mapping windows to rows. Powers `anomalyd eval --scores DIR`.
pub fn load_scores_dir(
    dir: &Path,
    windows: &BTreeMap<String, Vec<(String, String)>>,
) -> Result<Vec<LabelledFile>, EvalError> {
    windows
        .iter()
        .map(|(name, file_windows)| {
            let path = find_scores_file(dir, name)?;
            let (timestamps, scores) = read_scores_csv(&path)?;
            LabelledFile::new(name, timestamps, scores, file_windows)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::nab::{PROFILES, ProfileResult, score_at_threshold, score_corpus};

    fn nab_dir() -> PathBuf {
        crate::eval::test_datasets().join("nab")
    }

    #[test]
    fn numenta_reference_scores_reproduce_nab_scoreboard() {
        let dir = nab_dir();
        let windows = load_windows(&dir.join("labels/combined_windows.json")).unwrap();
        let files = load_scores_dir(&dir.join("reference/numenta"), &windows).unwrap();
        assert_eq!(files.len(), 58);
        assert_eq!(files.iter().map(|f| f.windows.len()).sum::<usize>(), 116);
        let got: Vec<ProfileResult> = PROFILES.iter().map(|p| score_corpus(&files, p)).collect();
        for r in &got {
            eprintln!("{r:?}");
        }
        // The exhaustive sweep (NAB_SCORING.md §2.5) finds θ ≈ 0.5431 for all three profiles.
        for (r, want) in got.iter().zip([70.10, 63.21, 74.32]) {
            assert!(
                (r.score - want).abs() < 0.01,
                "{}: got {:.4}, want {want}",
                r.profile,
                r.score
            );
        }
        // NAB's final_results.json says 63.12 for reward_low_FP_rate: that is the score at the
        // threshold NAB shipped in config/thresholds.json (0.5752, raw 30.431), which its
        // optimiser settled on; the exhaustive sweep finds a better one (raw 30.645).
        let shipped = score_at_threshold(&files, &PROFILES[1], 0.5751955032348636);
        assert!(
            (shipped.raw - 30.431072517124093).abs() < 1e-6,
            "raw {}",
            shipped.raw
        );
        assert!((shipped.score - 63.12).abs() < 0.01, "got {:.4}", shipped.score);
        let shipped = score_at_threshold(&files, &PROFILES[0], 0.5421876907348634);
        assert!(
            (shipped.raw - 46.634450197137596).abs() < 1e-6,
            "raw {}",
            shipped.raw
        );
    }

    #[test]
    fn missing_scores_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let windows = BTreeMap::from([("realX/a.csv".to_string(), vec![])]);
        let err = load_scores_dir(dir.path(), &windows).unwrap_err();
        assert!(err.to_string().contains("realX/a.csv"), "{err}");
    }

    #[test]
    fn scores_load_from_both_layouts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("c")).unwrap();
        let body = "timestamp,value,anomaly_score\n2020-01-01 00:00:00,1,0.5\n2020-01-01 00:01:00,2,0.25\n";
        std::fs::write(dir.path().join("c/a.csv"), body).unwrap();
        std::fs::write(dir.path().join("c/det_b.csv"), body).unwrap();
        std::fs::write(dir.path().join("c/det_x_b.csv"), "garbage").unwrap();
        let w = vec![(
            "2020-01-01 00:01:00".to_string(),
            "2020-01-01 00:01:00".to_string(),
        )];
        let windows = BTreeMap::from([("c/a.csv".to_string(), w.clone()), ("c/b.csv".to_string(), w)]);
        let files = load_scores_dir(dir.path(), &windows).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].scores, vec![0.5, 0.25]);
        assert_eq!(files[1].windows, vec![(1, 1)]);
    }

    #[test]
    fn bad_score_cell_names_file_line_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        std::fs::write(
            &path,
            "timestamp,anomaly_score\n2020-01-01 00:00:00,0.1\n2020-01-01 00:01:00,oops\n",
        )
        .unwrap();
        let err = read_scores_csv(&path).unwrap_err().to_string();
        assert!(
            err.contains("s.csv:3") && err.contains("anomaly_score") && err.contains("oops"),
            "{err}"
        );
    }
}
