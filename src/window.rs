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

mod cadence;

pub use cadence::{Cadence, GAP_CADENCE_FACTOR};

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
mod tests;
