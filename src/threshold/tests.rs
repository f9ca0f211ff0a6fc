use super::*;
use proptest::prelude::*;

/// The m-th largest of `window` (values already rounded as stored), and m.
fn oracle(window: &[f32], q: f64) -> Option<(f32, usize)> {
    let m = rank_from_top(q, window.len());
    if m == 0 {
        return None;
    }
    let mut v = window.to_vec();
    v.sort_by(|a, b| b.total_cmp(a));
    Some((v[m - 1], m))
}

fn build_filled(capacity: usize, q: f64, values: &[f64]) -> RollingQuantile {
    let mut r = RollingQuantile::new(capacity, q);
    for &v in values {
        r.push(v);
    }
    r
}

/// Small integers so that duplicates are common, or a wide continuous range.
fn values_strategy() -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        prop::collection::vec((-20i32..20).prop_map(|i| f64::from(i) * 0.5), 0..700),
        prop::collection::vec(-1e6f64..1e6, 0..700),
    ]
}

/// Checks the three statements of the module docs for the window's current state.
fn assert_bound(r: &RollingQuantile, pushed: &[f32]) -> Result<(), TestCaseError> {
    let n = r.len();
    let window = &pushed[pushed.len() - n..];
    let Some((exact, m)) = oracle(window, r.q()) else {
        prop_assert_eq!(r.quantile(), None);
        return Ok(());
    };
    let got = r.quantile().expect("non-empty window") as f32;
    if m as u64 <= WALK {
        prop_assert_eq!(r.walk(m as u64), r.search(m as u64), "walk and search agree");
    }
    let at_or_above = window.iter().filter(|&&v| v >= got).count();
    prop_assert!(got >= exact, "{got} below the exact {exact} (m {m}, n {n})");
    prop_assert!(9 * at_or_above >= 8 * m, "{at_or_above} values >= {got}, m {m}");
    if m <= 2 * SPACING {
        prop_assert_eq!(got, exact, "m {} should be exact", m);
    }
    Ok(())
}

proptest! {
    #[test]
    fn quantile_keeps_the_rank_bound_after_every_push(
        capacity in 1usize..400, q in 0.0f64..=1.0, values in values_strategy()
    ) {
        let mut r = RollingQuantile::new(capacity, q);
        let block = capacity.div_ceil(BLOCKS);
        let mut pushed = Vec::new();
        for (i, &v) in values.iter().enumerate() {
            r.push(v);
            pushed.push(f32_up(v));
            // The window covers every value until full, then between capacity − block
            // and capacity of the newest.
            if i < capacity {
                prop_assert_eq!(r.len(), i + 1);
            } else {
                prop_assert!(r.len() > capacity - block && r.len() <= capacity);
            }
            assert_bound(&r, &pushed)?;
        }
    }

    #[test]
    fn the_default_tail_is_exact_on_a_long_stream(
        seed in 0u64..1000, values in prop::collection::vec(0.0f64..1.0, 12_000..12_001)
    ) {
        // q = 0.999 over 10,000: m ≤ 11, so every read equals the oracle.
        let mut r = RollingQuantile::new(10_000, 0.999);
        let mut pushed = Vec::new();
        for (i, &v) in values.iter().enumerate() {
            let v = v.powi(1 + (seed % 4) as i32);
            r.push(v);
            pushed.push(f32_up(v));
            if i % 97 == 0 || i + 1 == values.len() {
                assert_bound(&r, &pushed)?;
                let n = r.len();
                prop_assert_eq!(r.quantile().map(|x| x as f32), oracle(&pushed[pushed.len() - n..], 0.999).map(|o| o.0));
            }
        }
    }

    #[test]
    fn quantile_is_monotone_in_q_and_survives_a_change_of_q(
        capacity in 1usize..400, q1 in 0.0f64..=1.0, q2 in 0.0f64..=1.0,
        values in prop::collection::vec(-1e6f64..1e6, 1..700)
    ) {
        let (lo, hi) = if q1 <= q2 { (q1, q2) } else { (q2, q1) };
        let mut r = build_filled(capacity, lo, &values);
        let at_lo = r.quantile().unwrap();
        r.set_q(hi);
        prop_assert!(at_lo <= r.quantile().unwrap());
        let pushed: Vec<f32> = values.iter().map(|&v| f32_up(v)).collect();
        assert_bound(&r, &pushed)?;
        let min = pushed[pushed.len() - r.len()..].iter().copied().fold(f32::INFINITY, f32::min);
        let max = pushed[pushed.len() - r.len()..].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let got = r.quantile().unwrap() as f32;
        prop_assert!(min <= got && got <= max);
    }

    #[test]
    fn serde_round_trip_keeps_the_window(
        capacity in 1usize..400, q_permille in 0u32..=1000, values in values_strategy()
    ) {
        let q = f64::from(q_permille) / 1000.0;
        let r = build_filled(capacity, q, &values);
        let bytes = bincode::serialize(&r).unwrap();
        let back: RollingQuantile = bincode::deserialize(&bytes).unwrap();
        prop_assert_eq!(back.capacity(), r.capacity());
        prop_assert_eq!(back.q(), r.q());
        prop_assert_eq!(back.len(), r.len());
        prop_assert_eq!(back.quantile(), r.quantile());
    }

    #[test]
    fn rolling_max_is_exact_and_survives_a_snapshot(
        capacity in 1usize..60, values in prop::collection::vec(-50i32..50, 0..300), cut in 0usize..300
    ) {
        let mut r = RollingMax::new(capacity);
        for (i, &v) in values.iter().enumerate() {
            if i == cut {
                r = bincode::deserialize(&bincode::serialize(&r).unwrap()).unwrap();
            }
            r.push(f64::from(v));
            let start = (i + 1).saturating_sub(capacity);
            let want = values[start..=i].iter().copied().max().map(f64::from);
            prop_assert_eq!(r.max(), want);
            prop_assert_eq!(r.len(), i + 1 - start);
        }
    }
}

