//! `anomalyd eval`: argument plumbing and printing around the
//! library's `eval` module (binary-only, hence anyhow).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anomalyd::config::{Config, DetectorConfig};
use anomalyd::eval::inject;
use anomalyd::eval::nab::{self, ProfileResult};
use anomalyd::eval::report::{self, VariantResult};
use anomalyd::eval::run::{self, default_threads};
use anomalyd::eval::series::{Series, read_series};
use anyhow::{Context, bail};

/// `anomalyd eval` arguments.
#[derive(clap::Args)]
pub(crate) struct EvalArgs {
    /// The TOML file used for NAB (and SKAB unless --skab-config is given).
    #[arg(long)]
    config: PathBuf,
    /// NAB data directory (`<category>/<file>.csv`).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// NAB `combined_windows.json`.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Score precomputed `anomaly_score` CSVs from this directory instead of replaying.
    #[arg(long)]
    scores: Option<PathBuf>,
    /// SKAB directory of semicolon CSVs (e.g. valve1).
    #[arg(long)]
    skab: Option<PathBuf>,
    /// Config for the SKAB run (default: --config).
    #[arg(long)]
    skab_config: Option<PathBuf>,
    /// Run the three autoencoder kinds, PCA and a trivial baseline side by side.
    #[arg(long)]
    compare: bool,
    /// Splice the results table into this Markdown file (e.g. docs/quality.md).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Run every detector with this many seeds (`model.seed`, `model.seed + 1`, …) and
    /// report each seed, their mean and their spread.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// A recording of normal operation (any CSV `replay` reads) to inject synthetic
    /// faults into (repeatable); reports which kinds each detector catches, how soon,
    /// and its false alarms on the recording as it is. Uses --config.
    #[arg(long)]
    inject: Vec<PathBuf>,
    /// Also print NAB's standard score split by file: each detector's share of it in
    /// NAB points (the mean over its seeds) and the windows it hit, at its own swept
    /// threshold. Needs --corpus.
    #[arg(long)]
    per_file: bool,
}

fn load(path: &Path) -> anyhow::Result<DetectorConfig> {
    Ok(Config::load(path)
        .with_context(|| format!("invalid config {}", path.display()))?
        .detector)
}

