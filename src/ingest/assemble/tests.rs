//! Rounds, holds and incomplete readings of [`super::Held`].

use super::*;

const T0: f64 = 1_700_000_000.0;

fn set(names: &[&str]) -> ChannelSet {
    names.iter().map(|n| n.to_string()).collect()
}

fn update<'a>(pairs: &[(&'a str, f64)]) -> Vec<Channel<'a>> {
    pairs.iter().map(|&(n, v)| (n.into(), v)).collect()
}

/// Feeds `(ts, update)` pairs; returns every reading as `(ts, values)` and the number
/// of incomplete ones.
fn run(set: &ChannelSet, hold: f64, updates: &[(f64, &[(&str, f64)])]) -> (Vec<(f64, Vec<f64>)>, usize) {
    let mut held = Held::new(set.len());
    let id = SensorId::new("s");
    let mut readings = Vec::new();
    let mut incomplete = 0;
    for (ts, pairs) in updates {
        let out = held.update(&id, set, *ts, &update(pairs), (hold, *ts));
        incomplete += usize::from(out.incomplete);
        for r in out.readings() {
            assert!(std::sync::Arc::ptr_eq(&r.channels, set), "the sensor's set");
            assert_eq!(r.values.len(), set.len(), "never another channel count");
            readings.push((r.ts - T0, r.values.to_vec()));
        }
    }
    (readings, incomplete)
}

/// One sensor's updates and what they must make.
struct Case {
    name: &'static str,
    set: &'static [&'static str],
    hold: f64,
    /// `(seconds after T0, update)`.
    updates: &'static [(f64, &'static [(&'static str, f64)])],
    /// `(seconds after T0, values)` of every reading, in order.
    want: &'static [(f64, &'static [f64])],
    incomplete: usize,
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    Case {
        name: "a full record goes straight through",
        set: &["a", "b"], hold: 60.0,
        updates: &[(0.0, &[("a", 1.0), ("b", 2.0)]), (1.0, &[("a", 3.0), ("b", 4.0)])],
        want: &[(0.0, &[1.0, 2.0]), (1.0, &[3.0, 4.0])],
        incomplete: 0,
    },
    Case {
        // The late record passes for the reorder buffer but does not replace the
        // newer held `b`.
        name: "a resent full record passes as it is",
        set: &["a", "b"], hold: 60.0,
        updates: &[(1.0, &[("a", 3.0), ("b", 4.0)]), (0.0, &[("a", 1.0), ("b", 2.0)]),
                   (2.0, &[("a", 5.0)]), (3.0, &[("a", 6.0), ("b", 7.0)])],
        want: &[(1.0, &[3.0, 4.0]), (0.0, &[1.0, 2.0]), (2.0, &[5.0, 4.0]), (3.0, &[6.0, 7.0])],
        incomplete: 0,
    },
    Case {
        name: "an omitted field is held and the reading waits for the next update",
        set: &["a", "b"], hold: 60.0,
        updates: &[(0.0, &[("a", 1.0), ("b", 2.0)]), (1.0, &[("a", 3.0)]), (2.0, &[("a", 5.0), ("b", 6.0)])],
        want: &[(0.0, &[1.0, 2.0]), (1.0, &[3.0, 2.0]), (2.0, &[5.0, 6.0])],
        incomplete: 0,
    },
    Case {
        // At 5 `b` is 5 s old: held. At 20 it is 20 s old: counted, not sent short.
        name: "a value older than the hold leaves the reading incomplete",
        set: &["a", "b"], hold: 10.0,
        updates: &[(0.0, &[("a", 1.0), ("b", 2.0)]), (5.0, &[("a", 3.0)]), (20.0, &[("a", 5.0)]), (21.0, &[("a", 7.0)])],
        want: &[(0.0, &[1.0, 2.0]), (5.0, &[3.0, 2.0])],
        incomplete: 1,
    },
    Case {
        name: "one channel per topic makes one reading per round",
        set: &["temperature", "vibration"], hold: 60.0,
        updates: &[(0.0, &[("temperature", 20.0)]), (0.5, &[("vibration", 0.5)]),
                   (1.0, &[("vibration", 0.6)]), (1.5, &[("temperature", 21.0)])],
        want: &[(0.5, &[20.0, 0.5]), (1.5, &[21.0, 0.6])],
        incomplete: 0,
    },
    Case {
        name: "a faster channel makes a reading per update with the slower one held",
        set: &["fast", "slow"], hold: 60.0,
        updates: &[(0.0, &[("fast", 1.0), ("slow", 10.0)]), (1.0, &[("fast", 2.0)]),
                   (2.0, &[("fast", 3.0)]), (3.0, &[("slow", 11.0)])],
        want: &[(0.0, &[1.0, 10.0]), (1.0, &[2.0, 10.0]), (3.0, &[3.0, 11.0])],
        incomplete: 0,
    },
    Case {
        // `a` at 0 is never completed (no `b` within 5 s); `b` at 30 and `a` at 31 are.
        name: "a round spanning more than the hold is closed first",
        set: &["a", "b"], hold: 5.0,
        updates: &[(0.0, &[("a", 1.0)]), (30.0, &[("b", 2.0)]), (31.0, &[("a", 3.0)])],
        want: &[(31.0, &[3.0, 2.0])],
        incomplete: 1,
    },
    Case {
        name: "a hold of zero joins only values of the same time",
        set: &["a", "b"], hold: 0.0,
        updates: &[(0.0, &[("a", 1.0)]), (0.0, &[("b", 2.0)]), (1.0, &[("a", 3.0)]), (2.0, &[("a", 4.0), ("b", 5.0)])],
        want: &[(0.0, &[1.0, 2.0]), (2.0, &[4.0, 5.0])],
        incomplete: 1,
    },
];

