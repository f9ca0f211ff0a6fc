//! Per-sensor sliding window: the ring buffer between parsed readings and the models.
//!
//! Owns [`Window`], which keeps the last `size` readings of one sensor (each with
//! `channels` values), rejects readings that would corrupt it (out of order,
//! duplicate timestamp, wrong width, NaN/Inf), clears itself after a gap (longer than
//! `max_gap` when set, else much longer than the sensor's own learned [`Cadence`]), and
//! says when a complete window is due for scoring (every `stride`
//! readings once full). It does not normalise or score; the detector copies the window
//! out with [`Window::copy_into`] and does that. It does no IO and never panics on
//! input.

/// Shape and cadence of a sensor window, already validated by config.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowParams {
    /// Readings per window (≥ 1).
    pub size: usize,
    /// Values per reading (≥ 1).
    pub channels: usize,
    /// Readings between two scored windows once the buffer is full (≥ 1).
    pub stride: usize,
    /// Longest allowed time between consecutive readings, in seconds; a longer gap
    /// clears the buffer so that no window spans it. `None`: the gap is judged against
    /// the sensor's learned cadence instead (see [`Cadence`]).
    pub max_gap: Option<f64>,
}

/// What happened to a reading given to [`Window::push`].
#[derive(Clone, Debug, PartialEq)]
pub enum Push {
    /// Stored; no window is due at this reading (still filling after start or a reset,
    /// or between two strides).
    Filling,
    /// Stored, and a complete window ending at this reading is due for scoring.
    Ready,
    /// Not stored; the window is unchanged.
    Rejected(WindowReject),
}

/// Why a reading was rejected. Each kind is counted in a metric by the caller.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum WindowReject {
    /// The timestamp is earlier than the last stored one.
    #[error("reading at {got} is older than the last one at {last}")]
    OutOfOrder {
        /// Timestamp of the last stored reading.
        last: f64,
        /// Timestamp of the rejected reading.
        got: f64,
    },
    /// The timestamp equals the last stored one.
    #[error("duplicate reading at {ts}")]
    Duplicate {
        /// The repeated timestamp.
        ts: f64,
    },
    /// The reading has the wrong number of values.
    #[error("reading has {got} channels, the window expects {expected}")]
    WrongChannels {
        /// Channels the window was built for.
        expected: usize,
        /// Values in the reading.
        got: usize,
    },
    /// A value is NaN or infinite.
    #[error("channel {channel} is not finite")]
    NotFinite {
        /// Index of the first bad channel.
        channel: usize,
    },
    /// The timestamp itself is NaN or infinite (not in the original sketch: without it
    /// a NaN timestamp would slip past the ordering checks).
    #[error("timestamp {ts} is not finite")]
    BadTimestamp {
        /// The rejected timestamp.
        ts: f64,
    },
}

/// Ring buffer of the last `size` readings of one sensor.
#[derive(Clone, Debug)]
pub struct Window {
    size: usize,
    channels: usize,
    stride: usize,
    max_gap: Option<f64>,
    /// `size × channels` values, time-major per slot: slot `s` is
    /// `values[s*channels .. (s+1)*channels]`.
    values: Vec<f64>,
    /// Timestamp of each slot.
    ts: Vec<f64>,
    /// Slot of the oldest stored reading.
    head: usize,
    /// Stored readings (≤ size).
    len: usize,
    /// Last accepted timestamp; survives resets so ordering is still enforced.
    last_ts: Option<f64>,
    /// Readings stored since the last `Ready`, counted only while full.
    since_ready: usize,
    resets: u64,
    /// The sensor's usual interval between readings (used when `max_gap` is `None`).
    cadence: Cadence,
}

/// A gap is this many times the learned cadence or more. Large enough that jitter,
/// a missed reading or two and a slow publisher never reset a window; small enough
/// that a broker outage or a sensor that went quiet does (issue 10, defect 6: windows
/// spanning an outage scored high and raised false alerts).
pub const GAP_CADENCE_FACTOR: f64 = 10.0;

/// Intervals learned before the cadence is trusted to judge gaps.
const CADENCE_WARMUP: u32 = 8;

/// Weight of a new interval in the learned cadence once warmed up (an EMA over about
/// the last 16 intervals: it follows a sensor whose rate changes slowly).
const CADENCE_WEIGHT: f64 = 1.0 / 16.0;

/// A sensor's learned interval between readings: the mean of its first
/// `CADENCE_WARMUP` intervals, then an exponential moving average. An interval of
/// [`GAP_CADENCE_FACTOR`] × the cadence or more is a gap: it is not learned, and
/// learning starts over, so a sensor whose rate really changed (1 s to 30 s) is
/// reset once and then judged by its new cadence.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cadence {
    mean: f64,
    samples: u32,
}

impl Cadence {
    /// Learns one interval (seconds, > 0); returns true when it is a gap.
    pub fn observe(&mut self, interval: f64) -> bool {
        if self.samples >= CADENCE_WARMUP && interval >= GAP_CADENCE_FACTOR * self.mean {
            *self = Self::default();
            return true;
        }
        self.samples = self.samples.saturating_add(1);
        let weight = if self.samples <= CADENCE_WARMUP {
            1.0 / f64::from(self.samples)
        } else {
            CADENCE_WEIGHT
        };
        self.mean += (interval - self.mean) * weight;
        false
    }

