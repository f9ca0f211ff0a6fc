//! Tests of [`Window`]: order and capacity, strides, gaps by `max_gap` or by the learned
//! cadence, and rejected readings.

use super::*;
use proptest::prelude::*;

fn build_window(size: usize, channels: usize, stride: usize, max_gap: Option<f64>) -> Window {
    Window::new(&WindowParams {
        size,
        channels,
        stride,
        max_gap,
    })
}

fn contents(w: &Window) -> Vec<f64> {
    let mut out = vec![0.0; w.len() * w.channels()];
    w.copy_into(&mut out);
    out
}

proptest! {
    #[test]
    fn window_keeps_order_and_capacity(
        size in 1usize..20, channels in 1usize..4, n in 0usize..60
    ) {
        let mut w = build_window(size, channels, 1, None);
        for i in 0..n {
            let vals: Vec<f64> = (0..channels).map(|c| (i * 10 + c) as f64).collect();
            prop_assert!(!matches!(w.push(i as f64, &vals), Push::Rejected(_)));
        }
        let kept = n.min(size);
        prop_assert_eq!(w.len(), kept);
        let expected: Vec<f64> = (n - kept..n)
            .flat_map(|i| (0..channels).map(move |c| (i * 10 + c) as f64))
            .collect();
        prop_assert_eq!(contents(&w), expected);
        if kept > 0 {
            prop_assert_eq!(w.start_ts(), (n - kept) as f64);
            prop_assert_eq!(w.end_ts(), (n - 1) as f64);
        }
    }
}

#[test]
fn first_ready_comes_when_full_then_every_stride() {
    let mut w = build_window(3, 1, 2, None);
    let got: Vec<bool> = (0..9)
        .map(|i| w.push(f64::from(i), &[0.0]) == Push::Ready)
        .collect();
    // Full at reading 2; then every 2nd: 4, 6, 8.
    assert_eq!(got, [false, false, true, false, true, false, true, false, true]);
}

#[test]
fn stride_one_is_ready_at_every_reading_once_full() {
    let mut w = build_window(2, 1, 1, None);
    let got: Vec<Push> = (0..4).map(|i| w.push(f64::from(i), &[0.0])).collect();
    assert_eq!(got, [Push::Filling, Push::Ready, Push::Ready, Push::Ready]);
}

#[test]
fn gap_longer_than_max_gap_clears_and_refills_before_ready() {
    let mut w = build_window(2, 1, 1, Some(5.0));
    assert_eq!(w.push(0.0, &[1.0]), Push::Filling);
    assert_eq!(w.push(1.0, &[2.0]), Push::Ready);
    // A gap of exactly max_gap is allowed.
    assert_eq!(w.push(6.0, &[3.0]), Push::Ready);
    assert_eq!(w.push(100.0, &[4.0]), Push::Filling);
    assert_eq!(w.resets(), 1);
    assert_eq!(contents(&w), [4.0]);
    assert_eq!(w.start_ts(), 100.0);
    assert_eq!(w.push(101.0, &[5.0]), Push::Ready);
    assert_eq!(contents(&w), [4.0, 5.0]);
}

#[test]
fn without_max_gap_a_gap_much_longer_than_the_cadence_clears() {
    let mut w = build_window(4, 1, 1, None);
    for i in 0..20 {
        w.push(f64::from(i), &[0.0]);
    }
    assert_eq!(w.cadence(), Some(1.0));
    // Jitter and a few missed readings are not a gap.
    assert_eq!(w.push(20.4, &[0.0]), Push::Ready);
    assert_eq!(w.push(25.0, &[0.0]), Push::Ready);
    assert_eq!(w.resets(), 0);
    // An outage of a minute at a one-second cadence is.
    assert_eq!(w.push(85.0, &[0.0]), Push::Filling);
    assert_eq!(w.resets(), 1);
    assert_eq!(w.cadence(), None, "learning starts over");
    assert_eq!(contents(&w), [0.0]);
}

#[test]
fn a_sensor_whose_rate_changes_is_reset_once_then_follows_the_new_cadence() {
    let mut w = build_window(4, 1, 1, None);
    let mut t = 0.0;
    for _ in 0..20 {
        t += 1.0;
        w.push(t, &[0.0]);
    }
    for _ in 0..40 {
        t += 30.0;
        w.push(t, &[0.0]);
    }
    assert_eq!(w.resets(), 1);
    assert_eq!(w.cadence(), Some(30.0));
    assert!(w.is_full());
}

#[test]
fn a_regular_cadence_never_resets() {
    let mut w = build_window(8, 1, 1, None);
    for i in 0..10_000 {
        // ±20 % jitter around one second.
        let jitter = f64::from(i % 5) * 0.1 - 0.2;
        w.push(f64::from(i) + jitter, &[0.0]);
    }
    assert_eq!(w.resets(), 0);
}

#[test]
fn bad_readings_are_rejected_without_changing_state() {
    let cases: [(&str, f64, Vec<f64>, WindowReject); 6] = [
        (
            "out of order",
            5.0,
            vec![1.0, 1.0],
            WindowReject::OutOfOrder { last: 10.0, got: 5.0 },
        ),
        (
            "duplicate",
            10.0,
            vec![1.0, 1.0],
            WindowReject::Duplicate { ts: 10.0 },
        ),
        (
            "nan value",
            11.0,
            vec![1.0, f64::NAN],
            WindowReject::NotFinite { channel: 1 },
        ),
        (
            "inf value",
            11.0,
            vec![f64::INFINITY, 1.0],
            WindowReject::NotFinite { channel: 0 },
        ),
        (
            "too few channels",
            11.0,
            vec![1.0],
            WindowReject::WrongChannels { expected: 2, got: 1 },
        ),
        (
            "too many channels",
            11.0,
            vec![1.0; 3],
            WindowReject::WrongChannels { expected: 2, got: 3 },
        ),
    ];
    for (name, ts, vals, want) in cases {
        let mut w = build_window(3, 2, 1, Some(1.0));
        w.push(9.5, &[0.0, 0.5]);
        w.push(10.0, &[1.0, 2.0]);
        let before = (contents(&w), w.start_ts(), w.end_ts(), w.resets());
        assert_eq!(w.push(ts, &vals), Push::Rejected(want), "{name}");
        assert_eq!(
            (contents(&w), w.start_ts(), w.end_ts(), w.resets()),
            before,
            "{name}"
        );
        // The window still accepts the next good reading in cadence.
        assert_eq!(w.push(10.5, &[3.0, 4.0]), Push::Ready, "{name}");
    }
}

#[test]
fn nan_timestamp_is_rejected() {
    let mut w = build_window(2, 1, 1, None);
    assert!(matches!(
        w.push(f64::NAN, &[1.0]),
        Push::Rejected(WindowReject::BadTimestamp { .. })
    ));
    assert!(w.is_empty());
}

#[test]
fn empty_window_reports_nan_bounds() {
    let w = build_window(2, 1, 1, None);
    assert!(w.start_ts().is_nan() && w.end_ts().is_nan());
    assert_eq!(contents(&w), Vec::<f64>::new());
}
