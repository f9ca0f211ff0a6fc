//! The offline workflow end to end on the shared corpora: every NAB and SKAB file is
//! read, replayed, written, read back by `plot` and drawn. The detector settings are the
//! small fixture's, so the test checks the reading and writing path, not the scores.

use std::path::{Path, PathBuf};

use super::nab::load_windows;
use super::plot::{PlotOptions, load_labels, plot_replay, read_replay};
use super::replay::{replay, write_csv};
use super::series::{Series, read_series};
use super::test_datasets;
use crate::config::Config;

fn csv_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(csv_files(&path));
        } else if path.extension().is_some_and(|e| e == "csv") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Replays `series` into `out_dir`, reads the output back as `plot` does and draws it.
fn replay_then_plot(series: &Series, name: &str, out_dir: &Path, options: &PlotOptions, picture: &str) {
    let config = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small.toml"))
        .unwrap()
        .detector;
    let (rows, _) = replay(series, &config, name);
    let replay_csv = out_dir.join("replay.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&replay_csv).unwrap());
    write_csv(&mut out, series, &rows).unwrap();
    drop(out);
    let back =
        read_replay(&replay_csv).unwrap_or_else(|e| panic!("{name}: plot cannot read replay output: {e}"));
    assert_eq!(back.t, series.ts, "{name}: timestamps survive replay → plot");
    let channels: Vec<&String> = back.channels.iter().map(|c| &c.0).collect();
    assert_eq!(channels, series.channels.iter().collect::<Vec<_>>(), "{name}");
    let alerting = rows.iter().filter(|r| r.alert).count();
    assert_eq!(back.alert.iter().filter(|a| **a).count(), alerting, "{name}");
    let picture = out_dir.join(picture);
    plot_replay(&replay_csv, &picture, options).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        std::fs::metadata(&picture).unwrap().len() > 1000,
        "{name}: picture written"
    );
}

#[test]
fn every_nab_file_replays_and_plots_with_its_windows() {
    let nab = test_datasets().join("nab");
    let windows = load_windows(&nab.join("labels/combined_windows.json")).unwrap();
    let data = nab.join("data");
    let files = csv_files(&data);
    assert_eq!(files.len(), 58, "NAB has 58 data files");
    let dir = tempfile::tempdir().unwrap();
    let labels = nab.join("labels/combined_windows.json");
    for (i, path) in files.iter().enumerate() {
        let key = path
            .strip_prefix(&data)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        assert!(windows.contains_key(&key), "{key} is labelled");
        let series = read_series(path, None, None).unwrap();
        let options = PlotOptions {
            labels: load_labels(&labels, Some(&key)).unwrap(),
            ..PlotOptions::default()
        };
        let picture = if i % 2 == 0 { "plot.png" } else { "plot.svg" };
        replay_then_plot(&series, &key, dir.path(), &options, picture);
    }
}

#[test]
fn every_skab_file_replays_and_plots_with_its_labels() {
    let files = csv_files(&test_datasets().join("skab"));
    assert_eq!(files.len(), 17, "SKAB: anomaly-free and 16 valve1 files");
    let dir = tempfile::tempdir().unwrap();
    for (i, path) in files.iter().enumerate() {
        let name = path.display().to_string();
        let header = super::series::Table::read(path).unwrap().header().to_vec();
        let labelled = header.iter().any(|h| h == "anomaly");
        // README's replay: the sensor channels, not the label columns.
        let channels: Vec<String> = header[1..]
            .iter()
            .filter(|h| *h != "anomaly" && *h != "changepoint")
            .cloned()
            .collect();
        assert_eq!(channels.len(), 8, "{name}: SKAB has 8 sensor channels");
        let series = read_series(path, None, Some(channels.as_slice())).unwrap();
        let options = PlotOptions {
            labels: if labelled {
                load_labels(path, None).unwrap()
            } else {
                Vec::new()
            },
            ..PlotOptions::default()
        };
        assert_eq!(
            labelled,
            !options.labels.is_empty(),
            "{name}: valve1 files have anomalies"
        );
        let picture = if i % 2 == 0 { "plot.png" } else { "plot.svg" };
        replay_then_plot(&series, &name, dir.path(), &options, picture);
    }
}
