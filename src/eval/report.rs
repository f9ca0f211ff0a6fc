//! The side-by-side comparison behind `anomalyd eval --compare`: the three autoencoder
//! kinds, the PCA baseline and a trivial baseline, each run through the same detector,
//! rendered as Markdown next to published numbers and spliced into a report file.

use std::path::Path;

use crate::config::{DetectorConfig, ScoreSource};
use crate::eval::inject::{Fault, InjectRun};
use crate::eval::run::{NabRun, SkabRun};
use crate::model::autoencoder::{AutoencoderKind, Noise, Penalty};

/// One detector variant and its results.
#[derive(Clone, Debug)]
pub struct VariantResult {
    /// Short name, e.g. `ae-sparse`.
    pub name: String,
    /// NAB results, if a NAB corpus was given.
    pub nab: Option<NabRun>,
    /// SKAB results, if a SKAB directory was given.
    pub skab: Option<SkabRun>,
    /// Faults injected into each recording of normal operation given (`--inject`),
    /// by the recording's file name.
    pub inject: Vec<(String, InjectRun)>,
    /// Wall time of this variant, seconds.
    pub seconds: f64,
}

/// The compared variants, derived from one base configuration so that only the named
/// difference changes.
pub fn variants(base: &DetectorConfig) -> Vec<(String, DetectorConfig)> {
    let with_kind = |kind: AutoencoderKind| {
        let mut c = base.clone();
        c.model.kind = kind;
        c.model.template = c.model.template.clone().kind(kind);
        c.threshold.score = ScoreSource::Ae;
        c
    };
    let with_score = |score: ScoreSource| {
        let mut c = base.clone();
        c.threshold.score = score;
        c
    };
    vec![
        (
            "ae-undercomplete".into(),
            with_kind(AutoencoderKind::Undercomplete),
        ),
        (
            "ae-sparse-l1".into(),
            with_kind(AutoencoderKind::Sparse {
                penalty: Penalty::L1,
                weight: 1e-3,
            }),
        ),
        (
            "ae-denoising".into(),
            with_kind(AutoencoderKind::Denoising {
                noise: Noise::Gaussian { std: 0.1 },
            }),
        ),
        ("pca".into(), with_score(ScoreSource::Pca)),
        ("trivial (mean window)".into(), with_score(ScoreSource::Mean)),
    ]
}

/// Published reference numbers (NAB scoreboard; SKAB leaderboard, point-wise).
const NAB_PUBLISHED: [(&str, f64); 6] = [
    ("ARTime", 74.9),
    ("Numenta HTM", 70.5),
    ("CAD OSE", 69.9),
    ("KNN CAD", 58.0),
    ("Random Cut Forest", 51.7),
    ("Windowed Gaussian", 39.6),
];
const SKAB_PUBLISHED: [(&str, f64, f64, f64); 4] = [
    ("Conv-AE", 0.78, 13.55, 28.02),
    ("MSET", 0.78, 39.73, 14.13),
    ("T²+Q (PCA)", 0.76, 26.62, 24.92),
    ("LSTM-AE", 0.74, 29.96, 25.92),
];

/// Items named `<detector> (seed N)` (or just `<detector>`) grouped by detector, in
/// order of first appearance.
fn by_detector<'a, T>(items: impl Iterator<Item = (&'a str, T)>) -> Vec<(&'a str, Vec<T>)> {
    let mut groups: Vec<(&str, Vec<T>)> = Vec::new();
    for (name, item) in items {
        let base = name.split(" (seed ").next().unwrap_or(name);
        match groups.iter_mut().find(|(b, _)| *b == base) {
            Some((_, g)) => g.push(item),
            None => groups.push((base, vec![item])),
        }
    }
    groups
}

