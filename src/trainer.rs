//! Training: the bounded buffer of recent windows, and the pure function that turns a
//! [`TrainJob`] into a new [`Model`].
//!
//! The detector only *asks* for a model (it emits a `TrainJob`); who runs the job
//! decides where the CPU time goes. `replay` and `eval` call [`train`] inline, so runs
//! are deterministic; the daemon runs it on a blocking thread and keeps scoring with the
//! old model until the new one is installed.

mod buffer;

pub use buffer::{Stamp, TrainingBuffer};

use std::sync::Arc;

use crate::config::ModelConfig;
use crate::model::autoencoder::Autoencoder;
use crate::model::normalise::Normaliser;
use crate::model::pca::PcaModel;
use crate::model::{Model, ModelError};
use crate::reading::SensorId;

/// A request for a new model generation.
#[derive(Clone, Debug)]
pub struct TrainJob {
    /// Whose model.
    pub sensor: SensorId,
    /// Version the new model will carry.
    pub version: u64,
    /// Raw training windows, oldest first, compact (a queued job holds ~100 KB, not
    /// the 2.3 MB of its windows laid out; they are laid out when training starts).
    pub windows: TrainingBuffer,
    /// Channels per reading.
    pub channels: usize,
    /// How many of the newest windows arrived since the previous job.
    pub fresh: usize,
    /// The current model, to warm-start from.
    pub warm: Option<Arc<Model>>,
}

/// Fits normaliser, autoencoder (warm-started when possible) and PCA on the job's
/// windows. Pure and deterministic for a given job and config.
///
/// # Errors
///
/// A [`ModelError`] if the parameters do not fit the window width or there is too
/// little data.
pub fn train(job: &TrainJob, config: &ModelConfig) -> Result<Model, ModelError> {
    let buffer = &job.windows;
    let width = buffer.width();
    let params = config.ae_params(width)?;
    let readings = buffer.counted_readings(job.channels);
    let normaliser = Normaliser::fit_counted(readings, job.channels, config.normalise);
    // Only the windows fitted on are laid out (normalised, as `f64`), not the buffer.
    let layout = |rows: &[usize]| buffer.select(rows, |raw, out| normaliser.apply_into(raw, out));
    let pca = PcaModel::fit(
        layout(&every_kth(buffer.len())).view(),
        config.pca_components.min(width - 1),
    )?;
    let residual = config.skip.applies(job.channels);
    // A warm start fine-tunes on what is new (plus as much replayed older data, at most
    // `FIT_ROWS` in all) instead of refitting the whole buffer: about half the cost of a
    // NAB replay, and no loss of quality (docs/quality.md, sessions 4 and 8).
    let warm = (job.warm.as_ref()).filter(|m| m.ae.n_inputs() == width && m.residual == residual);
    let data = match warm {
        Some(_) => layout(&finetune_rows(
            buffer.len(),
            job.fresh,
            params.seed() ^ job.version,
        )),
        None => layout(&(0..buffer.len()).collect::<Vec<_>>()),
    };
    // With the skip path the autoencoder learns what the PCA leaves of each window.
    let data = if residual {
        pca.residuals(data.view())
    } else {
        data
    };
    let mut ae = match warm {
        Some(m) => m.ae.clone(),
        None => Autoencoder::new(&params),
    };
    ae.fit(&params, data.view())?;
    Ok(Model {
        version: job.version,
        channels: job.channels,
        normaliser,
        ae,
        pca,
        residual,
    })
}

/// Most windows the PCA, and a warm-started autoencoder's fine-tuning, are fitted on.
/// Consecutive windows share all but `stride` readings, so every k-th window of more
/// (the newest included) still holds each reading many times and spans the same
/// principal subspace at 1/k of the cost. The PCA: linfa's truncated SVD was half of a
/// wide sensor's training time (docs/performance.md, "A wide sensor"); NAB's PCA
/// baseline scores 67.99 fitted on 2,000 of its 5,000 windows, 67.87 on all. The
/// fine-tuning: after the drift check has let several periods pass, its fresh windows
/// and as many older ones were up to the whole buffer; capped, the whole-NAB eval takes
/// 18 % less CPU and scores 70.55 (70.82 / 69.57 / 71.27) against 69.97 (docs/quality.md,
/// session 8).
const FIT_ROWS: usize = 2000;

/// Every k-th index of `len`, ending with the last, for the smallest k that keeps at
/// most [`FIT_ROWS`]: the windows the PCA baseline (and skip path) is fitted on.
fn every_kth(len: usize) -> Vec<usize> {
    let step = len.div_ceil(FIT_ROWS).max(1);
    let mut rows: Vec<usize> = (0..len).rev().step_by(step).collect();
    rows.reverse();
    rows
}

