//! Tests of `anomalyd plot`: reading replay CSVs and labels, picking channels, and the
//! SVG and PNG output.

use super::input::flag_spans;
use super::layout::{build_plot, deviation, pick_channels};
use super::*;
use crate::eval::series::parse_timestamp;

/// Writes a small replay CSV: `channels` channels (the second one jumps during the
/// alert), gaps in the scores, one alert run, and a trailing `state` column such as a
/// later version writes.
fn build_replay(dir: &Path, rfc3339: bool, channels: usize) -> std::path::PathBuf {
    let path = dir.join("replay.csv");
    let names: Vec<String> = (0..channels).map(|c| format!("ch{c}")).collect();
    let mut body = format!(
        "timestamp,{},score,pca_score,threshold,anomaly_score,alert,state\n",
        names.join(",")
    );
    for i in 0..120 {
        let t = 1_700_000_000 + 10 * i;
        let ts = if rfc3339 {
            chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339()
        } else {
            t.to_string()
        };
        let x = i as f64 / 10.0;
        let alerting = (60..70).contains(&i);
        let (score, pca) = if i < 20 {
            (String::new(), String::new())
        } else {
            let spike = if alerting { 500.0 } else { 1.0 };
            (
                format!("{}", 1e-3 * (1.0 + x.sin().abs()) * spike),
                format!("{}", 0.01 + 0.001 * x),
            )
        };
        let values: Vec<String> = (0..channels)
            .map(|c| {
                let jump = if c == 1 && alerting { 10.0 } else { 0.0 };
                format!("{}", 20.0 + (x + c as f64).sin() + jump)
            })
            .collect();
        let state = if alerting { "raised" } else { "normal" };
        body += &format!(
            "{ts},{},{score},{pca},0.05,{},{},{state}\n",
            values.join(","),
            u8::from(alerting),
            u8::from(alerting)
        );
    }
    std::fs::write(&path, body).unwrap();
    path
}

fn options(labels: Vec<(f64, f64)>, max_channels: usize) -> PlotOptions {
    PlotOptions { labels, max_channels }
}

/// The `x` of the first `<text>` element whose content is exactly `content`.
fn text_x(svg: &str, content: &str) -> Option<f64> {
    svg.split("<text").skip(1).find_map(|el| {
        let (attrs, rest) = el.split_once('>')?;
        if rest.split('<').next()?.trim() != content {
            return None;
        }
        let x = attrs.split("x=\"").nth(1)?.split('"').next()?;
        x.parse().ok()
    })
}

#[test]
fn svg_has_a_panel_per_channel_scores_and_legends_beside_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let input = build_replay(dir.path(), true, 2);
    let out = dir.path().join("plot.svg");
    plot_replay(
        &input,
        &out,
        &options(vec![(1_700_000_550.0, 1_700_000_750.0)], 6),
    )
    .unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.contains("<svg"));
    for text in [
        "ch0",
        "ch1",
        "AE score",
        "PCA score",
        "threshold",
        "anomaly_score",
        "alert",
        "labelled window",
        "score (log)",
    ] {
        let x = text_x(&svg, text).unwrap_or_else(|| panic!("svg lacks a text {text:?}"));
        // Legend rows and y captions: never inside the data area of a panel.
        assert!(
            x > f64::from(draw::WIDTH - 200) || x < 80.0,
            "{text:?} at x = {x} lies over the data"
        );
    }
    assert!(svg.contains("replay.csv: 120 rows, 1 alert(s)"), "title");
}

#[test]
fn png_plot_is_a_non_empty_png() {
    let dir = tempfile::tempdir().unwrap();
    let input = build_replay(dir.path(), false, 3);
    let out = dir.path().join("plot.png");
    plot_replay(&input, &out, &PlotOptions::default()).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
}

#[test]
fn unknown_extension_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = build_replay(dir.path(), false, 1);
    let err = plot_replay(&input, &dir.path().join("plot.jpg"), &PlotOptions::default()).unwrap_err();
    assert!(err.to_string().contains("`jpg`"), "{err}");
}

#[test]
fn replay_parses_both_timestamp_forms_empty_cells_and_ignores_later_columns() {
    let dir = tempfile::tempdir().unwrap();
    let a = read_replay(&build_replay(dir.path(), true, 2)).unwrap();
    let b = read_replay(&build_replay(dir.path(), false, 2)).unwrap();
    assert_eq!(a.t, b.t);
    let names: Vec<&str> = a.channels.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ["ch0", "ch1"], "`state` is not a channel");
    assert!(a.score[0].is_nan() && a.score[30].is_finite());
    assert_eq!(a.anomaly_score[65], 1.0);
    assert_eq!(flag_spans(&a.t, &a.alert), vec![(a.t[60], a.t[70])]);
}

#[test]
fn replay_without_a_score_column_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.csv");
    std::fs::write(&path, "timestamp,v,alert\n1,2,0\n").unwrap();
    let err = read_replay(&path).unwrap_err().to_string();
    assert!(err.contains("no column named \"score\""), "{err}");
}

#[test]
fn many_channels_keep_the_most_deviant_during_alerts_first() {
    let dir = tempfile::tempdir().unwrap();
    let r = read_replay(&build_replay(dir.path(), false, 8)).unwrap();
    let picked = pick_channels(&r, 3);
    assert_eq!(picked.len(), 3);
    assert_eq!(picked[0], 1, "ch1 jumps during the alert");
    assert_eq!(pick_channels(&r, 8), (0..8).collect::<Vec<_>>());
    let plot = build_plot(&r, "x", &options(vec![], 3));
    assert_eq!(plot.panels.len(), 3 + 2);
    assert!(plot.title.contains("3 of 8 channels"), "{}", plot.title);
}

#[test]
fn labels_come_from_nab_json_or_an_anomaly_column() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("windows.json");
    std::fs::write(
        &json,
        r#"{"a/x.csv": [["2020-01-01 00:00:00.000000", "2020-01-01 01:00:00.000000"]], "a/y.csv": []}"#,
    )
    .unwrap();
    let t0 = parse_timestamp("2020-01-01 00:00:00").unwrap();
    assert_eq!(
        load_labels(&json, Some("a/x.csv")).unwrap(),
        vec![(t0, t0 + 3600.0)]
    );
    let err = load_labels(&json, None).unwrap_err().to_string();
    assert!(err.contains("--label-key"), "{err}");
    let err = load_labels(&json, Some("a/z.csv")).unwrap_err().to_string();
    assert!(err.contains("a/z.csv"), "{err}");

    let csv = dir.path().join("1.csv");
    std::fs::write(
        &csv,
        "datetime;A;anomaly;changepoint\n2020-01-01 00:00:00;1;0;0\n2020-01-01 00:00:01;1;1.0;1\n\
         2020-01-01 00:00:02;1;1.0;0\n2020-01-01 00:00:03;1;0.0;0\n",
    )
    .unwrap();
    assert_eq!(load_labels(&csv, None).unwrap(), vec![(t0 + 1.0, t0 + 3.0)]);
}

#[test]
fn deviation_ranks_a_jump_during_alerts_over_noise() {
    let alert: Vec<bool> = (0..100).map(|i| (50..60).contains(&i)).collect();
    let quiet: Vec<f64> = (0..100).map(|i| (i as f64).sin()).collect();
    let jump: Vec<f64> = (0..100)
        .map(|i| (i as f64).cos() + if alert[i] { 5.0 } else { 0.0 })
        .collect();
    assert!(deviation(&jump, &alert) > 3.0 * deviation(&quiet, &alert));
    let constant = vec![2.0; 100];
    assert!(deviation(&constant, &alert).is_finite());
}
