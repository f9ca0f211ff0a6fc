//! Ingest's startup from the config: one [`Route`] per `[[sources]]` entry (format,
//! fields, sensor and channel levels, hold) and the sensor admission with its caps,
//! and [`IngestError`] when a source cannot be used. Checked once; nothing here runs
//! per message.

use crate::config::Config;
use crate::ingest::payload::{Field, FieldError, PayloadFormat, PayloadParams};
use crate::ingest::route::{Route, SensorFrom};
use crate::ingest::sensors::{Admission, Restored};
use crate::mqtt::conn::ConnError;

/// Why the subscriber could not be set up. Fatal at startup.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Broker settings.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// A source has an unknown payload format.
    #[error("`sources[{index}].format` must be json, number or senml, got {value:?}")]
    Format {
        /// Position of the source.
        index: usize,
        /// The value given.
        value: String,
    },
    /// A source's field is not a usable key or JSON pointer.
    #[error("`sources[{index}].{key}` {source}")]
    Field {
        /// Position of the source.
        index: usize,
        /// The key, e.g. `channels`.
        key: &'static str,
        /// What is wrong.
        source: FieldError,
    },
}

/// Sensor admission under `limits.max_sensors` and `limits.max_memory_mb` (charged
/// with the detector's own estimate, so both refuse the same sensors).
pub(super) fn admission(config: &Config, known: Vec<Restored>) -> Admission {
    let admission = Admission::new(config.cluster, config.limits.max_sensors, known)
        .with_max_channels(config.limits.max_channels);
    if config.limits.max_memory_mb == 0 {
        return admission;
    }
    let detector = config.detector.clone();
    admission.with_budget(
        config.limits.max_memory_mb << 20,
        Box::new(move |channels| crate::detector::memory::pipeline_bytes(&detector, channels)),
    )
}

/// Builds one [`Route`] per `[[sources]]` entry.
pub(crate) fn build_routes(config: &Config) -> Result<Vec<Route>, IngestError> {
    config
        .sources
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let format = match s.format.as_str() {
                "json" => PayloadFormat::Json,
                "number" => PayloadFormat::Number,
                "senml" => PayloadFormat::Senml,
                other => {
                    return Err(IngestError::Format {
                        index,
                        value: other.to_string(),
                    });
                }
            };
            let field = |key: &'static str, text: &str| {
                Field::parse(text).map_err(|source| IngestError::Field { index, key, source })
            };
            let channels = match &s.channels {
                Some(list) => Some(
                    list.iter()
                        .map(|c| field("channels", c))
                        .collect::<Result<_, _>>()?,
                ),
                None => None,
            };
            let params = PayloadParams {
                format,
                timestamp_field: field("timestamp_field", &s.timestamp_field)?,
                timestamp_unit: s.timestamp_unit,
                require_timestamp: false,
                channels,
                sensor_field: s
                    .sensor_field
                    .as_deref()
                    .map(|f| field("sensor_field", f))
                    .transpose()?,
                number_channel: s.number_channel.clone(),
                max_payload_bytes: config.limits.max_payload_bytes,
            };
            let sensor = match (&s.sensor_field, s.sensor_level) {
                (Some(_), _) => SensorFrom::Payload,
                (None, Some(level)) => SensorFrom::Level(level),
                (None, None) => SensorFrom::first_wildcard(&s.topic),
            };
            let mut route = Route::new(&s.topic, sensor, params);
            route.channel_level = s.channel_level;
            route.hold = s.hold_secs;
            Ok(route)
        })
        .collect()
}
