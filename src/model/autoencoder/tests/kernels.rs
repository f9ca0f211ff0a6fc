//! The training and scoring kernels: gradients against central differences (the
//! training kernels run in `f64`), the `f32` training pass against the `f64` one, and the
//! AVX2 passes against the portable ones, bit for bit.

use super::*;

/// The training objective of `x` towards itself and its gradients, in one batch, with
/// the training kernels run in `F`.
fn loss_and_gradients<F: Scalar>(
    net: &Net,
    x: ArrayView2<f64>,
    loss: Loss,
    penalty: Option<(Penalty, f64)>,
) -> (f64, Vec<LayerGrad<F>>) {
    let mut ws = loaded_workspace::<F>(net, x);
    let value = ws.run(Objective { loss, penalty }, true);
    (value, ws.grads().to_vec())
}

fn loaded_workspace<F: Scalar>(net: &Net, x: ArrayView2<f64>) -> Workspace<F> {
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
    let (_, grads) = loss_and_gradients::<f64>(net, x, loss, penalty);
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

/// The training pass in [`Real`] (`f32`) gives the `f64` pass's objective and gradients
/// up to `f32` rounding: each layer's gradient within 1e-4 of its largest entry, the
/// objective within 1e-5 relative. Default-like nets (tanh hidden layers, linear output,
/// MSE, with and without a penalty) and a sigmoid/BCE one.
#[test]
fn f32_training_pass_matches_the_f64_pass_up_to_rounding() {
    let cases = [
        (
            32,
            vec![8],
            2,
            Activation::Tanh,
            Activation::Linear,
            Loss::Mse,
            None,
        ),
        (
            32,
            vec![8],
            2,
            Activation::Tanh,
            Activation::Linear,
            Loss::Mse,
            Some((Penalty::L2, 0.3)),
        ),
        (
            19,
            vec![7, 5],
            3,
            Activation::Relu,
            Activation::Sigmoid,
            Loss::Bce,
            None,
        ),
    ];
    for (n, hidden, latent, act, out, loss, penalty) in cases {
        let x = uniform(32, n, 0.05, 0.95, 29);
        let params = (build_params(n, hidden.clone(), latent).activation(act))
            .output_activation(out)
            .check()
            .unwrap();
        let mut net = Net::new(&params);
        // Trained a little, so biases are non-zero and the loss is near a working one.
        net.fit(&params, x.view()).unwrap();
        let (v64, g64) = loss_and_gradients::<f64>(&net, x.view(), loss, penalty);
        let (v32, g32) = loss_and_gradients::<Real>(&net, x.view(), loss, penalty);
        let name = format!("{n} inputs, {hidden:?}, {act:?}/{out:?}/{loss:?}/{penalty:?}");
        approx::assert_relative_eq!(v32, v64, max_relative = 1e-5);
        for (l, (a, b)) in g64.iter().zip(&g32).enumerate() {
            let (a, b): (Vec<f64>, Vec<f64>) = (
                a.w.iter().chain(&a.b).copied().collect(),
                b.w.iter().chain(&b.b).map(|v| v.to_f64()).collect(),
            );
            let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let worst = a.iter().zip(&b).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= 1e-4 * scale,
                "{name}: layer {l}: {worst} against {scale}"
            );
        }
    }
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
                    let (value, grads) = loss_and_gradients::<Real>(&net, x.view(), loss, penalty);
                    let mut ws = loaded_workspace::<Real>(&net, x.view());
                    let portable = ws.run_portable(Objective { loss, penalty });
                    let name = format!("{n} inputs, {hidden:?}, {act:?}/{out:?}/{penalty:?}");
                    assert_eq!(value.to_bits(), portable.to_bits(), "{name}");
                    let bits = |g: &[LayerGrad<Real>]| -> Vec<Vec<u64>> {
                        (g.iter())
                            .map(|l| l.w.iter().chain(&l.b).map(|v| v.to_f64().to_bits()).collect())
                            .collect()
                    };
                    assert_eq!(bits(&grads), bits(ws.grads()), "{name}");
                    // The validation objective, in batches of 4 rows, up to rounding.
                    let batched =
                        Workspace::<Real>::new(&net, 4).objective(x.view(), Objective { loss, penalty });
                    approx::assert_relative_eq!(batched, value, max_relative = 1e-12);
                }
            }
        }
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
