//! Unit tests of the autoencoder. Here: the shared helpers and training behaviour (the
//! course's claim that an autoencoder beats PCA on nonlinear data among them);
//! `kernels`: gradients and the AVX2 passes; `validation`: parameters, inputs,
//! determinism and serialisation.

use ndarray::{Array2, ArrayView2, Axis};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use super::net::{Autoencoder as Net, LayerGrad};
use super::scalar::{Real, Scalar};
use super::workspace::{Objective, Workspace};
use super::*;
use crate::model::ModelError;

const ACTIVATIONS: [Activation; 4] = [
    Activation::Relu,
    Activation::Tanh,
    Activation::Sigmoid,
    Activation::Linear,
];

fn uniform(rows: usize, cols: usize, lo: f64, hi: f64, seed: u64) -> Array2<f64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || rng.gen_range(lo..hi))
}

/// Points on a curved 1-D manifold in `dims` dimensions: `x_j = sin(θ f_j + φ_j)` with
/// `θ ~ U(0, 3)` the only latent factor.
fn build_manifold(rows: usize, dims: usize, seed: u64) -> Array2<f64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut x = Array2::zeros((rows, dims));
    for mut row in x.rows_mut() {
        let theta: f64 = rng.gen_range(0.0..3.0);
        for (j, v) in row.iter_mut().enumerate() {
            let f = 0.5 + 1.5 * j as f64 / dims as f64;
            let phi = 2.0 * std::f64::consts::PI * j as f64 / dims as f64;
            *v = (theta * f + phi).sin();
        }
    }
    x
}

fn mse(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    (&a - &b).mapv(|d| d * d).mean().unwrap()
}

/// Reconstruction by the top principal component (power iteration on the covariance).
fn pca1_reconstruct(train: &Array2<f64>, test: &Array2<f64>) -> Array2<f64> {
    let mean = train.mean_axis(Axis(0)).unwrap();
    let centred = train - &mean;
    let cov = centred.t().dot(&centred) / train.nrows() as f64;
    let mut v = ndarray::Array1::from_elem(train.ncols(), 1.0);
    for _ in 0..500 {
        let next = cov.dot(&v);
        v = &next / next.dot(&next).sqrt();
    }
    let t = test - &mean;
    let scores = t.dot(&v);
    let proj = scores.insert_axis(Axis(1)).dot(&v.insert_axis(Axis(0)));
    proj + &mean
}

fn build_params(n: usize, hidden: Vec<usize>, latent: usize) -> AutoencoderParams {
    AutoencoderParams::new(n).hidden(hidden).latent(latent)
}

/// The training objective of `x` reconstructed towards itself, in one batch, with the
/// training kernels run in `f64`.
fn objective(net: &Net, x: ArrayView2<f64>, loss: Loss, penalty: Option<(Penalty, f64)>) -> f64 {
    Workspace::<f64>::new(net, x.nrows()).objective(x, Objective { loss, penalty })
}

#[test]
fn loss_falls_on_a_fixed_batch() {
    let x = build_manifold(64, 8, 1);
    let params = build_params(8, vec![8], 2)
        .batch_size(64)
        .epochs(50)
        .learning_rate(1e-2)
        .validation_fraction(0.0)
        .check()
        .unwrap();
    let mut ae = Autoencoder::new(&params);
    let before = objective(&ae, x.view(), Loss::Mse, None);
    let report = ae.fit(&params, x.view()).unwrap();
    let after = objective(&ae, x.view(), Loss::Mse, None);
    assert_eq!(report.epochs_run, 50);
    assert!(report.val_loss.is_none());
    assert!(after < 0.5 * before, "loss before {before}, after {after}");
}

#[test]
fn autoencoder_overfits_a_single_window() {
    let x = uniform(1, 16, -1.0, 1.0, 5);
    let params = build_params(16, vec![16], 4)
        .batch_size(1)
        .epochs(1500)
        .learning_rate(1e-2)
        .validation_fraction(0.0)
        .check()
        .unwrap();
    let mut ae = Autoencoder::new(&params);
    ae.fit(&params, x.view()).unwrap();
    let err = mse(ae.reconstruct_batch(x.view()).view(), x.view());
    assert!(err < 1e-3, "single-window error {err}");
}

#[test]
fn undercomplete_autoencoder_beats_pca_on_a_curved_manifold() {
    let train = build_manifold(2000, 16, 21);
    let test = build_manifold(500, 16, 22);
    let params = build_params(16, vec![32], 1)
        .learning_rate(3e-3)
        .epochs(300)
        .patience(20)
        .check()
        .unwrap();
    let mut ae = Autoencoder::new(&params);
    let report = ae.fit(&params, train.view()).unwrap();
    let ae_err = mse(ae.reconstruct_batch(test.view()).view(), test.view());
    let pca_err = mse(pca1_reconstruct(&train, &test).view(), test.view());
    println!(
        "curved manifold, 16 dims, 1 latent factor: autoencoder mse {ae_err:.3e}, \
         pca(1) mse {pca_err:.3e}, ratio {:.2e}, epochs {}",
        ae_err / pca_err,
        report.epochs_run
    );
    assert!(ae_err < 0.5 * pca_err, "ae {ae_err} vs pca {pca_err}");
}

