//! [`RollingMax`]: the exact maximum of the last `capacity` values, kept as a monotone
//! deque (only values larger than every later value can be the maximum again), O(1)
//! amortised per push. Its memory is the deque's length: a handful of entries on noisy
//! scores, `capacity` at worst (a strictly falling sequence).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::ThresholdError;

/// Exact rolling maximum of the last `capacity` values.
///
/// Serialises as `{capacity, len, maxima}` where `maxima` are the deque's values with
/// their ages (0 = the newest value pushed), oldest first: enough to continue exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "MaxSnapshot", try_from = "MaxSnapshot")]
pub struct RollingMax {
    capacity: usize,
    /// Values pushed since the window was last empty, at most `capacity`.
    len: usize,
    /// Sequence number of the next push.
    next: u64,
    /// Values larger than every later one, with their sequence numbers, oldest first.
    deque: VecDeque<(f64, u64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaxSnapshot {
    capacity: usize,
    len: usize,
    maxima: Vec<(f64, u64)>,
}

impl From<RollingMax> for MaxSnapshot {
    fn from(r: RollingMax) -> Self {
        let newest = r.next.saturating_sub(1);
        Self {
            capacity: r.capacity,
            len: r.len,
            maxima: r.deque.iter().map(|&(v, seq)| (v, newest - seq)).collect(),
        }
    }
}

impl TryFrom<MaxSnapshot> for RollingMax {
    type Error = ThresholdError;

    fn try_from(s: MaxSnapshot) -> Result<Self, Self::Error> {
        if s.capacity == 0 {
            return Err(ThresholdError::Capacity(0));
        }
        if s.len > s.capacity {
            return Err(ThresholdError::TooManyValues {
                len: s.len,
                capacity: s.capacity,
            });
        }
        if let Some((index, &(value, _))) = s.maxima.iter().enumerate().find(|(_, m)| !m.0.is_finite()) {
            return Err(ThresholdError::NotFinite { index, value });
        }
        let falling = s.maxima.windows(2).all(|w| w[0].0 > w[1].0 && w[0].1 > w[1].1);
        let in_window = s.maxima.iter().all(|&(_, age)| age < s.len as u64);
        // The newest value is always the deque's last entry.
        let newest_last = s.maxima.last().map_or(s.len == 0, |&(_, age)| age == 0);
        if !falling || !in_window || !newest_last {
            return Err(ThresholdError::Layout("rolling maximum deque"));
        }
        let next = s.len as u64;
        Ok(Self {
            capacity: s.capacity,
            len: s.len,
            next,
            deque: s.maxima.iter().map(|&(v, age)| (v, next - 1 - age)).collect(),
        })
    }
}

impl RollingMax {
    /// An empty window of `capacity` values.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 (config validates it earlier).
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "rolling maximum capacity must be at least 1, got 0");
        Self {
            capacity,
            len: 0,
            next: 0,
            deque: VecDeque::new(),
        }
    }

    /// Adds a value, forgetting the one `capacity` pushes ago. NaN and infinite values
    /// are ignored.
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        let seq = self.next;
        self.next += 1;
        self.len = (self.len + 1).min(self.capacity);
        while self.deque.back().is_some_and(|&(v, _)| v <= x) {
            self.deque.pop_back();
        }
        self.deque.push_back((x, seq));
        self.expire();
    }

    fn expire(&mut self) {
        let oldest = self.next - self.len as u64;
        while self.deque.front().is_some_and(|&(_, s)| s < oldest) {
            self.deque.pop_front();
        }
    }

    /// The maximum of the window, `None` when empty.
    pub fn max(&self) -> Option<f64> {
        self.deque.front().map(|&(v, _)| v)
    }

    /// Forgets every value.
    pub fn clear(&mut self) {
        self.len = 0;
        self.deque.clear();
    }

    /// Values the window covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of values covered.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held (the memory it uses: 16 bytes each).
    pub fn held(&self) -> usize {
        self.deque.len()
    }

    /// The same window over the last `capacity` values (config reload): shrinking
    /// forgets the older values at once.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    pub fn resize(&mut self, capacity: usize) {
        assert!(capacity > 0, "rolling maximum capacity must be at least 1, got 0");
        self.capacity = capacity;
        self.len = self.len.min(capacity);
        self.expire();
    }
}
