//! What an operator runs besides the daemon's MQTT path: README's offline workflow
//! (replay → plot) through the binary, and the log formats (file, JSON, journal).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::World;
use crate::support::{Daemon, WAIT};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/datasets` beside the repo, or `$ANOMALYD_DATASETS`; fails when absent.
fn datasets() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("ANOMALYD_DATASETS")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            repo().join("../shared/datasets"),
            repo().join("../../shared/datasets"),
        ])
        .collect();
    candidates
        .iter()
        .find(|d| d.join("skab").is_dir() && d.join("nab").is_dir())
        .cloned()
        .unwrap_or_else(|| panic!("datasets not found; tried {candidates:?}"))
}

fn anomalyd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anomalyd"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run anomalyd")
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn readme_replay_then_plot_works_on_nab_and_skab() {
    let data = datasets();
    let dir = tempfile::tempdir().unwrap();
    let key = "realKnownCause/ambient_temperature_system_failure.csv";
    let nab_out = dir.path().join("nab.csv");
    let out = anomalyd(&[
        "replay",
        "--config",
        s(&repo().join("config/anomalyd.toml")),
        "--input",
        s(&data.join("nab/data").join(key)),
        "--output",
        s(&nab_out),
    ]);
    ok(&out, "NAB replay");
    let png = dir.path().join("nab.png");
    let labels = data.join("nab/labels/combined_windows.json");
    let out = anomalyd(&[
        "plot",
        "--input",
        s(&nab_out),
        "--output",
        s(&png),
        "--labels",
        s(&labels),
        "--label-key",
        key,
    ]);
    ok(&out, "NAB plot");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    let skab_in = data.join("skab/valve1/1.csv");
    let skab_out = dir.path().join("skab.csv");
    let columns = "Accelerometer1RMS,Accelerometer2RMS,Current,Pressure,Temperature,Thermocouple,Voltage,Volume Flow RateRMS";
    let out = anomalyd(&[
        "replay",
        "-c",
        s(&repo().join("config/skab.toml")),
        "--input",
        s(&skab_in),
        "--columns",
        columns,
        "--output",
        s(&skab_out),
    ]);
    ok(&out, "SKAB replay");
    let svg = dir.path().join("skab.svg");
    let out = anomalyd(&[
        "plot",
        "--input",
        s(&skab_out),
        "--output",
        s(&svg),
        "--labels",
        s(&skab_in),
    ]);
    ok(&out, "SKAB plot");
    let text = std::fs::read_to_string(&svg).unwrap();
    for want in [
        "Volume Flow RateRMS",
        "labelled window",
        "anomaly_score",
        "threshold",
    ] {
        assert!(text.contains(want), "SKAB plot lacks {want}");
    }
}

#[test]
fn a_missing_config_is_reported_once_without_colour() {
    let out = anomalyd(&["run", "--config", "/nonexistent/anomalyd.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: invalid config /nonexistent/anomalyd.toml"),
        "{err}"
    );
    assert_eq!(
        err.matches("os error 2").count(),
        1,
        "the OS cause printed once: {err}"
    );
    assert!(
        !err.contains('\x1b'),
        "no ANSI when stderr is not a terminal: {err:?}"
    );

    let out = anomalyd(&["--log-format", "json", "run", "-c", "/nonexistent/anomalyd.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_str(err.trim()).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(v["level"], "ERROR");
    assert!(v["message"].as_str().unwrap().contains("os error 2"), "{v}");
}

#[test]
fn the_demo_prints_a_config_that_check_config_accepts_in_any_build() {
    let out = anomalyd(&["demo", "--print-config"]);
    ok(&out, "demo --print-config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("anomalyd simulate --host"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.toml");
    std::fs::write(&path, text.as_bytes()).unwrap();
    let out = anomalyd(&["check-config", "--config", s(&path)]);
    ok(&out, "check-config of the printed demo config");
}

#[test]
fn version_names_the_features_compiled_in() {
    let out = anomalyd(&["--version"]);
    ok(&out, "--version");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("anomalyd {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let want = if cfg!(feature = "embedded-broker") {
        "features: embedded-broker"
    } else {
        "features: none"
    };
    assert!(text.contains(want), "{text}");
}

/// Starts the daemon with `flags`/`env`, waits for its birth message, stops it and
/// returns its log.
async fn daemon_log(
    prefix: &str,
    flags: &[&str],
    env: impl FnOnce(&Path) -> Vec<(String, String)>,
) -> String {
    let w = World::new(prefix, 16).await;
    let mut probe = w.probe().await;
    let mut d = Daemon::start_with(w.dir.path(), &w.config, flags, env);
    probe.wait_online(WAIT).await;
    assert_eq!(d.terminate(WAIT).await, Some(0));
    d.log_text()
}

#[tokio::test]
async fn daemon_logs_to_a_file_as_json_lines() {
    let log = daemon_log("it-logjson", &["--log-format", "json"], |_| Vec::new()).await;
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 2, "{log}");
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} in {line}");
        }
        assert!(v["fields"].is_object(), "fields in {line}");
    }
}

#[tokio::test]
async fn daemon_logs_plain_text_to_a_file_and_priorities_to_the_journal() {
    let log = daemon_log("it-logtext", &[], |_| Vec::new()).await;
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\x1b'), "no ANSI in a file: {log:?}");

    // JOURNAL_STREAM naming the log file itself: what systemd sets for the journal.
    let log = daemon_log("it-logjournal", &[], |path| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).expect("log file");
        vec![("JOURNAL_STREAM".into(), format!("{}:{}", m.dev(), m.ino()))]
    })
    .await;
    for line in log.lines() {
        let prio = line.get(..3).unwrap_or_default();
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&prio),
            "journal line without priority: {line}"
        );
    }
    assert!(log.lines().any(|l| l.starts_with("<6>")), "{log}");
}

/// Every `expr` string in a Grafana dashboard.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboard_queries_only_metrics_the_daemon_exports() {
    use anomalyd::metrics::names;
    let text = std::fs::read_to_string(repo().join("grafana/anomalyd.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");
    let histograms = [
        names::SCORE_SECONDS,
        names::RETRAIN_SECONDS,
        names::SNAPSHOT_SECONDS,
    ];
    let known = [
        names::READINGS,
        names::WINDOWS_SCORED,
        names::ALERTS,
        names::PAYLOAD_ERRORS,
        names::READINGS_DROPPED,
        names::RETRAINS,
        names::TRAINING_BACKLOG,
        names::MODEL_VERSION,
        names::THRESHOLD_READY,
        names::SCORE,
        names::THRESHOLD,
        names::ANOMALY_SCORE,
        names::SENSORS,
        names::BROKER_CONNECTED,
        names::ALERTS_QUEUED,
        names::ALERTS_DROPPED,
        names::SNAPSHOTS,
        names::RECONNECTS,
    ];
    let mut used = std::collections::BTreeSet::new();
    for q in &queries {
        for token in q.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !token.starts_with("anomalyd_") {
                continue;
            }
            let base = token.strip_suffix("_bucket").filter(|b| histograms.contains(b));
            let name = base.unwrap_or(token);
            assert!(
                known.contains(&name) || histograms.contains(&name),
                "dashboard queries {token}, which the daemon does not export: {q}"
            );
            used.insert(name.to_string());
        }
    }
    for per_sensor in [
        names::MODEL_VERSION,
        names::THRESHOLD_READY,
        names::SCORE,
        names::THRESHOLD,
        names::ANOMALY_SCORE,
    ] {
        assert!(
            used.contains(per_sensor),
            "the per-sensor gauge {per_sensor} has a panel"
        );
    }
}

#[test]
fn debian_package_metadata_names_files_that_exist_and_a_unit_that_runs_them() {
    let manifest: toml::Table = std::fs::read_to_string(repo().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    assert_eq!(
        deb["default-features"].as_bool(),
        Some(false),
        "the gateway build has no demo broker"
    );
    let assets = deb["assets"].as_array().unwrap();
    let mut dests = Vec::new();
    for asset in assets {
        let (src, dest) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        dests.push(dest.to_string());
        if src.starts_with("target/") {
            continue; // built by cargo deb
        }
        let found = match src.split_once('*') {
            Some((dir, ext)) => std::fs::read_dir(repo().join(dir))
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(ext)),
            None => repo().join(src).is_file(),
        };
        assert!(found, "package asset {src} is missing");
    }
    for want in [
        "usr/bin/",
        "etc/anomalyd/anomalyd.toml",
        "usr/share/man/man1/",
        "usr/share/bash-completion/completions/anomalyd",
    ] {
        assert!(dests.iter().any(|d| d == want), "no asset installs {want}");
    }
    let unit = std::fs::read_to_string(repo().join("systemd/anomalyd.service")).unwrap();
    assert!(
        unit.lines()
            .any(|l| l.starts_with("ExecStart=/usr/bin/anomalyd run")),
        "the unit runs the packaged binary"
    );
    for licence in ["LICENSE-MIT", "LICENSE-APACHE", "CHANGELOG.md"] {
        assert!(dests.iter().any(|d| d == "usr/share/doc/anomalyd/") && repo().join(licence).is_file());
    }
}
