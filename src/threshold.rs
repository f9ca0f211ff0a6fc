//! Rolling quantile of recent anomaly scores (the alert threshold), and the exact rolling
//! maximum ([`RollingMax`]) that the anomaly score's reference uses.
//!
//! The detector pushes every autoencoder score into a [`RollingQuantile`] and compares the
//! next score with [`RollingQuantile::quantile`]. This module knows nothing of sensors,
//! warm-up (`min_scores`) or static floors; the detector applies those.
//!
//! # Definition
//!
//! Lower / nearest-rank quantile: with the `n` values sorted as `v_0 ≤ … ≤ v_{n-1}`, the
//! q-quantile is `v_k` with `k = ceil(q·n) − 1` clamped to `[0, n−1]` (Hyndman & Fan
//! 1996, "Sample quantiles in statistical packages", definition 1), i.e. the `m`-th
//! largest value with `m = n − k`. `q = 1` is the maximum, `q = 0` the minimum.
//!
//! # The window, block by block
//!
//! A window of `capacity` scores is cut into blocks of `b = ceil(capacity / 20)`. The
//! newest (open) block keeps its scores, sorted; when it fills it is sealed into a
//! summary, and when the window would exceed `capacity` the oldest sealed block expires
//! whole. So the quantile is over the newest `n` scores, `capacity − b < n ≤ capacity`
//! once the window has filled (every score before that); [`RollingQuantile::len`] is `n`.
//!
//! # Summary and error bound
//!
//! A sealed block keeps its scores sorted from the largest at ranks 0, 1, …, 15 (all of
//! them), then at ranks `p` spaced by `floor(p / 8)` (44 of 500 scores at the defaults);
//! each kept score stands for itself and the unkept ones below it. The quantile returned
//! is the largest kept (or open-block) score `x` such that the scores standing at or
//! above `x` number at least `m`. For the exact quantile `x*` of the same `n` scores:
//!
//! - `x ≥ x*`: the threshold is never below the exact one (every score above `x` stands
//!   at or above the next kept score over `x`, which falls short of `m`);
//! - at least `⌈8m/9⌉` of the `n` scores are `≥ x`: the rank counted from the top is off
//!   by less than `m / 9` (in a block, the scores over-counted at `x` are fewer than
//!   `1/8` of that block's scores `≥ x`);
//! - `x = x*` whenever `m ≤ 16`: the top 16 of every block are kept. At the defaults
//!   (q = 0.999, 10,000 scores: `m = 11`) the threshold is exact.
//!
//! Scores are stored as `f32` rounded towards +∞, so the threshold is at most one `f32`
//! step (2⁻²³ relative) above the exact `f64` value and never below it; a score beyond
//! `f32::MAX` is stored as `f32::MAX`. A property test (`tests.rs`) checks all three
//! statements against a sorted-vector oracle after every push. At the defaults a full
//! window holds about 6 KB ([`RollingQuantile::footprint`]) instead of the ~600 KB of
//! the exact two-tree window this replaced.

mod max;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub use max::RollingMax;
use snapshot::QuantileSnapshot;

/// Why a [`RollingQuantile`] or [`RollingMax`] snapshot could not be rebuilt.
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
        /// Position in the snapshot.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// The snapshot's block layout does not match its block size.
    #[error("rolling quantile snapshot is malformed: {0}")]
    Layout(&'static str),
}

/// Blocks per window: the window's length varies by one block (5 %).
const BLOCKS: usize = 20;
/// Kept ranks are spaced by `rank / SPACING` (at least 1): exact for the top
/// `2 × SPACING` of a block, relative rank error below `1 / (SPACING + 1)` beyond.
const SPACING: usize = 8;
/// Up to this `m` the quantile walks the lists from the top instead of searching them.
const WALK: u64 = 64;

/// The rank after `p` that a sealed block keeps.
fn next_kept(p: usize) -> usize {
    p + (p / SPACING).max(1)
}

/// Ranks (0 = largest) a sealed block of `len` scores keeps.
fn kept_ranks(len: usize) -> impl Iterator<Item = usize> {
    std::iter::successors(Some(0), |&p| Some(next_kept(p))).take_while(move |&p| p < len)
}

fn block_size(capacity: usize) -> usize {
    capacity.div_ceil(BLOCKS).max(1)
}

/// `m`: the quantile is the m-th largest of `n` values (1 ≤ m ≤ n; 0 when empty).
fn rank_from_top(q: f64, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // ceil(q·n) is in [0, n] for q in [0, 1]; the clamp keeps rounding noise and q = 0
    // inside the valid rank range.
    let k = ((q * n as f64).ceil() as usize).saturating_sub(1).min(n - 1);
    n - k
}

