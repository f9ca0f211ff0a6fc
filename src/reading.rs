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
    pub values: Vec<f64>,
}

/// Wall-clock time in Unix seconds (0 if the clock is before 1970): the arrival time
/// of readings without a timestamp, and the time of state updates no reading caused.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
