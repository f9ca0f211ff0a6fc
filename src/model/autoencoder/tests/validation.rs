//! Parameter and input validation, determinism and (de)serialisation.

use super::*;

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
        (
            "whole improvement",
            base().min_improvement(1.0),
            "min improvement",
        ),
        (
            "nan improvement",
            base().min_improvement(f64::NAN),
            "min improvement",
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
