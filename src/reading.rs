//! The unit of telemetry that flows from ingest into the detector on the readings
//! channel: [`Reading`], with the sensor's interned [`ChannelSet`].

use std::fmt;
use std::sync::Arc;

/// Identifies one sensor (one MQTT topic level or payload field); cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SensorId(Arc<str>);

impl SensorId {
    /// Wraps a sensor name. Sanitising for topics happens where topics are built.
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }

    /// The sensor name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name for a log line: control characters escaped, length bounded
    /// ([`crate::escape`]). `Display` stays raw: it feeds payloads and snapshots.
    pub fn escaped(&self) -> crate::escape::Escaped<'_> {
        crate::escape::Escaped(&self.0)
    }
}

/// Lets a map keyed by [`SensorId`] be searched with the `&str` of a topic level or
/// payload field, without allocating an id per message. `Hash`/`Eq` of `Arc<str>` are
/// those of `str`, as `Borrow` requires.
impl std::borrow::Borrow<str> for SensorId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A sensor's channel names in reading order, interned once per sensor and shared by
/// every reading of it: no channel name is allocated per message.
pub type ChannelSet = Arc<[String]>;

impl fmt::Display for SensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reading's values, one per channel: inline up to 4 channels, so such a reading
/// crosses ingest, the worker queue and the reorder buffer without a heap allocation
/// (wider sensors allocate, as every reading did before). Four keeps a [`Reading`]
/// under 128 bytes, the size of every slot of the worker queues.
pub type Values = smallvec::SmallVec<[f64; 4]>;

/// One timestamped multi-channel reading of one sensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// Which sensor produced it.
    pub sensor: SensorId,
    /// Seconds since the Unix epoch (fractional allowed), from the reading itself.
    pub ts: f64,
    /// The sensor's channel names; `values[i]` is channel `channels[i]`.
    pub channels: ChannelSet,
    /// One value per channel, in the sensor's channel order. Finite by construction
    /// (the parsers reject NaN and infinities).
    pub values: Values,
}

/// The unit of a unix-epoch number: what a payload's numeric timestamp or a CSV cell
/// counts. The one place a number becomes unix seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EpochUnit {
    /// Seconds, or milliseconds (`Date.now()`), microseconds or nanoseconds when the
    /// number is at least 10¹¹, 10¹⁴ or 10¹⁷ (10¹¹ s is the year 5138).
    #[default]
    Auto,
    /// Seconds.
    S,
    /// Milliseconds.
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

/// Epoch numbers at or above this are not seconds under [`EpochUnit::Auto`].
const AUTO_NOT_SECONDS: f64 = 1e11;

impl EpochUnit {
    /// `n` in this unit, as unix seconds.
    pub fn to_secs(self, n: f64) -> f64 {
        let per_second = match self {
            Self::S => 1.0,
            Self::Ms => 1e3,
            Self::Us => 1e6,
            Self::Ns => 1e9,
            Self::Auto => [(1e9, 1e6), (1e6, 1e3), (1e3, 1.0)]
                .into_iter()
                .find(|&(_, above)| n.abs() >= AUTO_NOT_SECONDS * above)
                .map_or(1.0, |(per_second, _)| per_second),
        };
        n / per_second
    }
}

/// Wall-clock time in Unix seconds (0 if the clock is before 1970): the arrival time
/// of readings without a timestamp, and the time of state updates no reading caused.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod epoch_tests {
    use super::EpochUnit;

    #[test]
    fn epoch_units_give_the_same_second() {
        let cases = [
            (EpochUnit::S, 1_386_018_900.0),
            (EpochUnit::Ms, 1_386_018_900_000.0),
            (EpochUnit::Us, 1_386_018_900_000_000.0),
            (EpochUnit::Ns, 1_386_018_900_000_000_000.0),
            (EpochUnit::Auto, 1_386_018_900.0),
            (EpochUnit::Auto, 1_386_018_900_000.0),
            (EpochUnit::Auto, 1_386_018_900_000_000.0),
            (EpochUnit::Auto, 1_386_018_900_000_000_000.0),
        ];
        for (unit, n) in cases {
            assert!((unit.to_secs(n) - 1_386_018_900.0).abs() < 1e-3, "{unit:?} {n}");
        }
        // A small number is seconds under auto (relative test clocks stay as they are).
        assert_eq!(EpochUnit::Auto.to_secs(12.5), 12.5);
    }
}