    /// The learned interval in seconds, once it is trusted.
    pub fn interval(&self) -> Option<f64> {
        (self.samples >= CADENCE_WARMUP).then_some(self.mean)
    }
}

impl Window {
    /// An empty window with the given shape.
    ///
    /// # Panics
    ///
    /// If `size`, `channels` or `stride` is 0, or `max_gap` is negative or NaN
    /// (config validates these earlier).
    pub fn new(p: &WindowParams) -> Self {
        assert!(p.size >= 1, "window size must be at least 1, got 0");
        assert!(p.channels >= 1, "window channels must be at least 1, got 0");
        assert!(p.stride >= 1, "window stride must be at least 1, got 0");
        if let Some(g) = p.max_gap {
            assert!(g >= 0.0, "window max_gap must be non-negative, got {g}");
        }
        Self {
            size: p.size,
            channels: p.channels,
            stride: p.stride,
            max_gap: p.max_gap,
            values: vec![0.0; p.size * p.channels],
            ts: vec![0.0; p.size],
            head: 0,
            len: 0,
            last_ts: None,
            since_ready: 0,
            resets: 0,
            cadence: Cadence::default(),
        }
    }

    /// Offers one reading. Rejected readings change nothing. A gap since the last
    /// reading (longer than `max_gap`, or without it, [`GAP_CADENCE_FACTOR`] times the
    /// learned cadence) clears the buffer (counted in [`Window::resets`]) before the
    /// reading is stored, so the window fills again before the next `Ready`.
    pub fn push(&mut self, ts: f64, values: &[f64]) -> Push {
        if let Err(reject) = self.check(ts, values) {
            return Push::Rejected(reject);
        }
        if let Some(last) = self.last_ts {
            let interval = ts - last;
            let gap = match self.max_gap {
                Some(max) => interval > max,
                None => self.cadence.observe(interval),
            };
            if gap {
                self.clear();
                self.resets += 1;
            }
        }
        self.last_ts = Some(ts);
        let was_full = self.is_full();
        let slot = if was_full {
            let s = self.head;
            self.head = (self.head + 1) % self.size;
            s
        } else {
            self.len += 1;
            (self.head + self.len - 1) % self.size
        };
        self.values[slot * self.channels..(slot + 1) * self.channels].copy_from_slice(values);
        self.ts[slot] = ts;

        if !self.is_full() {
            return Push::Filling;
        }
        if was_full {
            self.since_ready += 1;
            if self.since_ready < self.stride {
                return Push::Filling;
            }
        }
        // Either the buffer just became full, or `stride` readings passed since the
        // last Ready.
        self.since_ready = 0;
        Push::Ready
    }

    /// Why [`Window::push`] would reject this reading, without storing it.
    ///
    /// # Errors
    ///
    /// The [`WindowReject`] that `push` would return.
    pub fn check(&self, ts: f64, values: &[f64]) -> Result<(), WindowReject> {
        if values.len() != self.channels {
            return Err(WindowReject::WrongChannels {
                expected: self.channels,
                got: values.len(),
            });
        }
        if let Some(channel) = values.iter().position(|v| !v.is_finite()) {
            return Err(WindowReject::NotFinite { channel });
        }
        if !ts.is_finite() {
            return Err(WindowReject::BadTimestamp { ts });
        }
        match self.last_ts {
            Some(last) if ts == last => Err(WindowReject::Duplicate { ts }),
            Some(last) if ts < last => Err(WindowReject::OutOfOrder { last, got: ts }),
            _ => Ok(()),
        }
    }

    /// Empties the buffer but keeps the last timestamp (ordering still applies) and
    /// the reset count.
    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.since_ready = 0;
    }

    /// Copies the stored readings, oldest to newest, time-major: `out[t*channels + c]`.
    /// Does not allocate.
    ///
    /// # Panics
    ///
    /// If `out.len() != self.len() * channels`.
    pub fn copy_into(&self, out: &mut [f64]) {
        let c = self.channels;
        assert_eq!(out.len(), self.len * c, "copy_into buffer has the wrong length");
        // The stored readings are slots head..head+len modulo size: at most two runs.
        let first = self.len.min(self.size - self.head);
        out[..first * c].copy_from_slice(&self.values[self.head * c..(self.head + first) * c]);
        let rest = self.len - first;
        out[first * c..].copy_from_slice(&self.values[..rest * c]);
    }

    /// Timestamp of the oldest stored reading; NaN when empty.
    pub fn start_ts(&self) -> f64 {
        if self.len == 0 {
            f64::NAN
        } else {
            self.ts[self.head]
        }
    }

    /// Timestamp of the newest stored reading; NaN when empty.
    pub fn end_ts(&self) -> f64 {
        if self.len == 0 {
            f64::NAN
        } else {
            self.ts[(self.head + self.len - 1) % self.size]
        }
    }

    /// Number of stored readings (≤ size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no reading is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the buffer holds `size` readings.
    pub fn is_full(&self) -> bool {
        self.len == self.size
    }

    /// How many times a gap cleared the buffer.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// The learned interval between readings, once trusted (never with `max_gap`).
    pub fn cadence(&self) -> Option<f64> {
        self.cadence.interval()
    }

    /// Values per reading.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Readings per full window.
    pub fn size(&self) -> usize {
        self.size
    }
}

#[cfg(test)]
mod tests {
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
}