#[test]
fn updates_make_the_expected_readings() {
    for case in CASES {
        let set = set(case.set);
        let updates: Vec<(f64, &[(&str, f64)])> = case.updates.iter().map(|&(t, u)| (T0 + t, u)).collect();
        let (readings, incomplete) = run(&set, case.hold, &updates);
        let want: Vec<(f64, Vec<f64>)> = case.want.iter().map(|&(t, v)| (t, v.to_vec())).collect();
        assert_eq!(readings, want, "{}", case.name);
        assert_eq!(incomplete, case.incomplete, "{}", case.name);
    }
}

/// `(now after T0, readings as (ts after T0, values), incomplete)` of one expiry check.
type Checked = (f64, Vec<(f64, Vec<f64>)>, bool);

/// A sensor that falls silent with a round open: what [`Held::expire`] does at each of
/// `checks`.
fn silent(updates: &[(f64, &[(&str, f64)])], hold: f64, checks: &[f64]) -> Vec<Checked> {
    let set = set(&["a", "b"]);
    let id = SensorId::new("s");
    let mut held = Held::new(set.len());
    for (ts, pairs) in updates {
        let out = held.update(&id, &set, T0 + ts, &update(pairs), (hold, T0 + ts));
        assert!(
            !out.incomplete && out.closed.is_none(),
            "no round closed before the silence"
        );
    }
    (checks.iter())
        .map(|&now| {
            let out = held.expire(&id, &set, T0 + now);
            let incomplete = out.incomplete;
            let readings = out.readings().map(|r| (r.ts - T0, r.values.to_vec())).collect();
            (now, readings, incomplete)
        })
        .collect()
}

#[test]
fn a_round_left_waiting_by_a_silent_sensor_is_counted_once_the_hold_has_passed() {
    // `a` alone, `b` never seen: nothing can complete it.
    let got = silent(&[(0.0, &[("a", 1.0)])], 10.0, &[5.0, 10.0, 10.5, 30.0]);
    assert_eq!(
        got,
        vec![
            (5.0, vec![], false),
            (10.0, vec![], false),
            (10.5, vec![], true),
            (30.0, vec![], false),
        ],
        "waits out the hold, then is counted once"
    );
}

#[test]
fn a_round_left_waiting_with_a_held_value_is_sent_once_the_hold_has_passed() {
    // Telegraf leaving out a field, then the host falls silent: the reading at 1 is
    // completed with `b` from 0, as the next update would have completed it.
    let updates: &[(f64, &[(&str, f64)])] = &[(0.0, &[("a", 1.0), ("b", 2.0)]), (1.0, &[("a", 3.0)])];
    let got = silent(updates, 10.0, &[11.0, 11.5, 12.0]);
    assert_eq!(
        got,
        vec![
            (11.0, vec![], false),
            (11.5, vec![(1.0, vec![3.0, 2.0])], false),
            (12.0, vec![], false),
        ]
    );
}
