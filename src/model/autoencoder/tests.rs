//! Unit tests of the autoencoder: gradient check, training behaviour, the course's claim
//! that an autoencoder beats PCA on nonlinear data, and API contracts.

use ndarray::{Array2, ArrayView2, Axis};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use super::net::{Autoencoder as Net, LayerGrad};
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

/// The training objective of `x` reconstructed towards itself, in one batch.
fn objective(net: &Net, x: ArrayView2<f64>, loss: Loss, penalty: Option<(Penalty, f64)>) -> f64 {
    Workspace::new(net, x.nrows()).objective(net, x, Objective { loss, penalty })
}

/// The training objective of `x` towards itself and its gradients, in one batch.
fn loss_and_gradients(
    net: &Net,
    x: ArrayView2<f64>,
    loss: Loss,
    penalty: Option<(Penalty, f64)>,
) -> (f64, Vec<LayerGrad>) {
    let mut ws = loaded_workspace(net, x);
    let value = ws.run(net, Objective { loss, penalty }, true);
    (value, ws.grads().to_vec())
}

fn loaded_workspace(net: &Net, x: ArrayView2<f64>) -> Workspace {
    let mut ws = Workspace::new(net, x.nrows());
    ws.load(x, 0..x.nrows());
    let (target, input) = ws.target_and_input();
    input.copy_from_slice(target);
    ws
}

/// Central-difference check of every weight and bias.
///
/// Tolerance: relative error `|a - n| / max(|a| + |n|, 1e-4)` below 1e-6. The floor turns
/// the check absolute (1e-10) for gradients below 1e-4, where the difference quotient's
/// own rounding error (~ε·loss/h ≈ 1e-11) would swamp a relative comparison. Relu and L1
/// kinks: the seeded inputs and biases keep every pre-activation and code away from 0 by
/// far more than h (verified by this test passing: a crossed kink gives an O(1) error).
#[test]
fn gradients_match_central_differences_for_every_activation_loss_and_penalty() {
    let x = uniform(5, 4, 0.1, 0.9, 7);
    let mut checked = 0;
    for (hidden, latent) in [(vec![], 3), (vec![3], 2)] {
        for act in ACTIVATIONS {
            let mut outputs: Vec<(Activation, Loss)> = ACTIVATIONS.iter().map(|&o| (o, Loss::Mse)).collect();
            outputs.push((Activation::Sigmoid, Loss::Bce));
            for (out, loss) in outputs {
                for penalty in [None, Some((Penalty::L1, 0.3)), Some((Penalty::L2, 0.3))] {
                    let kind = match penalty {
                        Some((penalty, weight)) => AutoencoderKind::Sparse { penalty, weight },
                        None => AutoencoderKind::Undercomplete,
                    };
                    let params = build_params(4, hidden.clone(), latent)
                        .activation(act)
                        .output_activation(out)
                        .loss(loss)
                        .kind(kind)
                        .seed(11)
                        .check()
                        .unwrap();
                    let mut net = Net::new(&params);
                    let mut rng = SmallRng::seed_from_u64(3);
                    for l in &mut net.layers {
                        l.b.iter_mut().for_each(|b| *b = rng.gen_range(-0.5..0.5));
                    }
                    let name = format!("{act:?}/{out:?}/{loss:?}/{penalty:?}/{hidden:?}");
                    checked += check_gradients(&mut net, x.view(), loss, penalty, &name);
                }
            }
        }
    }
    assert_eq!(checked, 2 * 4 * 5 * 3);
}

fn check_gradients(
    net: &mut Net,
    x: ArrayView2<f64>,
    loss: Loss,
    penalty: Option<(Penalty, f64)>,
    name: &str,
) -> usize {
    const H: f64 = 1e-5;
    let (_, grads) = loss_and_gradients(net, x, loss, penalty);
    for (l, grad) in grads.iter().enumerate() {
        for is_bias in [false, true] {
            let len = if is_bias { grad.b.len() } else { grad.w.len() };
            for i in 0..len {
                let analytic = if is_bias { grad.b[i] } else { grad.w[i] };
                let mut at = |delta: f64| {
                    let p = if is_bias {
                        &mut net.layers[l].b[i]
                    } else {
                        &mut net.layers[l].w[i]
                    };
                    let orig = *p;
                    *p = orig + delta;
                    let v = objective(net, x, loss, penalty);
                    let p = if is_bias {
                        &mut net.layers[l].b[i]
                    } else {
                        &mut net.layers[l].w[i]
                    };
                    *p = orig;
                    v
                };
                let numeric = (at(H) - at(-H)) / (2.0 * H);
                let rel = (analytic - numeric).abs() / (analytic.abs() + numeric.abs()).max(1e-4);
                assert!(
                    rel < 1e-6,
                    "{name}: layer {l} {} {i}: analytic {analytic}, numeric {numeric}, rel {rel}",
                    if is_bias { "bias" } else { "weight" }
                );
            }
        }
    }
    1
}

