//! Rolling quantile of recent anomaly scores: the alert threshold.
//!
//! Owns [`RollingQuantile`], an exact q-quantile over the last `capacity` values with
//! O(log N) per update. The detector pushes every autoencoder score and compares the
//! next score with [`RollingQuantile::quantile`]. This module knows nothing of sensors,
//! warm-up (`min_scores`) or static floors; the detector applies those.
//!
//! Definition (lower / nearest-rank quantile): with the `n` values of the window
//! sorted as `v_0 ≤ … ≤ v_{n-1}`, the q-quantile is `v_k` with
//! `k = ceil(q·n) − 1` clamped to `[0, n−1]`. So `q = 1` is the rolling maximum and
//! `q = 0` the minimum. See Hyndman & Fan (1996), "Sample quantiles in statistical
//! packages", definition 1 (inverse of the empirical CDF).
//!
//! Implementation: the values in arrival order (for eviction and snapshots) plus two
//! ordered sets, `low` holding the `k + 1` smallest values and `high` the rest. After
//! each insert or eviction at most a couple of values move between the sets, so every
//! operation is O(log N), and the quantile is the maximum of `low`. For q = 1 (the
//! rolling maximum, which the anomaly score's reference uses) a monotone deque replaces
//! the sets: O(1) amortised, and the replay benchmark's second-largest cost goes away.

use std::cmp::Ordering;
use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

/// Why a [`RollingQuantile`] snapshot could not be rebuilt.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ThresholdError {
    /// The capacity is zero.
    #[error("rolling quantile capacity must be at least 1, got {0}")]
    Capacity(usize),
    /// q is outside [0, 1] or not a number.
    #[error("rolling quantile q must be in [0, 1], got {0}")]
    Quantile(f64),
    /// The snapshot holds more values than its capacity.
    #[error("rolling quantile snapshot holds {len} values, more than its capacity {capacity}")]
    TooManyValues {
        /// Values in the snapshot.
        len: usize,
        /// Capacity in the snapshot.
        capacity: usize,
    },
    /// A stored value is NaN or infinite.
    #[error("rolling quantile snapshot value {index} is not finite: {value}")]
    NotFinite {
        /// Position in arrival order.
        index: usize,
        /// The offending value.
        value: f64,
    },
}

/// `f64` with the IEEE total order, so it can key a `BTreeSet`. Only finite values are
/// ever stored, so the total order agrees with `<` (apart from −0.0 < +0.0, which is
/// harmless: both are equal as quantiles).
#[derive(Clone, Copy, Debug)]
struct OrdF64(f64);

impl PartialEq for OrdF64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Set key: the arrival sequence number makes duplicates distinct.
type Key = (OrdF64, u64);

/// The order statistics kept beside the arrival order.
#[derive(Clone, Debug)]
enum Ranks {
    /// q < 1: `low` holds the `k + 1` smallest values (its maximum is the quantile),
    /// `high` every other value.
    Split { low: BTreeSet<Key>, high: BTreeSet<Key> },
    /// q = 1: values that are larger than every later value, oldest (largest) first.
    Max(VecDeque<(f64, u64)>),
}

impl Ranks {
    fn for_q(q: f64) -> Self {
        if q >= 1.0 {
            Self::Max(VecDeque::new())
        } else {
            Self::Split {
                low: BTreeSet::new(),
                high: BTreeSet::new(),
            }
        }
    }
}

/// Exact rolling q-quantile over the last `capacity` values.
///
/// Serialises as `{capacity, q, values}` (values oldest first) and is rebuilt from
/// that on deserialisation, so snapshots stay small and independent of the layout.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(into = "RollingQuantileSnapshot", try_from = "RollingQuantileSnapshot")]
pub struct RollingQuantile {
    capacity: usize,
    q: f64,
    /// Values with their sequence numbers, oldest first.
    order: VecDeque<(f64, u64)>,
    ranks: Ranks,
    /// Sequence number for the next push.
    next_seq: u64,
}

/// Serialised form of [`RollingQuantile`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollingQuantileSnapshot {
    capacity: usize,
    q: f64,
    values: Vec<f64>,
}