/// NAB's standard score split by file (`eval --per-file`), as Markdown: one row per
/// file, one column per detector with the mean of its seeds' shares in NAB points
/// ([`crate::eval::nab::file_shares`], each run at its own swept threshold), and the
/// windows its seeds hit of those they could; a last row of totals. Empty without NAB.
pub fn per_file_table(results: &[VariantResult]) -> String {
    let groups = by_detector(
        results
            .iter()
            .filter_map(|r| r.nab.as_ref().map(|n| (r.name.as_str(), &n.per_file))),
    );
    let Some((_, first)) = groups.first() else {
        return String::new();
    };
    let mut md = format!(
        "| file | windows |{}\n|---|---|{}\n",
        groups.iter().map(|(d, _)| format!(" {d} |")).collect::<String>(),
        "---|".repeat(groups.len())
    );
    let mut totals = vec![0.0; groups.len()];
    for (i, share) in first[0].iter().enumerate() {
        md += &format!("| {} | {} |", share.name, share.windows);
        for (g, (_, runs)) in groups.iter().enumerate() {
            let points = runs.iter().map(|r| r[i].points).sum::<f64>() / runs.len() as f64;
            let hit: usize = runs.iter().map(|r| r[i].hit).sum();
            totals[g] += points;
            md += &format!(" {points:.2} ({hit}/{}) |", share.windows * runs.len());
        }
        md.push('\n');
    }
    let windows: usize = first[0].iter().map(|s| s.windows).sum();
    md += &format!("| **total** | {windows} |");
    for t in totals {
        md += &format!(" **{t:.2}** |");
    }
    md + "\n"
}

/// With several seeds per detector (results named `<detector> (seed N)`), one row per
/// detector: each seed's NAB standard score and SKAB F1 / FAR, their means and spreads
/// (max − min), as Markdown.
pub fn seed_summary(results: &[VariantResult]) -> String {
    let groups = by_detector(results.iter().map(|r| (r.name.as_str(), r)));
    let stats = |xs: &[f64], digits: usize| -> String {
        if xs.is_empty() {
            return String::new();
        }
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let spread =
            xs.iter().cloned().fold(f64::MIN, f64::max) - xs.iter().cloned().fold(f64::MAX, f64::min);
        let each: Vec<String> = xs.iter().map(|x| format!("{x:.digits$}")).collect();
        format!(
            "**{mean:.digits$}** (spread {spread:.digits$}; {})",
            each.join(" / ")
        )
    };
    let mut md = String::from(
        "| detector | NAB standard, mean (spread; each seed) | SKAB F1 | SKAB FAR % |\n|---|---|---|---|\n",
    );
    for (name, rs) in groups {
        let nab: Vec<f64> = rs
            .iter()
            .filter_map(|r| r.nab.as_ref())
            .map(|n| n.results[0].score)
            .collect();
        let f1: Vec<f64> = rs
            .iter()
            .filter_map(|r| r.skab.as_ref())
            .map(|k| k.point.f1)
            .collect();
        let far: Vec<f64> = rs
            .iter()
            .filter_map(|r| r.skab.as_ref())
            .map(|k| k.point.far)
            .collect();
        md.push_str(&format!(
            "| anomalyd {name} | {} | {} | {} |\n",
            stats(&nab, 2),
            stats(&f1, 2),
            stats(&far, 2)
        ));
    }
    md
}

/// Renders the results as Markdown tables.
pub fn render(results: &[VariantResult], command: &str) -> String {
    let mut md = String::new();
    md.push_str(&format!("Measured with:\n\n```\n{command}\n```\n\n"));
    if results.iter().any(|r| r.nab.is_some()) {
        md.push_str("**NAB** (58 files, NAB's scorer reimplemented, one threshold per profile swept over the corpus)\n\n");
        md.push_str("| detector | standard | reward_low_FP | reward_low_FN | windows hit | FP rows (std) | seconds |\n|---|---|---|---|---|---|---|\n");
        for r in results {
            if let Some(n) = &r.nab {
                let [s, fp, fnr] = [&n.results[0], &n.results[1], &n.results[2]];
                md.push_str(&format!(
                    "| anomalyd {} | {:.2} | {:.2} | {:.2} | {}/{} | {} | {:.1} |\n",
                    r.name,
                    s.score,
                    fp.score,
                    fnr.score,
                    s.tp_windows,
                    s.tp_windows + s.fn_windows,
                    s.fp_rows,
                    r.seconds
                ));
            }
        }
        for (name, score) in NAB_PUBLISHED {
            md.push_str(&format!("| {name} (published) | {score:.1} | | | | | |\n"));
        }
        md.push('\n');
    }
    if results.iter().any(|r| r.skab.is_some()) {
        md.push_str("**SKAB valve1** (first 400 rows of each file warm up, the rest is scored; alarm = `alert` column)\n\n");
        md.push_str("| detector | F1 | FAR % | MAR % | NAB-variant std | missed CPs | FP events |\n|---|---|---|---|---|---|---|\n");
        for r in results {
            if let Some(k) = &r.skab {
                md.push_str(&format!(
                    "| anomalyd {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |\n",
                    r.name,
                    k.point.f1,
                    k.point.far,
                    k.point.mar,
                    k.changepoint.standard,
                    k.changepoint.missed,
                    k.changepoint.fps
                ));
            }
        }
        for (name, f1, far, mar) in SKAB_PUBLISHED {
            md.push_str(&format!(
                "| {name} (published, all 34 files) | {f1:.2} | {far:.2} | {mar:.2} | | | |\n"
            ));
        }
        md.push('\n');
    }
    md.push_str(&inject_tables(results));
    md
}

