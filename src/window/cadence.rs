//! [`Cadence`]: a sensor's learned interval between readings, and when an interval is a
//! gap that clears its [`Window`](super::Window).

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
