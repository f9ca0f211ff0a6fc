//! Threshold update cost per score at the production shape: a full window of 10,000
//! scores, one push (with eviction) plus one quantile read per iteration, at the
//! default q = 0.999 and at 0.995 (the figure quoted since session 1). Scores are
//! seeded log-normal-ish values built outside the timed closure.

use anomalyd::threshold::RollingQuantile;
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const WINDOW: usize = 10_000;

fn push_and_quantile(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(42);
    // Reconstruction errors are positive and right-skewed; exp of a uniform is enough.
    let data: Vec<f64> = (0..WINDOW * 2)
        .map(|_| rng.r#gen::<f64>().mul_add(4.0, -6.0).exp())
        .collect();
    for q in [0.995, 0.999] {
        let mut rq = RollingQuantile::new(WINDOW, q);
        for &x in &data[..WINDOW] {
            rq.push(x);
        }
        let stream = &data[WINDOW..];
        let mut i = 0;
        c.bench_function(&format!("rolling_quantile_push_quantile_10k_q{q}"), |b| {
            b.iter(|| {
                rq.push(black_box(stream[i % stream.len()]));
                i += 1;
                black_box(rq.quantile())
            })
        });
    }
}

criterion_group!(benches, push_and_quantile);
criterion_main!(benches);
