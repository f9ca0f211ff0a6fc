//! Autoencoder benches: the scoring hot path (`reconstruct_into`) on one window of
//! 1×32 and 8×32 flattened inputs with the default net (hidden [16], latent 4, tanh,
//! linear output), and one default `fit` (20 epochs max, batch 32, 10 % validation,
//! early stopping) on 3000 windows × 32. Seeded data is built outside the timed closures.

use std::hint::black_box;

use anomalyd::model::autoencoder::{Activation, Autoencoder, AutoencoderParams};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn windows(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || rng.gen_range(-1.0..1.0))
}

fn bench_reconstruct(c: &mut Criterion) {
    let cases = [
        ("reconstruct_into/1x32", 32, Activation::Tanh),
        ("reconstruct_into/8x32", 256, Activation::Tanh),
        // Same shape without transcendental calls: separates tanh cost from the dot products.
        ("reconstruct_into/1x32_relu", 32, Activation::Relu),
    ];
    for (name, n_inputs, activation) in cases {
        let params = AutoencoderParams::new(n_inputs)
            .activation(activation)
            .check()
            .expect("defaults are valid");
        let ae = Autoencoder::new(&params);
        let x = windows(1, n_inputs, 1).into_raw_vec_and_offset().0;
        let mut out = vec![0.0; n_inputs];
        let mut scratch = Vec::new();
        c.bench_function(name, |b| {
            b.iter(|| ae.reconstruct_into(black_box(&x), black_box(&mut out), &mut scratch))
        });
    }
}

fn bench_fit(c: &mut Criterion) {
    let params = AutoencoderParams::new(32).check().expect("defaults are valid");
    let data = windows(3000, 32, 2);
    let mut group = c.benchmark_group("fit");
    group.sample_size(10);
    group.bench_function("3000x32_defaults", |b| {
        b.iter(|| {
            let mut ae = Autoencoder::new(&params);
            ae.fit(&params, black_box(data.view())).expect("valid data")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_reconstruct, bench_fit);
criterion_main!(benches);
