//! Detector benches: scoring one window with both models (normalise → autoencoder ∥
//! PCA → MSE) for 1×32 and 8×32 windows, one retrain of the default size (3000 windows
//! × 32, default net), and replay throughput (window → both scores → threshold →
//! anomaly score → alert state) on NAB's `realKnownCause/nyc_taxi.csv` (10,320 rows)
//! with retraining off (`retrain_every = 0` and `accept_after_secs = 0`: only the first
//! model is trained), without scheduled retrains but with acceptance (which trains), and
//! at the default cadence. Whole replays include the first training (row 287); `stream_nyc_taxi/stride1_warm` times only the steady state: a
//! detector that has seen the first 1,000 rows (model trained) is cloned outside the
//! timed closure and fed the remaining 9,320. Models and data are built outside the
//! timed closures; everything is seeded.

use std::hint::black_box;
use std::path::PathBuf;

use anomalyd::config::{Config, DetectorConfig};
use anomalyd::detector::Detector;
use anomalyd::eval::replay::replay;
use anomalyd::eval::series::read_series;
use anomalyd::model::Workspace;
use anomalyd::reading::SensorId;
use anomalyd::trainer::{TrainJob, TrainingBuffer, train};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
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
        windows: {
            let data = windows(rows, size, channels);
            let mut buffer = TrainingBuffer::new(rows, size * channels, channels);
            for row in data.rows() {
                buffer.push(row.as_slice().expect("standard layout"));
            }
            buffer
        },
        channels,
        fresh: rows,
        warm: None,
    }
}

fn bench_score(c: &mut Criterion) {
    let cfg = config("");
    for (name, channels) in [("score_window/1x32", 1), ("score_window/8x32", 8)] {
        let model = train(&job(1000, 32, channels), &cfg.model).expect("trains");
        let x = windows(1, 32, channels).row(0).to_vec();
        let mut ws = Workspace::default();
        c.bench_function(name, |b| b.iter(|| model.score(black_box(&x), &mut ws)));
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

fn nyc_taxi() -> anomalyd::eval::series::Series {
    // As the tests: ANOMALYD_DATASETS, else the datasets beside the repo.
    let datasets = std::env::var_os("ANOMALYD_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets"));
    let path = datasets.join("nab/data/realKnownCause/nyc_taxi.csv");
    read_series(&path, None, None).unwrap_or_else(|e| {
        panic!(
            "the replay bench needs NAB beside the repo or in ANOMALYD_DATASETS ({}): {e}",
            path.display()
        )
    })
}

fn bench_replay(c: &mut Criterion) {
    let series = nyc_taxi();
    let mut group = c.benchmark_group("replay_nyc_taxi");
    group.sample_size(10);
    group.throughput(Throughput::Elements(series.len() as u64));
    for (name, extra) in [
        // Retraining off: only the first model is trained. Both keys are needed, as an
        // alert accepted as the new normal trains a model too.
        (
            "stride1_no_retrain",
            "[training]\nretrain_every = 0\n[learning]\naccept_after_secs = 0\n",
        ),
        // What `stride1_no_retrain` measured before: no scheduled retrain, but every
        // accepted alert trains (nyc_taxi accepts several), so it is mostly training.
        ("stride1_no_scheduled_retrain", "[training]\nretrain_every = 0\n"),
        ("stride1_default_retrain", ""),
    ] {
        let cfg = config(extra);
        group.bench_function(name, |b| b.iter(|| replay(black_box(&series), &cfg, "nyc_taxi")));
    }
    group.finish();
}

/// Rows the streaming bench's detector sees before timing starts.
const WARM_ROWS: usize = 1000;

fn bench_stream(c: &mut Criterion) {
    let series = nyc_taxi();
    // Nothing trains in the timed part: no scheduled retrain and no acceptance (at
    // nyc_taxi's 30-minute cadence an alert is accepted, and retrained on, after two
    // rows).
    let cfg = config("[training]\nretrain_every = 0\n[learning]\naccept_after_secs = 0\n");
    let id = SensorId::new("nyc_taxi");
    let names = || series.channels.clone();
    let mut warm = Detector::new(cfg, 1);
    for i in 0..WARM_ROWS {
        warm.process_inline(&id, series.ts[i], series.row(i), names)
            .expect("NAB rows are valid");
    }
    assert!(
        warm.pipeline(&id).is_some_and(|p| p.model_version() > 0),
        "the model is trained within the warm-up rows"
    );
    let mut group = c.benchmark_group("stream_nyc_taxi");
    group.sample_size(20);
    group.throughput(Throughput::Elements((series.len() - WARM_ROWS) as u64));
    group.bench_function("stride1_warm", |b| {
        b.iter_batched(
            || warm.clone(),
            |mut detector| {
                let mut raised = 0usize;
                for i in WARM_ROWS..series.len() {
                    let step = detector
                        .process_inline(&id, series.ts[i], series.row(i), names)
                        .expect("NAB rows are valid");
                    raised += usize::from(step.event.is_some());
                }
                raised
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_score, bench_retrain, bench_replay, bench_stream);
criterion_main!(benches);
