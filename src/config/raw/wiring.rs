//! The daemon's sections of the TOML file as written: `[mqtt]` (with `[mqtt.tls]`),
//! `[[sources]]`, `[alerts]`, `[state]`, `[metrics]`, `[limits]`, `[homeassistant]` and
//! `[cluster]`, each with its defaults. Checked by `validate::wiring`.

use serde::{Deserialize, Serialize};

/// `[mqtt]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawMqtt {
    /// Broker host name or address. Default `127.0.0.1`.
    pub host: String,
    /// Broker TCP port. Default 1883.
    pub port: u16,
    /// Client id; must be unique on the broker. Default `anomalyd`.
    pub client_id: String,
    /// MQTT keep-alive, seconds. Default 30.
    pub keep_alive_secs: u64,
    /// Ask the broker to keep the session (and queue QoS 1 telemetry) while away. Default true.
    pub persistent_session: bool,
    /// MQTT protocol version, 3 (3.1.1) or 5. Default 3.
    pub protocol: u8,
    /// QoS of the telemetry subscription, 0 or 1. Default 1.
    pub qos: u8,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// File holding the password (first line); keeps secrets out of the config.
    pub password_file: Option<String>,
    /// `[mqtt.tls]`: enables TLS when present.
    pub tls: Option<RawTls>,
    /// First reconnect delay, milliseconds; doubles up to `reconnect_max_ms`. Default 1000.
    pub reconnect_min_ms: u64,
    /// Largest reconnect delay, milliseconds. Default 60000.
    pub reconnect_max_ms: u64,
}

/// `[mqtt.tls]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawTls {
    /// PEM file with the CA certificates to trust.
    pub ca_file: String,
    /// PEM client certificate, for mutual TLS.
    pub cert_file: Option<String>,
    /// PEM client key, for mutual TLS.
    pub key_file: Option<String>,
}

/// One `[[sources]]` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawSource {
    /// Topic filter. Default `sensors/+/telemetry`.
    pub topic: String,
    /// Topic level (0-based) holding the sensor id. Default: the first `+` level.
    pub sensor_level: Option<usize>,
    /// Take the sensor id from this payload field instead of the topic.
    pub sensor_field: Option<String>,
    /// Payload format: `json`, `number` or `senml`. Default `json`.
    pub format: String,
    /// JSON field with the reading time (a unix epoch number or RFC 3339): a top-level
    /// key, or an RFC 6901 pointer when it starts with `/` (`/timestamp`). Default `ts`.
    pub timestamp_field: String,
    /// Unit of a numeric timestamp: `auto` (seconds, or ms / µs / ns by magnitude),
    /// `s`, `ms`, `us` or `ns`. Default `auto`.
    pub timestamp_unit: crate::reading::EpochUnit,
    /// Fixed channel list (JSON: keys or pointers such as `/fields/temperature`, named
    /// by their last token); default every numeric top-level field but the timestamp,
    /// by name.
    pub channels: Option<Vec<String>>,
    /// Channel name for `format = "number"`. Default `value`.
    pub number_channel: String,
    /// `format = "number"`: topic level (0-based) naming the channel, for one channel
    /// per topic (`sensors/+/+` with `sensors/pump1/temperature`); needs `channels`.
    /// Default none.
    pub channel_level: Option<usize>,
    /// Seconds (reading time) a channel's last value completes readings of its sensor
    /// that lack it (partial updates); past that such a reading is counted as
    /// incomplete. 0 = only values of the same time. Default 60.
    pub hold_secs: f64,
}

/// `[alerts]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawAlerts {
    /// Topic template for alert events; `{sensor}` is replaced. Default `anomalyd/alerts/{sensor}`.
    pub topic: String,
    /// Retained per-sensor state topic template. Default `anomalyd/state/{sensor}`.
    pub state_topic: String,
    /// Retained instance status topic (`online`/`offline`). Default `anomalyd/status`.
    pub status_topic: String,
    /// Alerts kept while the broker is away; older ones are dropped and counted. Default 10000.
    pub queue: usize,
    /// Seconds an alert event stays worth delivering: an older queued one is dropped
    /// and counted, and under MQTT 5 the broker is told the rest (message expiry); 0 =
    /// never expires. Default 0.
    pub expiry_secs: u64,
}

