//! Detector benches: scoring one window with both models (normalise → autoencoder ∥
//! PCA → MSE) for 1×32 and 8×32 windows, one retrain of the default size (3000 windows
//! × 32, default net), and replay throughput (window → both scores → threshold →
//! anomaly score → alert state) on NAB's `realKnownCause/nyc_taxi.csv` (10,320 rows)
//! with retraining off and at the default cadence. Models and data are built outside
//! the timed closures; everything is seeded.

use std::hint::black_box;
use std::path::PathBuf;

use anomalyd::config::{Config, DetectorConfig};
use anomalyd::eval::replay::replay;
use anomalyd::eval::series::read_series;
use anomalyd::model::Workspace;
use anomalyd::reading::SensorId;
use anomalyd::trainer::{TrainJob, train};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;

fn config(extra: &str) -> DetectorConfig {
    Config::from_toml_str(extra)
        .expect("bench config is valid")
        .detector
}

/// Sliding windows of a noisy multi-sine, `channels` channels, flattened time-major.
fn windows(rows: usize, size: usize, channels: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, size * channels), |(r, i)| {
        let (t, c) = ((r + i / channels) as f64, (i % channels) as f64);
        (t * 0.1 * (c + 1.0)).sin() + 0.1 * ((t * 7.3 + c).sin() * 43758.5453).fract()
    })
}

fn job(rows: usize, size: usize, channels: usize) -> TrainJob {
    TrainJob {
        sensor: SensorId::new("bench"),
        version: 1,
        windows: windows(rows, size, channels),
        channels,
        warm: None,
    }
}

fn bench_score(c: &mut Criterion) {
    let cfg = config("");
    for (name, channels) in [("score_window/1x32", 1), ("score_window/8x32", 8)] {
        let model = train(&job(1000, 32, channels), &cfg.model).expect("trains");
        let x = windows(1, 32, channels).row(0).to_vec();
        let mut ws = Workspace::default();
        c.bench_function(name, |b| b.iter(|| model.score(black_box(&x), &mut ws, 0)));
    }
}

fn bench_retrain(c: &mut Criterion) {
    let cfg = config("");
    let job = job(3000, 32, 1);
    let mut group = c.benchmark_group("retrain");
    group.sample_size(10);
    group.bench_function("3000x32_default", |b| {
        b.iter(|| train(black_box(&job), &cfg.model))
    });
    group.finish();
}

fn bench_replay(c: &mut Criterion) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets/nab/data/realKnownCause/nyc_taxi.csv");
    let series = read_series(&path, None, None).unwrap_or_else(|e| {
        panic!(
            "the replay bench needs NAB beside the repo ({}): {e}",
            path.display()
        )
    });
    let mut group = c.benchmark_group("replay_nyc_taxi");
    group.sample_size(10);
    group.throughput(Throughput::Elements(series.len() as u64));
    for (name, extra) in [
        ("stride1_no_retrain", "[training]\nretrain_every = 0\n"),
        ("stride1_default_retrain", ""),
    ] {
        let cfg = config(extra);
        group.bench_function(name, |b| b.iter(|| replay(black_box(&series), &cfg, "nyc_taxi")));
    }
    group.finish();
}

criterion_group!(benches, bench_score, bench_retrain, bench_replay);
criterion_main!(benches);