/// One table per recording of normal operation faults were injected into: every
/// variant's false alarms on it and faults caught ([`inject_table`]).
pub fn inject_tables(results: &[VariantResult]) -> String {
    let files: Vec<&str> = results
        .first()
        .map(|r| r.inject.iter().map(|(f, _)| f.as_str()).collect())
        .unwrap_or_default();
    let mut md = String::new();
    for (i, file) in files.iter().enumerate() {
        let runs: Vec<(String, InjectRun)> = (results.iter())
            .filter_map(|r| r.inject.get(i).map(|(_, run)| (r.name.clone(), run.clone())))
            .collect();
        md.push_str(&format!(
            "**Faults injected into {file}** (8 onsets a kind after the first quarter; caught / injected, median rows to the alert; clean: false alarms after the first quarter)\n\n{}\n",
            inject_table(&runs)
        ));
    }
    md
}

/// A Markdown table of injection runs, one row per `(detector, run)`: the clean
/// recording's false alarms, then each fault's caught / injected and median delay.
/// Detectors named `<name> (seed N)` also get a row of their mean over the seeds.
pub fn inject_table(runs: &[(String, InjectRun)]) -> String {
    let Some((_, first)) = runs.first() else {
        return String::new();
    };
    let kinds: Vec<Fault> = first.faults.iter().map(|r| r.fault).collect();
    let mut out = String::from("| detector | clean: alerts, % rows in alert |");
    for k in &kinds {
        out += &format!(" {} |", k.name());
    }
    out += &format!("\n|---|---|{}\n", "---|".repeat(kinds.len()));
    for (name, run) in runs {
        out += &format!(
            "| {name} | {}, {:.1} % |",
            run.clean_alerts,
            100.0 * run.clean_alert_share
        );
        for r in &run.faults {
            let delay = r.median_delay().map_or("–".into(), |d| format!("{d:.0}"));
            out += &format!(" {}/{} ({delay}) |", r.caught, r.injected);
        }
        out += "\n";
    }
    let groups = by_detector(runs.iter().map(|(name, run)| (name.as_str(), run)));
    for (base, group) in groups.iter().filter(|(_, g)| g.len() > 1) {
        let m = group.len() as f64;
        let alerts = group.iter().map(|r| r.clean_alerts as f64).sum::<f64>() / m;
        let share = group.iter().map(|r| r.clean_alert_share).sum::<f64>() / m;
        out += &format!(
            "| **{base}, mean of {}** | {alerts:.1}, {:.1} % |",
            group.len(),
            100.0 * share
        );
        for (i, _) in kinds.iter().enumerate() {
            let rate = group.iter().map(|r| r.faults[i].rate()).sum::<f64>() / m;
            out += &format!(" {:.0} % |", 100.0 * rate);
        }
        out += "\n";
    }
    out
}

const BEGIN: &str = "<!-- eval:begin (written by `anomalyd eval --report`) -->";
const END: &str = "<!-- eval:end -->";

