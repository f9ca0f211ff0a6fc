//! Running the detector over whole labelled corpora (NAB, SKAB) through [`replay`], in
//! parallel over files, and scoring the output. No scoring logic lives here: the
//! detector scores, [`nab`] and [`skab`] judge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::DetectorConfig;
use crate::eval::EvalError;
use crate::eval::nab::{self, LabelledFile, ProfileResult};
use crate::eval::replay::replay;
use crate::eval::series::read_series;
use crate::eval::skab::{self, CpResult, PointMetrics};

/// Runs `job` over `0..n` on `threads` workers; results come back in index order.
pub(crate) fn parallel<T: Send>(n: usize, threads: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, n.max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let r = job(i);
                    // A worker panicking would poison the lock; the scope re-raises
                    // that panic anyway, so unwrapping here hides nothing.
                    out.lock().expect("worker panicked")[i] = Some(r);
                }
            });
        }
    });
    out.into_inner()
        .expect("worker panicked")
        .into_iter()
        .map(|r| r.expect("every index ran"))
        .collect()
}

/// Worker threads to use by default: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A NAB run: one result per profile.
#[derive(Clone, Debug)]
pub struct NabRun {
    /// Standard, low-FP, low-FN.
    pub results: Vec<ProfileResult>,
    /// Files scored.
    pub files: usize,
    /// Rows replayed.
    pub rows: usize,
    /// Each file's share of the standard profile's score at its swept threshold.
    pub per_file: Vec<nab::FileShare>,
}

/// Replays every labelled file of a NAB corpus (`corpus/<category>/<file>.csv`) and
/// scores the anomaly scores under the three profiles.
///
/// # Errors
///
/// The first file that cannot be read or whose windows do not map to its rows.
pub fn run_nab(
    config: &DetectorConfig,
    corpus: &Path,
    windows: &BTreeMap<String, Vec<(String, String)>>,
    threads: usize,
) -> Result<NabRun, EvalError> {
    let names: Vec<&String> = windows.keys().collect();
    let files = parallel(names.len(), threads, |i| {
        nab_file(config, corpus, names[i], &windows[names[i]])
    });
    let files: Vec<LabelledFile> = files.into_iter().collect::<Result<_, _>>()?;
    let rows = files.iter().map(|f| f.scores.len()).sum();
    let results: Vec<ProfileResult> = nab::PROFILES
        .iter()
        .map(|p| nab::score_corpus(&files, p))
        .collect();
    let per_file = nab::file_shares(&files, &nab::PROFILES[0], results[0].threshold);
    Ok(NabRun {
        results,
        files: files.len(),
        rows,
        per_file,
    })
}

fn nab_file(
    config: &DetectorConfig,
    corpus: &Path,
    name: &str,
    windows: &[(String, String)],
) -> Result<LabelledFile, EvalError> {
    let path = corpus.join(name);
    let series = read_series(&path, None, None)?;
    let (rows, _) = replay(&series, config, name);
    let timestamps = series.ts.clone();
    let scores = rows.iter().map(|r| r.anomaly_score).collect();
    LabelledFile::new(name, timestamps, scores, windows)
}

/// A SKAB run over one directory of files.
#[derive(Clone, Debug)]
pub struct SkabRun {
    /// Point-wise metrics, pooled.
    pub point: PointMetrics,
    /// Changepoint (NAB-variant) scores.
    pub changepoint: CpResult,
    /// Files scored.
    pub files: usize,
}

/// Replays every `*.csv` in `dir` (SKAB layout) and scores the `alert` column of the
/// rows after the first [`skab::TRAIN_ROWS`], which only warm the detector up.
///
/// # Errors
///
/// The first unreadable file, or an empty directory.
pub fn run_skab(config: &DetectorConfig, dir: &Path, threads: usize) -> Result<SkabRun, EvalError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| EvalError::Io {
            path: dir.into(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(EvalError::Empty { path: dir.into() });
    }
    let files = parallel(paths.len(), threads, |i| skab_file(config, &paths[i]));
    let files: Vec<skab::SkabFile> = files.into_iter().collect::<Result<_, _>>()?;
    Ok(SkabRun {
        point: skab::point_metrics(&files),
        changepoint: skab::changepoint_score(&files),
        files: files.len(),
    })
}

fn skab_file(config: &DetectorConfig, path: &Path) -> Result<skab::SkabFile, EvalError> {
    let s = skab::load_skab_csv(path)?;
    let (rows, _) = replay(&s.series, config, &s.name);
    let alarm: Vec<bool> = rows.iter().skip(skab::TRAIN_ROWS).map(|r| r.alert).collect();
    Ok(s.test_part(&alarm))
}