impl From<RollingQuantile> for RollingQuantileSnapshot {
    fn from(r: RollingQuantile) -> Self {
        Self {
            capacity: r.capacity,
            q: r.q,
            values: r.values_in_order().collect(),
        }
    }
}

impl TryFrom<RollingQuantileSnapshot> for RollingQuantile {
    type Error = ThresholdError;

    fn try_from(s: RollingQuantileSnapshot) -> Result<Self, Self::Error> {
        Self::from_values(s.capacity, s.q, s.values)
    }
}

fn check_params(capacity: usize, q: f64) -> Result<(), ThresholdError> {
    if capacity == 0 {
        return Err(ThresholdError::Capacity(capacity));
    }
    if !(0.0..=1.0).contains(&q) {
        return Err(ThresholdError::Quantile(q));
    }
    Ok(())
}

/// Number of values that belong in `low` for a window of `n` values: `k + 1` with
/// `k = ceil(q·n) − 1` clamped to `[0, n−1]`; 0 when empty.
fn low_target(q: f64, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // ceil(q·n) is in [0, n] for q in [0, 1]; the clamp keeps rounding noise and q = 0
    // inside the valid rank range.
    let k = ((q * n as f64).ceil() as usize).saturating_sub(1).min(n - 1);
    k + 1
}

/// Appends `(x, seq)` to a rolling-maximum deque: an older value no larger than `x`
/// can never be the maximum again, so it goes.
fn push_max(deque: &mut VecDeque<(f64, u64)>, x: f64, seq: u64) {
    while deque.back().is_some_and(|&(v, _)| v <= x) {
        deque.pop_back();
    }
    deque.push_back((x, seq));
}

impl RollingQuantile {
    /// An empty window of `capacity` values tracking the `q`-quantile.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 or `q` is not in `[0, 1]`. Config validates both earlier;
    /// use [`RollingQuantile::from_values`] to get an error instead.
    pub fn new(capacity: usize, q: f64) -> Self {
        if let Err(e) = check_params(capacity, q) {
            panic!("{e}");
        }
        Self {
            capacity,
            q,
            order: VecDeque::with_capacity(capacity),
            ranks: Ranks::for_q(q),
            next_seq: 0,
        }
    }