pub(crate) fn run(a: EvalArgs) -> anyhow::Result<()> {
    let threads = a.threads.unwrap_or_else(default_threads);
    let windows = match &a.labels {
        Some(l) => Some(nab::load_windows(l).with_context(|| format!("cannot load labels {}", l.display()))?),
        None => None,
    };
    if let Some(dir) = &a.scores {
        let windows = windows.context("--scores needs --labels")?;
        let files = nab::load_scores_dir(dir, &windows)?;
        print_nab(
            "precomputed scores",
            &nab::PROFILES
                .iter()
                .map(|p| nab::score_corpus(&files, p))
                .collect::<Vec<_>>(),
        );
        return Ok(());
    }
    if a.corpus.is_some() != windows.is_some() {
        bail!("--corpus and --labels go together");
    }
    if a.per_file && a.corpus.is_none() {
        bail!("--per-file needs --corpus and --labels");
    }
    if a.corpus.is_none() && a.skab.is_none() && a.inject.is_empty() {
        bail!(
            "nothing to evaluate: give --corpus with --labels, --skab, --inject, or --scores with --labels"
        );
    }
    let recordings: Vec<(String, Series)> = (a.inject.iter())
        .map(|p| {
            let series =
                read_series(p, None, None).with_context(|| format!("cannot read {}", p.display()))?;
            // Named by the file alone: the report is committed, a path is the machine's.
            let name = p
                .file_name()
                .map_or_else(|| p.display().to_string(), |f| f.to_string_lossy().into_owned());
            Ok((name, series))
        })
        .collect::<anyhow::Result<_>>()?;
    let nab_base = load(&a.config)?;
    let skab_base = match &a.skab_config {
        Some(p) => load(p)?,
        None => nab_base.clone(),
    };
    let pairs: Vec<(String, DetectorConfig, DetectorConfig)> = if a.compare {
        report::variants(&nab_base)
            .into_iter()
            .zip(report::variants(&skab_base))
            .map(|((name, n), (_, s))| (name, n, s))
            .collect()
    } else {
        vec![("as configured".into(), nab_base, skab_base)]
    };
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let pairs: Vec<(String, DetectorConfig, DetectorConfig)> = pairs
        .into_iter()
        .flat_map(|(name, nab_cfg, skab_cfg)| {
            let base = nab_cfg.model.template.seed_value();
            (0..a.seeds).map(move |k| {
                let seed = base + k;
                let name = if a.seeds > 1 {
                    format!("{name} (seed {seed})")
                } else {
                    name.clone()
                };
                (name, with_seed(&nab_cfg, seed), with_seed(&skab_cfg, seed))
            })
        })
        .collect();
    let mut results = Vec::new();
    for (name, nab_cfg, skab_cfg) in pairs {
        let started = Instant::now();
        let nab = match (&a.corpus, &windows) {
            (Some(c), Some(w)) => Some(run::run_nab(&nab_cfg, c, w, threads)?),
            _ => None,
        };
        let skab = match &a.skab {
            Some(dir) => Some(run::run_skab(&skab_cfg, dir, threads)?),
            None => None,
        };
        let inject = (recordings.iter())
            .map(|(file, series)| {
                let run = inject::run_inject(&nab_cfg, series, inject::Spec::default(), threads);
                (file.clone(), run)
            })
            .collect();
        let r = VariantResult {
            name,
            nab,
            skab,
            inject,
            seconds: started.elapsed().as_secs_f64(),
        };
        print_variant(&r);
        results.push(r);
    }
    if !recordings.is_empty() {
        println!("{}", report::inject_tables(&results));
    }
    if a.per_file {
        println!(
            "NAB standard score by file:\n{}",
            report::per_file_table(&results)
        );
    }
    let summary =
        (a.seeds > 1 && (a.corpus.is_some() || a.skab.is_some())).then(|| report::seed_summary(&results));
    if let Some(md) = &summary {
        println!("{md}");
    }
    if let Some(path) = &a.report {
        // The program as `anomalyd`, not the path it was run from: the report is
        // committed and must not carry a path of the machine that wrote it.
        let command = std::iter::once("anomalyd".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
        let mut md = report::render(&results, &command);
        if let Some(s) = summary {
            md = format!("{s}\n{md}");
        }
        report::splice(path, &md).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn with_seed(config: &DetectorConfig, seed: u64) -> DetectorConfig {
    let mut c = config.clone();
    c.model.template = c.model.template.clone().seed(seed);
    c
}

fn print_variant(r: &VariantResult) {
    for (file, run) in &r.inject {
        let one = [(r.name.clone(), run.clone())];
        println!("{} injected into {file}:\n{}", r.name, report::inject_table(&one));
    }
    if let Some(n) = &r.nab {
        print_nab(
            &format!(
                "{} ({} files, {} rows, {:.1} s)",
                r.name, n.files, n.rows, r.seconds
            ),
            &n.results,
        );
    }
    if let Some(k) = &r.skab {
        println!(
            "{} SKAB ({} files): F1 {:.2}  FAR {:.2} %  MAR {:.2} %  | changepoint NAB std {:.2} lowFP {:.2} lowFN {:.2}  missed {}  FP events {}",
            r.name,
            k.files,
            k.point.f1,
            k.point.far,
            k.point.mar,
            k.changepoint.standard,
            k.changepoint.low_fp,
            k.changepoint.low_fn,
            k.changepoint.missed,
            k.changepoint.fps
        );
    }
}

fn print_nab(title: &str, results: &[ProfileResult]) {
    println!("NAB {title}");
    println!(
        "  {:<20} {:>8} {:>10} {:>6} {:>6} {:>8}",
        "profile", "score", "threshold", "TP", "FN", "FP rows"
    );
    for r in results {
        println!(
            "  {:<20} {:>8.2} {:>10.4} {:>6} {:>6} {:>8}",
            r.profile, r.score, r.threshold, r.tp_windows, r.fn_windows, r.fp_rows
        );
    }
}
