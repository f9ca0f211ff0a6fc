//! The unit of telemetry that flows from ingest (or a CSV) into the detector.

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
    /// One value per channel, in the sensor's channel order. Finite by construction
    /// (the parsers reject NaN and infinities).
    pub values: Vec<f64>,
}