    /// Rebuilds a window from values in arrival order (oldest first), as stored in a
    /// snapshot.
    ///
    /// # Errors
    ///
    /// [`ThresholdError`] if `capacity` is 0, `q` is outside `[0, 1]`, there are more
    /// values than `capacity`, or a value is not finite.
    pub fn from_values(capacity: usize, q: f64, values: Vec<f64>) -> Result<Self, ThresholdError> {
        check_params(capacity, q)?;
        if values.len() > capacity {
            return Err(ThresholdError::TooManyValues {
                len: values.len(),
                capacity,
            });
        }
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ThresholdError::NotFinite { index, value });
        }
        let mut r = Self::new(capacity, q);
        for v in values {
            r.push(v);
        }
        Ok(r)
    }

    /// Adds a value, evicting the oldest one when the window is full.
    ///
    /// NaN and infinite values are ignored (the window is left unchanged): one bad
    /// score must not poison the threshold for `capacity` windows. Scores of finite
    /// inputs are finite, so this only guards against bugs upstream.
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.order.len() == self.capacity {
            self.evict_oldest();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((x, seq));
        self.insert_rank(x, seq);
    }

    fn insert_rank(&mut self, x: f64, seq: u64) {
        match &mut self.ranks {
            Ranks::Split { low, high } => {
                let key = (OrdF64(x), seq);
                match low.last() {
                    Some(max_low) if key > *max_low => high.insert(key),
                    _ => low.insert(key),
                };
                self.rebalance();
            }
            Ranks::Max(deque) => push_max(deque, x, seq),
        }
    }

    /// Forgets every value (capacity and q stay).
    pub fn clear(&mut self) {
        self.order.clear();
        self.ranks = Ranks::for_q(self.q);
    }

    /// The current q-quantile, or `None` when no value has been pushed. O(log N).
    pub fn quantile(&self) -> Option<f64> {
        match &self.ranks {
            Ranks::Split { low, .. } => low.last().map(|(v, _)| v.0),
            Ranks::Max(deque) => deque.front().map(|&(v, _)| v),
        }
    }

    /// Number of values in the window.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the window holds no values.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Maximum number of values kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The quantile level tracked, in `[0, 1]`.
    pub fn q(&self) -> f64 {
        self.q
    }

    /// The values in the window, oldest first (for snapshots).
    pub fn values_in_order(&self) -> impl Iterator<Item = f64> + '_ {
        self.order.iter().map(|&(v, _)| v)
    }

    /// Changes the quantile level (config reload) and rebalances. O(Δk · log N).
    ///
    /// # Panics
    ///
    /// If `q` is not in `[0, 1]`.
    pub fn set_q(&mut self, q: f64) {
        if let Err(e) = check_params(self.capacity, q) {
            panic!("{e}");
        }
        let was_max = matches!(self.ranks, Ranks::Max(_));
        self.q = q;
        if was_max == (q >= 1.0) {
            self.rebalance();
            return;
        }
        // The other structure: rebuild it from the values in arrival order.
        self.ranks = match Ranks::for_q(q) {
            Ranks::Split { high, .. } => Ranks::Split {
                low: self.order.iter().map(|&(v, seq)| (OrdF64(v), seq)).collect(),
                high,
            },
            Ranks::Max(mut deque) => {
                for &(v, seq) in &self.order {
                    push_max(&mut deque, v, seq);
                }
                Ranks::Max(deque)
            }
        };
        self.rebalance();
    }

    fn evict_oldest(&mut self) {
        let Some((v, seq)) = self.order.pop_front() else {
            return;
        };
        match &mut self.ranks {
            Ranks::Split { low, high } => {
                let key = (OrdF64(v), seq);
                if !low.remove(&key) {
                    high.remove(&key);
                }
                // Rebalance now: if `low` were left empty while `high` is not, the next
                // push would land in `low` regardless of its value and break the order.
                self.rebalance();
            }
            Ranks::Max(deque) => {
                if deque.front().is_some_and(|&(_, s)| s == seq) {
                    deque.pop_front();
                }
            }
        }
    }

    /// Moves values between `low` and `high` until `low` holds exactly the `k + 1`
    /// smallest. Every `low` key is ≤ every `high` key before and after.
    fn rebalance(&mut self) {
        let target = low_target(self.q, self.order.len());
        let Ranks::Split { low, high } = &mut self.ranks else {
            return;
        };
        while low.len() > target {
            // Cannot fail: low.len() > target >= 0.
            let k = low.pop_last().expect("low is non-empty");
            high.insert(k);
        }
        while low.len() < target {
            // Cannot fail: low + high hold all n >= target values.
            let k = high.pop_first().expect("high is non-empty");
            low.insert(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, computed the slow way.
    fn oracle(values: &[f64], q: f64) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let k = ((q * n as f64).ceil() as i64 - 1).clamp(0, n as i64 - 1) as usize;
        Some(v[k])
    }

    fn build_filled(capacity: usize, q: f64, values: &[f64]) -> RollingQuantile {
        let mut r = RollingQuantile::new(capacity, q);
        for &v in values {
            r.push(v);
        }
        r
    }

    /// Small integers so that duplicates are common.
    fn values_strategy() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec((-20i32..20).prop_map(|i| f64::from(i) * 0.5), 0..200)
    }

    proptest! {
        #[test]
        fn quantile_matches_a_sorted_vector_oracle_after_every_push(
            capacity in 1usize..50, q in 0.0f64..=1.0, values in values_strategy()
        ) {
            let mut r = RollingQuantile::new(capacity, q);
            for (i, &v) in values.iter().enumerate() {
                r.push(v);
                let start = (i + 1).saturating_sub(capacity);
                prop_assert_eq!(r.quantile(), oracle(&values[start..=i], q));
                prop_assert_eq!(r.len(), i + 1 - start);
            }
        }

        #[test]
        fn rolling_max_matches_the_oracle_and_survives_a_change_of_q(
            capacity in 1usize..50, values in values_strategy(), q_after in 0.0f64..1.0
        ) {
            // q = 1 takes the monotone-deque path; set_q moves to the B-trees and back.
            let mut r = RollingQuantile::new(capacity, 1.0);
            for (i, &v) in values.iter().enumerate() {
                r.push(v);
                let start = (i + 1).saturating_sub(capacity);
                prop_assert_eq!(r.quantile(), oracle(&values[start..=i], 1.0));
            }
            let start = values.len().saturating_sub(capacity);
            r.set_q(q_after);
            prop_assert_eq!(r.quantile(), oracle(&values[start..], q_after));
            r.set_q(1.0);
            prop_assert_eq!(r.quantile(), oracle(&values[start..], 1.0));
            r.clear();
            prop_assert_eq!(r.quantile(), None);
        }

        #[test]
        fn quantile_stays_within_the_window_min_and_max(
            capacity in 1usize..50, q in 0.0f64..=1.0,
            values in prop::collection::vec(-1e6f64..1e6, 1..200)
        ) {
            let r = build_filled(capacity, q, &values);
            let window: Vec<f64> = r.values_in_order().collect();
            let min = window.iter().copied().fold(f64::INFINITY, f64::min);
            let max = window.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let got = r.quantile().unwrap();
            prop_assert!(min <= got && got <= max);
        }

        #[test]
        fn quantile_is_monotone_in_q(
            capacity in 1usize..50, q1 in 0.0f64..=1.0, q2 in 0.0f64..=1.0,
            values in prop::collection::vec(-1e6f64..1e6, 1..200)
        ) {
            let (lo, hi) = if q1 <= q2 { (q1, q2) } else { (q2, q1) };
            let mut r = build_filled(capacity, lo, &values);
            let at_lo = r.quantile().unwrap();
            r.set_q(hi);
            prop_assert!(at_lo <= r.quantile().unwrap());
            prop_assert_eq!(r.quantile(), build_filled(capacity, hi, &values).quantile());
        }

        #[test]
        fn serde_round_trip_keeps_values_and_quantile(
            capacity in 1usize..50, q_permille in 0u32..=1000, values in values_strategy()
        ) {
            // Short decimals: serde_json without `float_roundtrip` may be off by one
            // ulp on 17-digit floats, which is a property of the codec, not of ours.
            let q = f64::from(q_permille) / 1000.0;
            let r = build_filled(capacity, q, &values);
            let json = serde_json::to_string(&r).unwrap();
            let back: RollingQuantile = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back.capacity(), r.capacity());
            prop_assert_eq!(back.q(), r.q());
            prop_assert_eq!(back.values_in_order().collect::<Vec<_>>(), r.values_in_order().collect::<Vec<_>>());
            prop_assert_eq!(back.quantile(), r.quantile());
        }
    }

    #[test]
    fn empty_window_has_no_quantile() {
        let r = RollingQuantile::new(4, 0.5);
        assert_eq!(r.quantile(), None);
        assert!(r.is_empty());
    }

    #[test]
    fn q_one_is_the_rolling_max_and_q_zero_the_min() {
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
    fn window_evicts_the_oldest_value_first() {
        let r = build_filled(3, 1.0, &[100.0, 1.0, 2.0, 3.0]);
        assert_eq!(r.values_in_order().collect::<Vec<_>>(), vec![1.0, 2.0, 3.0]);
        // The max 100.0 left with the eviction.
        assert_eq!(r.quantile(), Some(3.0));
        assert_eq!(r.len(), r.capacity());
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut r = build_filled(3, 1.0, &[1.0, 2.0]);
        r.push(f64::NAN);
        r.push(f64::INFINITY);
        assert_eq!(r.len(), 2);
        assert_eq!(r.quantile(), Some(2.0));
    }

    #[test]
    fn snapshot_with_bad_fields_is_rejected() {
        let cases = [
            ("zero capacity", r#"{"capacity":0,"q":0.5,"values":[]}"#),
            ("q above one", r#"{"capacity":2,"q":1.5,"values":[]}"#),
            ("too many values", r#"{"capacity":1,"q":0.5,"values":[1.0,2.0]}"#),
            ("unknown field", r#"{"capacity":1,"q":0.5,"values":[],"x":1}"#),
        ];
        for (name, json) in cases {
            assert!(serde_json::from_str::<RollingQuantile>(json).is_err(), "{name}");
        }
    }

    #[test]
    #[should_panic(expected = "q must be in [0, 1]")]
    fn new_panics_on_q_outside_unit_interval() {
        let _ = RollingQuantile::new(3, 1.2);
    }
}