/// Replaces the generated block of `path` (between the eval markers) with `block`,
/// keeping everything else; appends the block if the markers are absent.
///
/// # Errors
///
/// Any IO error.
pub fn splice(path: &Path, block: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let generated = format!("{BEGIN}\n{block}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => format!("{}{generated}{}", &old[..b], &old[e + END.len()..]),
        _ => format!("{old}\n{generated}\n"),
    };
    std::fs::write(path, new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::inject::FaultResult;

    #[test]
    fn splice_replaces_only_the_generated_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.md");
        std::fs::write(&path, format!("intro\n{BEGIN}\nold\n{END}\noutro\n")).unwrap();
        splice(&path, "new\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("intro\n{BEGIN}\nnew\n{END}\noutro\n"));
    }

    #[test]
    fn each_recording_gets_a_table_of_every_variant() {
        let run = |caught| InjectRun {
            clean_alerts: 1,
            clean_alert_share: 0.01,
            faults: vec![FaultResult {
                fault: Fault::Drift,
                injected: 8,
                caught,
                delays: vec![50; caught],
            }],
        };
        let variant = |name: &str, caught| VariantResult {
            name: name.into(),
            nab: None,
            skab: None,
            inject: vec![("a.csv".into(), run(caught)), ("b.csv".into(), run(caught + 1))],
            seconds: 0.0,
        };
        let md = inject_tables(&[variant("ae", 2), variant("pca", 5)]);
        assert_eq!(md.matches("**Faults injected into").count(), 2, "{md}");
        let b = &md[md.find("into b.csv").expect("b's table")..];
        assert!(b.contains("| ae | 1, 1.0 % | 3/8 (50) |"), "{md}");
        assert!(b.contains("| pca | 1, 1.0 % | 6/8 (50) |"), "{md}");
        assert_eq!(
            render(&[variant("ae", 2)], "cmd").matches("into a.csv").count(),
            1
        );
    }

    #[test]
    fn the_table_gives_each_seed_and_their_mean() {
        let run = |caught| InjectRun {
            clean_alerts: 2,
            clean_alert_share: 0.05,
            faults: vec![FaultResult {
                fault: Fault::Shift,
                injected: 4,
                caught,
                delays: (0..caught).map(|k| 10 * (k + 1)).collect(),
            }],
        };
        let md = inject_table(&[("ae (seed 1)".into(), run(1)), ("ae (seed 2)".into(), run(3))]);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| detector | clean: alerts, % rows in alert | level shift 2σ |"
        );
        assert_eq!(lines[2], "| ae (seed 1) | 2, 5.0 % | 1/4 (10) |");
        assert_eq!(lines[3], "| ae (seed 2) | 2, 5.0 % | 3/4 (20) |");
        assert_eq!(lines[4], "| **ae, mean of 2** | 2.0, 5.0 % | 50 % |");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn the_per_file_table_averages_each_detectors_seeds() {
        let share = |name: &str, hit, points| crate::eval::nab::FileShare {
            name: name.into(),
            windows: 2,
            hit,
            fp_rows: 0,
            points,
        };
        let variant = |name: &str, a: f64, b: f64| VariantResult {
            name: name.into(),
            nab: Some(NabRun {
                results: Vec::new(),
                files: 2,
                rows: 0,
                per_file: vec![share("x/a.csv", 2, a), share("x/b.csv", 1, b)],
            }),
            skab: None,
            inject: Vec::new(),
            seconds: 0.0,
        };
        let md = per_file_table(&[
            variant("ae (seed 1)", 40.0, 10.0),
            variant("ae (seed 2)", 30.0, 20.0),
            variant("pca", 20.0, 5.0),
        ]);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "| file | windows | ae | pca |");
        assert_eq!(lines[2], "| x/a.csv | 2 | 35.00 (4/4) | 20.00 (2/2) |");
        assert_eq!(lines[3], "| x/b.csv | 2 | 15.00 (2/4) | 5.00 (1/2) |");
        assert_eq!(lines[4], "| **total** | 4 | **50.00** | **25.00** |");
        assert_eq!(per_file_table(&[]), "");
    }

    #[test]
    fn variants_differ_only_in_the_named_part() {
        let base = crate::config::Config::from_toml_str("").unwrap().detector;
        let v = variants(&base);
        assert_eq!(v.len(), 5);
        assert_eq!(v[3].1.threshold.score, ScoreSource::Pca);
        assert_eq!(v[3].1.model, base.model);
        assert!(matches!(v[1].1.model.kind, AutoencoderKind::Sparse { .. }));
    }
}