#[test]
fn empty_window_has_no_quantile() {
    let r = RollingQuantile::new(4, 0.5);
    assert_eq!(r.quantile(), None);
    assert!(r.is_empty());
}

#[test]
fn q_one_is_the_maximum_and_q_zero_the_minimum() {
    let values = [3.0, 9.0, 1.0, 7.0];
    assert_eq!(build_filled(10, 1.0, &values).quantile(), Some(9.0));
    assert_eq!(build_filled(10, 0.0, &values).quantile(), Some(1.0));
}

#[test]
fn nearest_rank_definition_picks_the_documented_element() {
    // n = 10, q = 0.95 → k = ceil(9.5) − 1 = 9; q = 0.5 → k = 4.
    let values: Vec<f64> = (0..10).map(f64::from).collect();
    assert_eq!(build_filled(10, 0.95, &values).quantile(), Some(9.0));
    assert_eq!(build_filled(10, 0.5, &values).quantile(), Some(4.0));
    assert_eq!(build_filled(10, 0.51, &values).quantile(), Some(5.0));
}

#[test]
fn the_oldest_block_expires_whole() {
    // capacity 40 → blocks of 2: the window covers 39 or 40 values once full.
    let mut r = RollingQuantile::new(40, 1.0);
    r.push(100.0);
    for i in 0..39 {
        r.push(f64::from(i));
    }
    assert_eq!((r.len(), r.quantile()), (40, Some(100.0)));
    r.push(0.5);
    assert_eq!(r.len(), 39, "the block of 100 and 0 expired");
    assert_eq!(r.quantile(), Some(38.0));
}

#[test]
fn stored_scores_round_up_so_the_threshold_never_sinks() {
    let x = 0.1_f64;
    let r = build_filled(10, 1.0, &[x]);
    let t = r.quantile().unwrap();
    assert!(t >= x && (t - x) / x < 1.2e-7, "{t}");
    assert_eq!(f32_up(1e300), f32::MAX);
    assert!(f64::from(f32_up(-0.1)) >= -0.1);
    assert_eq!(f32_up(1e-50), f32::from_bits(1));
}

#[test]
fn non_finite_values_are_ignored() {
    let mut r = build_filled(3, 1.0, &[1.0, 2.0]);
    r.push(f64::NAN);
    r.push(f64::INFINITY);
    assert_eq!(r.len(), 2);
    assert_eq!(r.quantile(), Some(2.0));
    let mut m = RollingMax::new(3);
    m.push(f64::NAN);
    assert_eq!((m.len(), m.max()), (0, None));
}

#[test]
fn the_default_window_is_a_few_kilobytes() {
    let bytes = RollingQuantile::footprint(10_000, 0.999);
    assert!((4_000..8_000).contains(&bytes), "{bytes}");
    // The exact window it replaced held ~60 bytes per score.
    assert!(bytes * 50 < 60 * 10_000);
}

#[test]
fn reconfigure_keeps_history_and_a_smaller_window_expires_blocks() {
    let values: Vec<f64> = (0..400).map(f64::from).collect();
    let mut r = build_filled(400, 0.5, &values);
    r.reconfigure(100, 1.0);
    assert_eq!(r.len(), 100);
    assert_eq!(r.quantile(), Some(399.0));
    r.reconfigure(5, 1.0);
    assert!(r.is_empty(), "blocks of 20 do not fit a window of 5");
}

#[test]
fn rolling_max_resizes_and_clears() {
    let mut m = RollingMax::new(5);
    for v in [9.0, 1.0, 2.0, 3.0] {
        m.push(v);
    }
    assert_eq!(m.max(), Some(9.0));
    m.resize(3);
    assert_eq!((m.len(), m.max()), (3, Some(3.0)));
    m.clear();
    assert_eq!(m.max(), None);
    m.push(1.0);
    assert_eq!((m.len(), m.max()), (1, Some(1.0)));
}

#[test]
fn snapshot_with_bad_fields_is_rejected() {
    let good = build_filled(40, 0.5, &(0..25).map(f64::from).collect::<Vec<_>>());
    let snap = QuantileSnapshot::from(good);
    let mut cases: Vec<(&str, QuantileSnapshot)> = Vec::new();
    let mut s = snap.clone();
    s.capacity = 0;
    cases.push(("zero capacity", s));
    let mut s = snap.clone();
    s.q = 1.5;
    cases.push(("q above one", s));
    let mut s = snap.clone();
    s.capacity = 10;
    cases.push(("more values than capacity", s));
    let mut s = snap.clone();
    s.sealed[0].reverse();
    cases.push(("unsorted summary", s));
    let mut s = snap.clone();
    s.open.push(f32::NAN);
    cases.push(("open block too long or not finite", s));
    for (name, s) in cases {
        assert!(RollingQuantile::try_from(s).is_err(), "{name}");
    }
    assert!(RollingQuantile::try_from(snap).is_ok());
    let max = MaxSnapshotProbe::bad();
    assert!(bincode::deserialize::<RollingMax>(&max).is_err());
}

/// A rolling-maximum snapshot whose deque rises (not a monotone deque).
struct MaxSnapshotProbe;
impl MaxSnapshotProbe {
    fn bad() -> Vec<u8> {
        bincode::serialize(&(3_usize, 2_usize, vec![(1.0_f64, 1_u64), (2.0_f64, 0_u64)])).unwrap()
    }
}

#[test]
#[should_panic(expected = "q must be in [0, 1]")]
fn new_panics_on_q_outside_unit_interval() {
    let _ = RollingQuantile::new(3, 1.2);
}