/// `[state]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawState {
    /// Directory for snapshots. Default `/var/lib/anomalyd`.
    pub dir: String,
    /// Seconds between periodic snapshots; 0 = only at shutdown. Default 300.
    pub snapshot_every_secs: u64,
}

/// `[metrics]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawMetrics {
    /// Address for `/metrics` and `/healthz`; empty disables. Default `127.0.0.1:9464`.
    pub listen: String,
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawLimits {
    /// Largest accepted payload, bytes. Default 65536.
    pub max_payload_bytes: usize,
    /// Most sensors tracked; readings of further sensors are dropped and counted. Default 10000.
    pub max_sensors: usize,
    /// Capacity of each ingest → detector worker channel, readings. Default 8192.
    pub channel_capacity: usize,
    /// Detector workers the sensors are sharded over by a stable hash of their id
    /// (one task each, a sensor's readings always on the same one). 0 = one per
    /// available core, at most 8. Default 0.
    pub detector_workers: usize,
    /// Most channels per sensor. Default 64.
    pub max_channels: usize,
    /// Memory the detector's sensors may take, MB, by the estimate of
    /// `detector::memory` (each sensor charged at its full size from its first
    /// reading); new sensors past it are dropped and counted. 0 = no budget. Default 1024.
    pub max_memory_mb: usize,
    /// A sensor without a reading for this long (seconds, wall clock) is evicted: one
    /// with a model is kept as its persisted state, one without is dropped. 0 = never.
    /// Default 86400.
    pub sensor_idle_secs: u64,
}

/// `[homeassistant]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawHomeAssistant {
    /// Publish retained discovery configs so each sensor appears in Home Assistant (an
    /// alert binary_sensor and an anomaly-score sensor). Default false.
    pub enabled: bool,
    /// Home Assistant's discovery prefix. Default `homeassistant`.
    pub prefix: String,
    /// Retained per-sensor topic template of the latest scores, which the score sensor
    /// reads; `{sensor}` is replaced. Default `anomalyd/score/{sensor}`.
    pub score_topic: String,
    /// Seconds between a sensor's score updates at most (wall clock). Default 10.
    pub score_every_secs: f64,
}

impl Default for RawHomeAssistant {
    fn default() -> Self {
        Self {
            enabled: false,
            prefix: "homeassistant".into(),
            score_topic: "anomalyd/score/{sensor}".into(),
            score_every_secs: 10.0,
        }
    }
}

/// `[cluster]`: see [`crate::cluster`].
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawCluster {
    /// Daemons sharing the sensors; each scores the ids whose partition is its `index`.
    /// Default 1 (this one scores every sensor).
    pub instances: u32,
    /// This daemon's partition, 0-based, below `instances`. Default 0.
    pub index: u32,
}

pub(super) fn default_sources() -> Vec<RawSource> {
    vec![RawSource::default()]
}

impl Default for RawMqtt {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: "anomalyd".into(),
            keep_alive_secs: 30,
            persistent_session: true,
            protocol: 3,
            qos: 1,
            username: None,
            password_file: None,
            tls: None,
            reconnect_min_ms: 1000,
            reconnect_max_ms: 60_000,
        }
    }
}

impl Default for RawSource {
    fn default() -> Self {
        Self {
            topic: "sensors/+/telemetry".into(),
            sensor_level: None,
            sensor_field: None,
            format: "json".into(),
            timestamp_field: "ts".into(),
            timestamp_unit: crate::reading::EpochUnit::Auto,
            channels: None,
            number_channel: "value".into(),
            channel_level: None,
            hold_secs: crate::ingest::assemble::DEFAULT_HOLD_SECS,
        }
    }
}

impl Default for RawAlerts {
    fn default() -> Self {
        Self {
            topic: "anomalyd/alerts/{sensor}".into(),
            state_topic: "anomalyd/state/{sensor}".into(),
            status_topic: "anomalyd/status".into(),
            queue: 10_000,
            expiry_secs: 0,
        }
    }
}

impl Default for RawState {
    fn default() -> Self {
        Self {
            dir: "/var/lib/anomalyd".into(),
            snapshot_every_secs: 300,
        }
    }
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 65_536,
            max_sensors: 10_000,
            channel_capacity: 8192,
            detector_workers: 0,
            max_channels: 64,
            max_memory_mb: 1024,
            sensor_idle_secs: 86_400,
        }
    }
}

impl Default for RawCluster {
    fn default() -> Self {
        Self {
            instances: 1,
            index: 0,
        }
    }
}