/// The smallest `f32` at or above `x` (`f32::MAX` beyond it), for finite `x`.
pub(crate) fn f32_up(x: f64) -> f32 {
    let f = x as f32;
    if f.is_infinite() {
        return if x > 0.0 { f32::MAX } else { f32::MIN };
    }
    if f64::from(f) >= x || f == f32::MAX {
        return f;
    }
    // One step towards +∞ (`f32::next_up` needs a newer Rust than our MSRV).
    if f == 0.0 {
        f32::from_bits(1)
    } else if f > 0.0 {
        f32::from_bits(f.to_bits() + 1)
    } else {
        f32::from_bits(f.to_bits() - 1)
    }
}

/// Rolling q-quantile over the last `capacity` values, block by block, with the error
/// bound of the module docs.
///
/// Serialises as its blocks (`{capacity, q, block, open, sealed}`) and is checked and
/// rebuilt on deserialisation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(into = "QuantileSnapshot", try_from = "QuantileSnapshot")]
pub struct RollingQuantile {
    capacity: usize,
    q: f64,
    /// Scores per block.
    block: usize,
    /// The newest block's scores, largest first.
    open: Vec<f32>,
    /// Sealed blocks, oldest first: the scores at [`kept_ranks`], largest first.
    sealed: VecDeque<Box<[f32]>>,
    /// Every sealed block's kept scores merged, largest first, each with the number of
    /// scores standing at or above it; cut once that reaches the largest `m` the window
    /// can ask for (`rank_from_top(q, capacity)`).
    merged: Vec<(f32, u32)>,
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
        let block = block_size(capacity);
        Self {
            capacity,
            q,
            block,
            open: Vec::with_capacity(block),
            sealed: VecDeque::new(),
            merged: Vec::new(),
        }
    }

    /// A window that has seen `values` (oldest first), e.g. the exact history of an
    /// older snapshot format.
    ///
    /// # Errors
    ///
    /// [`ThresholdError`] if `capacity` is 0, `q` is outside `[0, 1]`, there are more
    /// values than `capacity`, or a value is not finite.
    pub fn from_values(capacity: usize, q: f64, values: &[f64]) -> Result<Self, ThresholdError> {
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
        for &v in values {
            r.push(v);
        }
        Ok(r)
    }

    /// Adds a value; the oldest block expires when the window would exceed `capacity`.
    ///
    /// NaN and infinite values are ignored (the window is left unchanged): one bad
    /// score must not poison the threshold. Scores of finite inputs are finite, so this
    /// only guards against bugs upstream.
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        let v = f32_up(x);
        let at = self.open.partition_point(|&o| o > v);
        self.open.insert(at, v);
        let mut changed = false;
        if self.open.len() >= self.block {
            let heads: Box<[f32]> = kept_ranks(self.open.len()).map(|p| self.open[p]).collect();
            self.sealed.push_back(heads);
            self.open.clear();
            changed = true;
        }
        while self.len() > self.capacity && self.sealed.pop_front().is_some() {
            changed = true;
        }
        if changed {
            self.remerge();
        }
    }

    /// Rebuilds [`Self::merged`] from the sealed blocks.
    fn remerge(&mut self) {
        let mut all: Vec<(f32, u32)> = Vec::with_capacity(self.sealed.len() * kept_ranks(self.block).count());
        let need = rank_from_top(self.q, self.capacity) as u32;
        for heads in &self.sealed {
            let next = kept_ranks(self.block).skip(1).chain(std::iter::once(self.block));
            let weights = kept_ranks(self.block).zip(next).map(|(p, n)| (n - p) as u32);
            // A block's entries past the one where it alone reaches `need` are past
            // the cut of the merged list too.
            let mut own = 0;
            for (v, w) in heads.iter().copied().zip(weights) {
                all.push((v, w));
                own += w;
                if own >= need {
                    break;
                }
            }
        }
        all.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut total = 0_u32;
        let mut cut = all.len();
        for (i, e) in all.iter_mut().enumerate() {
            total += e.1;
            e.1 = total;
            if total >= need {
                cut = i + 1;
                break;
            }
        }
        all.truncate(cut);
        all.shrink_to_fit();
        self.merged = all;
    }

    /// Scores standing at or above `y` (an over-count of less than 1/8, see the docs).
    fn standing_at_or_above(&self, y: f32) -> u64 {
        let open = self.open.partition_point(|&o| o >= y) as u64;
        let i = self.merged.partition_point(|&(v, _)| v >= y);
        let sealed = if i == 0 {
            0
        } else {
            u64::from(self.merged[i - 1].1)
        };
        open + sealed
    }

    /// Forgets every value (capacity and q stay).
    pub fn clear(&mut self) {
        self.open.clear();
        self.sealed.clear();
        self.merged = Vec::new();
    }

    /// The current q-quantile (within the bound of the module docs), or `None` when no
    /// value has been pushed. O(m) for the tail (m ≤ 64), else O(log² b).
    pub fn quantile(&self) -> Option<f64> {
        let m = rank_from_top(self.q, self.len()) as u64;
        if m == 0 {
            return None;
        }
        let found = if m <= WALK { self.walk(m) } else { None };
        found.or_else(|| self.search(m)).map(f64::from)
    }

    /// The quantile for any `m` ≥ 1: O(log² b).
    fn search(&self, m: u64) -> Option<f32> {
        // Both lists are largest first, and the count standing at or above a candidate
        // only grows down a list: the candidates that reach m are a suffix of each.
        let from_open = self.open.partition_point(|&o| self.standing_at_or_above(o) < m);
        let from_sealed = self
            .merged
            .partition_point(|&(v, _)| self.standing_at_or_above(v) < m);
        let best = [
            self.open.get(from_open).copied(),
            self.merged.get(from_sealed).map(|e| e.0),
        ];
        best.into_iter().flatten().reduce(f32::max)
    }

    /// The quantile for a small `m` (≥ 1, ≤ the window's length): both lists walked
    /// from the top until `m` scores stand at or above; the same candidate as the
    /// binary search of [`Self::quantile`], in O(m).
    fn walk(&self, m: u64) -> Option<f32> {
        let (mut i, mut j, mut count, mut last_cum) = (0, 0, 0_u64, 0_u32);
        loop {
            let open = self.open.get(i).copied();
            let sealed = self.merged.get(j).copied();
            let v = match (open, sealed) {
                (Some(o), Some((s, _))) if o >= s => {
                    i += 1;
                    count += 1;
                    o
                }
                (_, Some((s, cum))) => {
                    j += 1;
                    count += u64::from(cum - last_cum);
                    last_cum = cum;
                    s
                }
                (Some(o), None) => {
                    i += 1;
                    count += 1;
                    o
                }
                // Not reached: the lists stand for the window's length ≥ m scores.
                (None, None) => return None,
            };
            if count >= m {
                return Some(v);
            }
        }
    }

    /// Number of values the window covers.
    pub fn len(&self) -> usize {
        self.open.len() + self.sealed.len() * self.block
    }

    /// Whether the window holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maximum number of values covered.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The quantile level tracked, in `[0, 1]`.
    pub fn q(&self) -> f64 {
        self.q
    }

    /// Changes the quantile level (config reload). The error bound holds at any q;
    /// exactness where `m ≤ 16`.
    ///
    /// # Panics
    ///
    /// If `q` is not in `[0, 1]`.
    pub fn set_q(&mut self, q: f64) {
        self.reconfigure(self.capacity, q);
    }

    /// Applies a new capacity and q (config reload), keeping what the window has seen:
    /// a smaller capacity expires the oldest blocks at once; the block size stays,
    /// unless it no longer fits the new capacity (then the window starts empty).
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 or `q` is not in `[0, 1]`.
    pub fn reconfigure(&mut self, capacity: usize, q: f64) {
        if let Err(e) = check_params(capacity, q) {
            panic!("{e}");
        }
        if self.block > capacity {
            *self = Self::new(capacity, q);
            return;
        }
        self.capacity = capacity;
        self.q = q;
        while self.len() > capacity && self.sealed.pop_front().is_some() {}
        self.remerge();
    }

    /// Heap bytes of a full window of `capacity` values at `q` (the memory estimate of
    /// `limits.max_memory_mb`): the open block, the sealed summaries and the merged
    /// list.
    pub fn footprint(capacity: usize, q: f64) -> usize {
        const BOX: usize = 2 * std::mem::size_of::<usize>();
        let block = block_size(capacity);
        let heads = kept_ranks(block).count();
        let blocks = capacity / block;
        let merged = (blocks * heads).min(rank_from_top(q, capacity));
        4 * block + blocks * (4 * heads + BOX) + blocks.next_power_of_two() * BOX + 8 * merged
    }
}