#[test]
fn dispatched_training_pass_is_bit_identical_to_the_portable_path() {
    // A seed must train the same weights whichever CPU runs it. Shapes as in the scoring
    // test below; every activation, both losses and every penalty.
    let shapes: [(usize, Vec<usize>, usize); 4] = [
        (32, vec![8], 2),
        (128, vec![8], 2),
        (19, vec![7, 5], 3),
        (5, vec![3], 1),
    ];
    for (n, hidden, latent) in shapes {
        let x = uniform(13, n, 0.05, 0.95, 23);
        for act in ACTIVATIONS {
            let outputs = [(Activation::Linear, Loss::Mse), (Activation::Sigmoid, Loss::Bce)];
            for (out, loss) in outputs {
                for penalty in [None, Some((Penalty::L1, 0.3)), Some((Penalty::L2, 0.3))] {
                    let params = build_params(n, hidden.clone(), latent)
                        .activation(act)
                        .output_activation(out)
                        .check()
                        .unwrap();
                    let net = Net::new(&params);
                    let (value, grads) = loss_and_gradients(&net, x.view(), loss, penalty);
                    let mut ws = loaded_workspace(&net, x.view());
                    let portable = ws.run_portable(&net, Objective { loss, penalty });
                    let name = format!("{n} inputs, {hidden:?}, {act:?}/{out:?}/{penalty:?}");
                    assert_eq!(value.to_bits(), portable.to_bits(), "{name}");
                    assert_eq!(grads, ws.grads(), "{name}");
                    // The validation objective, in batches of 4 rows, up to rounding.
                    let batched =
                        Workspace::new(&net, 4).objective(&net, x.view(), Objective { loss, penalty });
                    approx::assert_relative_eq!(batched, value, max_relative = 1e-12);
                }
            }
        }
    }
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

#[test]
fn dispatched_scoring_is_bit_identical_to_the_portable_path() {
    // On an AVX2 machine reconstruct_into takes the AVX2 build of the same code; scores
    // must not depend on the CPU the daemon happens to run on.
    // The shapes cover neuron counts that are and are not multiples of 4 and inputs
    // that are and are not multiples of 8 (the AVX2 path's blocks), and the default net.
    let shapes: [(usize, Vec<usize>, usize); 5] = [
        (32, vec![16], 4),
        (32, vec![16], 2),
        (256, vec![16], 2),
        (19, vec![7, 5], 3),
        (5, vec![3], 1),
    ];
    for ((n, hidden, latent), act) in shapes
        .into_iter()
        .flat_map(|s| ACTIVATIONS.map(|a| (s.clone(), a)))
    {
        let x = uniform(50, n, -3.0, 3.0, 77);
        let params = build_params(n, hidden.clone(), latent)
            .activation(act)
            .check()
            .unwrap();
        let mut ae = Autoencoder::new(&params);
        // Non-zero biases, as after training.
        let noisy = uniform(64, n, -1.0, 1.0, 5);
        ae.fit(&params, noisy.view()).unwrap();
        let (mut a, mut b, mut scratch) = (vec![0.0; n], vec![0.0; n], Vec::new());
        for row in x.rows() {
            let row = row.as_slice().unwrap();
            ae.reconstruct_into(row, &mut a, &mut scratch);
            ae.reconstruct_portable(row, &mut b, &mut scratch);
            let (a_bits, b_bits): (Vec<u64>, Vec<u64>) = (
                a.iter().map(|v| v.to_bits()).collect(),
                b.iter().map(|v| v.to_bits()).collect(),
            );
            assert_eq!(
                a_bits, b_bits,
                "{n} inputs, hidden {hidden:?}, latent {latent}, {act:?}"
            );
        }
    }
}

#[test]
fn check_rejects_each_bad_parameter_by_name() {
    let gaussian = |std| AutoencoderKind::Denoising {
        noise: Noise::Gaussian { std },
    };
    let sparse = |weight| AutoencoderKind::Sparse {
        penalty: Penalty::L1,
        weight,
    };
    let base = || AutoencoderParams::new(32);
    let cases = [
        ("zero inputs", AutoencoderParams::new(0).latent(1), "input width"),
        (
            "latent too wide",
            base().latent(40),
            "latent width must be smaller than the input width 32, got 40",
        ),
        ("latent zero", base().latent(0), "latent width must be at least 1"),
        ("hidden zero", base().hidden(vec![8, 0]), "hidden widths"),
        (
            "bce linear",
            base().loss(Loss::Bce),
            "loss bce requires output activation sigmoid, got linear",
        ),
        ("negative sparsity", base().kind(sparse(-1.0)), "sparsity weight"),
        ("nan sparsity", base().kind(sparse(f64::NAN)), "sparsity weight"),
        ("zero std", base().kind(gaussian(0.0)), "noise std"),
        (
            "masking one",
            base().kind(AutoencoderKind::Denoising {
                noise: Noise::Masking { p: 1.0 },
            }),
            "masking probability",
        ),
        ("zero rate", base().learning_rate(0.0), "learning rate"),
        ("nan rate", base().learning_rate(f64::NAN), "learning rate"),
        ("zero batch", base().batch_size(0), "batch size"),
        ("zero epochs", base().epochs(0), "epochs"),
        (
            "all validation",
            base().validation_fraction(1.0),
            "validation fraction",
        ),
        (
            "negative validation",
            base().validation_fraction(-0.1),
            "validation fraction",
        ),
    ];
    for (name, params, needle) in cases {
        match params.check() {
            Err(e @ ModelError::Params(_)) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "{name}: {msg:?} lacks {needle:?}")
            }
            other => panic!("{name}: expected InvalidParams, got {other:?}"),
        }
    }
    assert!(base().check().is_ok());
    assert!(
        base().latent(40).kind(sparse(0.1)).check().is_ok(),
        "overcomplete sparse is allowed"
    );
}