#[test]
fn early_stopping_waits_only_for_improvements_of_the_least_size() {
    // The same fit, counting any validation improvement or only falls of 5 % or more:
    // the second stops sooner, and still keeps its best weights.
    let train = build_manifold(600, 16, 31);
    let fit = |min_improvement: f64| {
        let params = build_params(16, vec![16], 2)
            .learning_rate(3e-3)
            .epochs(200)
            .patience(3)
            .min_improvement(min_improvement)
            .check()
            .unwrap();
        let mut ae = Autoencoder::new(&params);
        ae.fit(&params, train.view()).unwrap()
    };
    let (any, large) = (fit(0.0), fit(0.05));
    assert!(
        large.epochs_run < any.epochs_run,
        "{} epochs with 5 %, {} with any",
        large.epochs_run,
        any.epochs_run
    );
    assert!(
        large.epochs_run > 3,
        "the first epochs improve by far more than 5 %"
    );
    assert!(large.val_loss.unwrap() >= any.val_loss.unwrap());
}

fn mean_abs_code(kind: AutoencoderKind, x: &Array2<f64>) -> (f64, f64) {
    let params = build_params(16, vec![16], 8)
        .kind(kind)
        .learning_rate(3e-3)
        .epochs(100)
        .validation_fraction(0.0)
        .check()
        .unwrap();
    let mut ae = Autoencoder::new(&params);
    ae.fit(&params, x.view()).unwrap();
    let h = ae.encode_batch(x.view());
    let near_zero = h.iter().filter(|v| v.abs() < 0.05).count() as f64 / h.len() as f64;
    (h.mapv(f64::abs).mean().unwrap(), near_zero)
}

#[test]
fn sparse_l1_gives_a_sparser_code_than_no_penalty() {
    let x = build_manifold(1000, 16, 31);
    let (plain, plain_zero) = mean_abs_code(AutoencoderKind::Undercomplete, &x);
    let sparse_kind = AutoencoderKind::Sparse {
        penalty: Penalty::L1,
        weight: 0.05,
    };
    let (sparse, sparse_zero) = mean_abs_code(sparse_kind, &x);
    println!(
        "mean |h|: plain {plain:.4}, l1 {sparse:.4}; fraction |h|<0.05: plain {plain_zero:.3}, l1 {sparse_zero:.3}"
    );
    assert!(sparse < 0.5 * plain, "mean |h| plain {plain}, sparse {sparse}");
    assert!(sparse_zero > plain_zero);
}

#[test]
fn denoising_autoencoder_pulls_corrupted_inputs_back_towards_clean_ones() {
    let train = build_manifold(2000, 16, 41);
    let clean = build_manifold(300, 16, 42);
    let mut rng = SmallRng::seed_from_u64(43);
    let normal = Normal::new(0.0, 0.3).unwrap();
    let noisy = clean.mapv(|v| v + normal.sample(&mut rng));
    let base = build_params(16, vec![32], 2)
        .learning_rate(3e-3)
        .epochs(100)
        .patience(10);
    let denoising = base
        .clone()
        .kind(AutoencoderKind::Denoising {
            noise: Noise::Gaussian { std: 0.3 },
        })
        .check()
        .unwrap();
    let plain = base.check().unwrap();
    let mut dae = Autoencoder::new(&denoising);
    dae.fit(&denoising, train.view()).unwrap();
    let mut ae = Autoencoder::new(&plain);
    ae.fit(&plain, train.view()).unwrap();
    assert_ne!(dae.layers, ae.layers, "denoising training must differ from plain");

    let recon = dae.reconstruct_batch(noisy.view());
    let to_clean = mse(recon.view(), clean.view());
    let to_noisy = mse(recon.view(), noisy.view());
    let noise = mse(noisy.view(), clean.view());
    println!("denoising: recon→clean {to_clean:.4}, recon→noisy {to_noisy:.4}, noise {noise:.4}");
    assert!(to_clean < to_noisy);
    assert!(to_clean < 0.5 * noise);
}

#[test]
fn reconstruct_batch_equals_reconstruct_into_row_by_row() {
    let x = uniform(20, 32, -1.0, 1.0, 51);
    for act in ACTIVATIONS {
        let params = build_params(32, vec![16, 8], 4).activation(act).check().unwrap();
        let ae = Autoencoder::new(&params);
        let batch = ae.reconstruct_batch(x.view());
        let (mut out, mut scratch) = (vec![0.0; 32], Vec::new());
        for (row, expected) in x.rows().into_iter().zip(batch.rows()) {
            ae.reconstruct_into(row.as_slice().unwrap(), &mut out, &mut scratch);
            for (a, b) in out.iter().zip(expected) {
                approx::assert_abs_diff_eq!(*a, *b, epsilon = 1e-12);
            }
        }
        assert_eq!(ae.encode_batch(x.view()).dim(), (20, 4));
    }
}

mod kernels;
mod validation;