/// The rows a warm-started model is fine-tuned on: the `fresh` newest windows and as
/// many older ones drawn at random (so it does not forget what it knew), oldest first,
/// so the held-out validation tail is new data; of more than [`FIT_ROWS`], every k-th
/// (the newest included).
fn finetune_rows(len: usize, fresh: usize, seed: u64) -> Vec<usize> {
    use rand::SeedableRng;
    let fresh = fresh.clamp(1, len);
    let older = len - fresh;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut rows = rand::seq::index::sample(&mut rng, older, fresh.min(older)).into_vec();
    rows.sort_unstable();
    rows.extend(older..len);
    every_kth(rows.len()).into_iter().map(|i| rows[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finetuning_sees_every_fresh_window_and_as_many_older_ones() {
        let rows = finetune_rows(1000, 100, 7);
        assert_eq!(rows.len(), 200);
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert_eq!(rows[100..], (900..1000).collect::<Vec<_>>()[..]);
        assert!(rows[..100].iter().all(|&r| r < 900));
        // Deterministic per seed, different across seeds.
        assert_eq!(rows, finetune_rows(1000, 100, 7));
        assert_ne!(rows, finetune_rows(1000, 100, 8));
        // More fresh windows than older ones: everything, once.
        assert_eq!(finetune_rows(10, 8, 1), (0..10).collect::<Vec<_>>());
        // Nothing new (a retried job): still one row to learn from.
        assert_eq!(finetune_rows(10, 0, 1).len(), 2);
        // Many periods' fresh windows (the drift check let them pass): every k-th of
        // them and of the older ones drawn, at most FIT_ROWS, the newest included.
        let rows = finetune_rows(5000, 2400, 7);
        assert!(
            rows.len() <= FIT_ROWS && rows.len() >= FIT_ROWS / 2,
            "{}",
            rows.len()
        );
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert_eq!(rows.last(), Some(&4999));
        let older = rows.iter().filter(|&&r| r < 2600).count();
        assert!(
            older.abs_diff(rows.len() / 2) <= 1,
            "{older} older of {}",
            rows.len()
        );
    }

    #[test]
    fn the_pca_is_fitted_on_at_most_its_row_budget_ending_with_the_newest() {
        assert_eq!(every_kth(5), vec![0, 1, 2, 3, 4]);
        assert_eq!(every_kth(FIT_ROWS).len(), FIT_ROWS);
        for len in [FIT_ROWS + 1, 5000, 12_345] {
            let rows = every_kth(len);
            assert!(rows.len() <= FIT_ROWS && rows.len() >= FIT_ROWS / 2, "{len}");
            assert_eq!(rows.last(), Some(&(len - 1)));
            let step = rows[1] - rows[0];
            assert!(rows.windows(2).all(|w| w[1] - w[0] == step), "evenly spaced");
        }
    }

    #[test]
    fn the_pca_on_every_third_window_reconstructs_like_the_pca_on_all() {
        // 5,000 sliding windows of 16 readings over a noisy two-period signal.
        let series: Vec<f64> = (0..5015)
            .map(|t| {
                let t = t as f64;
                (t / 9.0).sin() + 0.5 * (t / 23.0).cos() + 0.05 * ((t * 7919.0) % 13.0 - 6.0) / 6.0
            })
            .collect();
        let data = ndarray::Array2::from_shape_fn((5000, 16), |(w, i)| series[w + i]);
        let all = PcaModel::fit(data.view(), 2).unwrap();
        let some = PcaModel::fit(data.select(ndarray::Axis(0), &every_kth(5000)).view(), 2).unwrap();
        let error = |pca: &PcaModel| {
            let (mut out, mut scratch) = (vec![0.0; 16], Vec::new());
            let mut total = 0.0;
            for w in (0..5000).step_by(7) {
                let x = data.row(w).to_vec();
                pca.reconstruct_into(&x, &mut out, &mut scratch);
                total += x.iter().zip(&out).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
            }
            total
        };
        let (e_all, e_some) = (error(&all), error(&some));
        assert!((e_some - e_all).abs() < 0.01 * e_all, "{e_some} vs {e_all}");
    }

    /// Two channels that move together (the second is twice the first) around a level
    /// that drifts between windows within ±1, plus a little deterministic noise.
    fn drifting_pair(level: f64, window: usize) -> Vec<f64> {
        (0..8)
            .flat_map(|t| {
                let n = |k: usize| 0.02 * (((window * 31 + t * 7 + k) * 7919) % 17) as f64 - 0.16;
                [level + n(0), 2.0 * level + n(1)]
            })
            .collect()
    }

    /// Mean AE score of windows whose level is `level`, under a model trained on
    /// levels within ±1 with `[model] skip`.
    fn ae_error_at(level: f64, skip: &str) -> f64 {
        let text =
            format!("[window]\nsize = 8\n[model]\nhidden = [6]\nlatent = 2\nepochs = 30\nskip = \"{skip}\"");
        let config = crate::config::Config::from_toml_str(&text)
            .unwrap()
            .detector
            .model;
        let mut windows = TrainingBuffer::new(400, 16, 16);
        for w in 0..400 {
            windows.push(&drifting_pair((w as f64 * 0.05).sin(), w));
        }
        let job = TrainJob {
            sensor: crate::reading::SensorId::new("s"),
            version: 1,
            windows,
            channels: 2,
            fresh: 400,
            warm: None,
        };
        let model = train(&job, &config).unwrap();
        assert_eq!(model.residual, skip == "pca");
        let mut ws = crate::model::Workspace::default();
        let scores: Vec<f64> = (0..20)
            .map(|w| model.score(&drifting_pair(level, w), &mut ws).ae)
            .collect();
        // The autoencoder's score alone (a history rebuild's) is the same number.
        for (w, s) in scores.iter().enumerate() {
            let alone = model.ae_score(&drifting_pair(level, w), &mut ws);
            assert_eq!(alone.to_bits(), s.to_bits(), "window {w}, skip {skip}");
        }
        scores.iter().sum::<f64>() / 20.0
    }

    #[test]
    fn the_skip_path_follows_a_drift_along_a_learned_direction() {
        // Both channels at 4 times their training range, together: the linear path
        // extrapolates it, a saturating autoencoder alone cannot.
        let (with, without) = (ae_error_at(4.0, "pca"), ae_error_at(4.0, "none"));
        assert!(with < 0.1 * without, "skip {with} vs none {without}");
        // In the training range both reconstruct.
        assert!(ae_error_at(0.5, "pca") < 0.1, "in range with the skip path");
    }
}
