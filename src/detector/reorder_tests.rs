//! The reorder buffer through the whole detector: in-order input gives the steps of
//! [`Detector::process`] (what replay and eval measure), late input within the
//! tolerance gives the same steps, resends are duplicates.

use super::tests::{build_config, build_reading, names};
use super::*;

/// What a step says, comparable across runs (`Step` is not `PartialEq`); its training
/// job has been run inline, as `process_inline` does.
fn summary(ts: f64, step: &Step) -> String {
    format!("{ts} {:?} {:?} {:?}", step.scored, step.event, step.state)
}

/// Fails at the first step that differs, naming it (the whole lists are long).
fn assert_same(got: &[String], want: &[String]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "step {i} differs");
    }
    assert_eq!(got.len(), want.len());
}

/// Releases what `release` lets go, training inline as `process_inline` does.
fn release_inline(d: &mut Detector, id: &SensorId, release: Release, out: &mut Vec<String>) {
    while let Some(r) = d.release(id, release) {
        let mut step = r.step.expect("a released reading is taken");
        if let Some(job) = step.train.take() {
            let model = crate::trainer::train(&job, &d.config().model).ok();
            d.install(id, model);
        }
        out.push(summary(r.ts, &step));
    }
}

/// The steps of readings at `arrivals` (indices into `build_reading`), offered in that
/// order, then every held one released.
fn offered_steps(arrivals: &[usize]) -> (Vec<String>, usize) {
    let mut d = Detector::new(build_config(""), 10);
    assert!(d.config().reorder_rows > 0, "the default holds readings back");
    let id = SensorId::new("s1");
    let (mut out, mut reordered) = (Vec::new(), 0);
    for &i in arrivals {
        let offered = d.offer(&id, i as f64, &build_reading(i), 0.0, names);
        reordered += usize::from(offered.expect("offer") == Offered::Reordered);
        release_inline(&mut d, &id, Release::Due, &mut out);
    }
    release_inline(&mut d, &id, Release::All, &mut out);
    (out, reordered)
}

/// The steps of `process_inline` on readings `0..n`: the replay and eval path.
fn processed_steps(n: usize) -> Vec<String> {
    let mut d = Detector::new(build_config(""), 10);
    let id = SensorId::new("s1");
    (0..n)
        .map(|i| {
            let step = d.process_inline(&id, i as f64, &build_reading(i), names).unwrap();
            summary(i as f64, &step)
        })
        .collect()
}

#[test]
fn in_order_readings_give_the_same_steps_through_the_reorder_buffer() {
    let arrivals: Vec<usize> = (0..300).collect();
    let (offered, reordered) = offered_steps(&arrivals);
    assert_eq!(reordered, 0);
    let processed = processed_steps(300);
    assert!(
        processed.iter().any(|s| s.contains("Some(Scored")),
        "nothing scored"
    );
    assert_same(&offered, &processed);
}

#[test]
fn readings_late_within_the_tolerance_are_scored_in_timestamp_order() {
    let mut arrivals: Vec<usize> = (0..300).collect();
    // A resend one reading late, one four readings late, and one seven late (the
    // default tolerance is eight).
    arrivals.swap(100, 101);
    arrivals[150..155].rotate_left(1);
    arrivals[200..208].rotate_left(1);
    let (offered, reordered) = offered_steps(&arrivals);
    assert_eq!(reordered, 3);
    assert_same(&offered, &processed_steps(300));
}

#[test]
fn resends_are_duplicates_and_readings_beyond_the_tolerance_are_out_of_order() {
    let mut d = Detector::new(build_config(""), 10);
    let id = SensorId::new("s1");
    let mut out = Vec::new();
    for i in 0..100 {
        d.offer(&id, i as f64, &build_reading(i), 0.0, names).unwrap();
        release_inline(&mut d, &id, Release::Due, &mut out);
    }
    // 0..=91 are scored, 92..=99 wait; the window (size 8) holds 84..=91.
    let mut offer = |ts: f64| {
        d.offer(&id, ts, &build_reading(0), 0.0, names)
            .map_err(|e| match e {
                DetectError::Rejected { reason, .. } => reason,
                other => panic!("{other}"),
            })
    };
    let dup = |ts| Err(WindowReject::Duplicate { ts });
    assert_eq!(offer(95.0), dup(95.0), "a resend of a waiting reading");
    assert_eq!(offer(91.0), dup(91.0), "a resend of the newest scored reading");
    assert_eq!(offer(40.0), dup(40.0), "a resend older than the window");
    assert!(
        matches!(offer(50.5), Err(WindowReject::OutOfOrder { .. })),
        "a new reading older than everything that waits is lost"
    );
    let forgotten = (91 - RESEND_MEMORY) as f64;
    assert!(matches!(offer(forgotten), Err(WindowReject::OutOfOrder { .. })));
    assert_eq!(offer(95.5), Ok(Offered::Reordered));
    assert_eq!(d.pipeline(&id).unwrap().held(), 9);
}