#[test]
fn fit_rejects_wrong_width_too_few_rows_and_non_finite_data() {
    let params = AutoencoderParams::new(4).latent(2).check().unwrap();
    let mut ae = Autoencoder::new(&params);
    let wide = Array2::zeros((10, 5));
    assert_eq!(
        ae.fit(&params, wide.view()),
        Err(ModelError::Shape { expected: 4, got: 5 })
    );
    let one = Array2::zeros((1, 4));
    assert_eq!(
        ae.fit(&params, one.view()),
        Err(ModelError::TooFewRows { needed: 2, got: 1 })
    );
    let mut bad = Array2::zeros((10, 4));
    bad[[3, 2]] = f64::NAN;
    let err = ae.fit(&params, bad.view()).unwrap_err().to_string();
    assert!(err.contains("row 3, column 2"), "{err}");
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let x = build_manifold(200, 8, 61);
    let params = build_params(8, vec![8], 2).epochs(5).check().unwrap();
    let run = || {
        let mut ae = Autoencoder::new(&params);
        let report = ae.fit(&params, x.view()).unwrap();
        (report, ae.layers)
    };
    assert_eq!(run(), run());
}

/// toml writes floats with Rust's shortest round-trip formatting and parses them exactly,
/// so its round trip is bit-identical. serde_json without its `float_roundtrip` feature
/// (not enabled in this crate) may move a weight by one ulp, hence the 1e-12 there.
#[test]
fn serde_round_trip_gives_identical_outputs() {
    let params = build_params(12, vec![8], 3).epochs(3).check().unwrap();
    let x = build_manifold(100, 12, 71);
    let mut ae = Autoencoder::new(&params);
    ae.fit(&params, x.view()).unwrap();
    let expected = ae.reconstruct_batch(x.view());

    let back: Autoencoder = toml::from_str(&toml::to_string(&ae).unwrap()).unwrap();
    assert_eq!(back.reconstruct_batch(x.view()), expected);
    let (mut a, mut b, mut s) = (vec![0.0; 12], vec![0.0; 12], Vec::new());
    ae.reconstruct_into(x.row(0).as_slice().unwrap(), &mut a, &mut s);
    back.reconstruct_into(x.row(0).as_slice().unwrap(), &mut b, &mut s);
    assert_eq!(a, b);

    let json: Autoencoder = serde_json::from_str(&serde_json::to_string(&ae).unwrap()).unwrap();
    let got = json.reconstruct_batch(x.view());
    for (g, e) in got.iter().zip(&expected) {
        approx::assert_abs_diff_eq!(*g, *e, epsilon = 1e-12);
    }
}

#[test]
fn deserialising_an_inconsistent_snapshot_fails() {
    let ae = Autoencoder::new(&AutoencoderParams::new(6).latent(2).check().unwrap());
    let mut value = serde_json::to_value(&ae).unwrap();
    value["layers"][0]["n_in"] = serde_json::json!(7);
    assert!(serde_json::from_value::<Autoencoder>(value).is_err());
}

proptest::proptest! {
    #[test]
    fn reconstructions_are_finite_for_finite_inputs(
        x in proptest::collection::vec(-1e6f64..1e6, 8),
        seed in 0u64..1000,
    ) {
        let params = AutoencoderParams::new(8).latent(2).seed(seed).check().unwrap();
        let ae = Autoencoder::new(&params);
        let (mut out, mut scratch) = (vec![0.0; 8], Vec::new());
        ae.reconstruct_into(&x, &mut out, &mut scratch);
        proptest::prop_assert!(out.iter().all(|v| v.is_finite()));
    }
}
