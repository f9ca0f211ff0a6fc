//! `RawConfig`: the TOML file as written, before any check. Every field documents its
//! unit and default; `config/anomalyd.toml` shows them all.
//!
//! Unknown keys are not rejected here with `deny_unknown_fields`, which would stop at the
//! first one: [`super::Config::from_toml_str`] reads through `serde_ignored` instead and
//! reports every unknown key, each with its dotted path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::autoencoder::{Activation, AutoencoderParams};

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawConfig {
    /// `[mqtt]`: broker connection.
    pub mqtt: RawMqtt,
    /// `[[sources]]`: subscriptions and payload formats; one `sensors/+/telemetry` JSON source by default.
    #[serde(default = "default_sources")]
    pub sources: Vec<RawSource>,
    /// `[alerts]`: where alerts go.
    pub alerts: RawAlerts,
    /// `[state]`: snapshots.
    pub state: RawState,
    /// `[metrics]`: Prometheus endpoint.
    pub metrics: RawMetrics,
    /// `[limits]`: protection against bad or hostile input.
    pub limits: RawLimits,
    /// `[window]`: how readings become windows.
    pub window: RawWindow,
    /// `[model]`: the autoencoder and the PCA baseline.
    pub model: RawModel,
    /// `[training]`: warm-up and online retraining.
    pub training: RawTraining,
    /// `[threshold]`: the rolling quantile.
    pub threshold: RawThreshold,
    /// `[alert]`: the raise/clear lifecycle.
    pub alert: RawAlert,
    /// `[score]`: how an error becomes `anomaly_score` in [0, 1].
    pub score: RawScore,
    /// `[learning]`: what the detector learns from, and when an alert becomes normal.
    pub learning: RawLearning,
    /// `[homeassistant]`: MQTT discovery for Home Assistant.
    pub homeassistant: RawHomeAssistant,
    /// `[cluster]`: this instance's share of the sensors when several daemons split them.
    pub cluster: RawCluster,
}

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

/// `[window]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawWindow {
    /// Readings per window. Default 32.
    pub size: usize,
    /// Readings between scored windows. Default 1.
    pub stride: usize,
    /// A gap longer than this (seconds, reading time) resets the window; 0: a gap of
    /// 10 × the sensor's learned cadence does (`window::GAP_CADENCE_FACTOR`). Default 0.
    pub max_gap_secs: f64,
    /// Drift removal before windowing: `none`, `ema` (each channel minus an EMA of its
    /// past readings over `detrend_rows`) or `window_mean` (each channel of a window
    /// minus its mean over the window). Default `none`.
    pub detrend: String,
    /// Span of the `ema` detrend, readings. Default 100.
    pub detrend_rows: usize,
    /// Channel names the detrend applies to; empty = every channel. Default empty.
    pub detrend_channels: Vec<String>,
    /// Readings of a sensor that wait for older ones before they are scored (the daemon
    /// lets one go after 1 s of wall time at most); a reading up to this many readings
    /// late is scored in timestamp order. 0 = none. Default 8.
    pub reorder_rows: usize,
}

/// `[model]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawModel {
    /// `undercomplete`, `sparse` or `denoising`. Default `denoising`.
    pub kind: String,
    /// Hidden layer widths of the encoder (mirrored in the decoder). Default `[16]`.
    pub hidden: Vec<usize>,
    /// Width of the code. Default 2.
    pub latent: usize,
    /// Hidden activation: `relu`, `tanh`, `sigmoid`. Default `tanh`.
    pub activation: Activation,
    /// Output activation: `linear` or `sigmoid`. Default `linear`.
    pub output_activation: Activation,
    /// `mse` or `bce` (bce needs `output_activation = "sigmoid"`; inputs are then min-max scaled). Default `mse`.
    pub loss: String,
    /// Adam step size. Default 0.001.
    pub learning_rate: f64,
    /// Mini-batch size, windows. Default 32.
    pub batch_size: usize,
    /// Most epochs per (re)train. Default 20.
    pub epochs: usize,
    /// Fraction of the training windows held out for early stopping. Default 0.1.
    pub validation_fraction: f64,
    /// Epochs without validation improvement before stopping. Default 3.
    pub patience: usize,
    /// Seed for initialisation, shuffling and noise. Default 42.
    pub seed: u64,
    /// Sparse kind: `l1` or `l2`. Default `l1`.
    pub penalty: String,
    /// Sparse kind: penalty weight. Default 0.001.
    pub penalty_weight: f64,
    /// Denoising kind: `gaussian` or `masking`. Default `gaussian`.
    pub noise: String,
    /// Denoising kind: noise std (gaussian) or drop probability (masking). Default 0.1.
    pub noise_level: f64,
    /// PCA components; 0 = same as `latent`. Default 0.
    pub pca_components: usize,
    /// `auto`, `pca` or `none`: whether the autoencoder models what the PCA's
    /// principal subspace leaves of a window. Default `auto` (two or more channels).
    pub skip: String,
}

/// `[training]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawTraining {
    /// Windows collected before the first model (no scores before). Default 100.
    pub min_windows: usize,
    /// Scored windows between retrain checks; 0 = never retrain. Default 500.
    pub retrain_every: usize,
    /// A model that has grown up (see `detector::learning`) is retrained at a check only
    /// when the mean error of the windows since the last check exceeds its first
    /// period's mean by more than this fraction; 0 = retrain at every check. Default 0.5.
    pub drift_tolerance: f64,
    /// Most recent windows kept for training. Default 5000.
    pub buffer: usize,
    /// Trainings the daemon runs at once; further sensors' jobs wait their turn. Bounds
    /// training's CPU and memory when many sensors are due together. Default 1.
    pub parallel: usize,
}

/// `[threshold]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawThreshold {
    /// Quantile q in (0, 1] of recent scores. Default 0.999.
    pub quantile: f64,
    /// Number of recent scores the quantile is taken over. Default 10000.
    pub window: usize,
    /// Scores needed before any alert. Default 100.
    pub min_scores: usize,
    /// Which score is thresholded: `ae`, `pca`, `ae_pca` (mean of both) or `mean` (the
    /// trivial baseline). Default `ae`.
    pub score: String,
    /// Static floor: the threshold is never below this. Default 0.
    pub floor: f64,
    /// The alert threshold is this multiple of the rolling quantile (≥ 1). Default 1.333.
    pub margin: f64,
    /// Per-sensor overrides, keyed by sensor id: `[threshold.sensors.pump-7]`.
    pub sensors: BTreeMap<String, RawThresholdOverride>,
}

/// `[threshold.sensors.<id>]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawThresholdOverride {
    /// Replaces `threshold.quantile` for this sensor.
    pub quantile: Option<f64>,
    /// Replaces `threshold.floor` for this sensor.
    pub floor: Option<f64>,
}

/// `[alert]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawAlert {
    /// Consecutive windows over the threshold that raise an alert. Default 3.
    pub consecutive: u32,
    /// Consecutive windows under the threshold that clear it. Default 10.
    pub clear_after: u32,
    /// Windows after a clear during which no new alert is raised. Default 100.
    pub cooldown: u32,
    /// Bounds of `over_by` (score / threshold) at which an alert is `major` and
    /// `critical` instead of `minor`. Default `[2.0, 5.0]`.
    pub severity_bands: Vec<f64>,
    /// Seconds without a reading (wall clock, in the daemon) after which a sensor is
    /// `stale`; 0 = off. Default 0.
    pub stale_after_secs: f64,
}

/// `[score]`: the scoring strategy and its parameters.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawScore {
    /// `onset` (the window's error against the largest recent error, onsets only, with
    /// the newest reading's own deviation and the recent range) or `ratio` (the error
    /// against the alert threshold). Default `onset`.
    pub strategy: String,
    /// `onset`: past errors the reference (their maximum) is taken from. Default 5000.
    pub history: usize,
    /// `onset`: a score counts only if it beats those of this many previous windows,
    /// and an event (a score of at least 0.5) is reported once in this many windows;
    /// 0 disables both. Default 100.
    pub onset_rows: usize,
    /// `onset`: also score the newest reading's own deviation (`z`: its squared
    /// normalised value over its own past maximum) or not (`off`). Default `z`.
    pub point: String,
    /// `onset`: a reading more than this fraction of the recent range beyond that range
    /// (any channel) scores 1; 0 disables. Default 0.05.
    pub range_margin: f64,
    /// `onset`: readings the recent range is taken over. Default 5000.
    pub range_rows: usize,
}

/// `[learning]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawLearning {
    /// An alert that stays raised this long (seconds of reading time) is accepted as the
    /// new normal: the detector re-baselines on the recent windows and clears it with
    /// reason `accepted`; 0 = never. Default 3600.
    pub accept_after_secs: f64,
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

fn default_sources() -> Vec<RawSource> {
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

impl Default for RawWindow {
    fn default() -> Self {
        Self {
            size: 32,
            stride: 1,
            max_gap_secs: 0.0,
            detrend: "none".into(),
            detrend_rows: 100,
            detrend_channels: Vec::new(),
            reorder_rows: 8,
        }
    }
}

impl Default for RawModel {
    /// The network's hyper-parameters default to the autoencoder's own defaults, so the
    /// two cannot drift apart; the rest are the config file's.
    fn default() -> Self {
        let ae = AutoencoderParams::new(RawWindow::default().size)
            .check()
            // Cannot fail: the builder's defaults are valid for the default window
            // (asserted by the autoencoder's tests and by config/anomalyd.toml's test).
            .expect("autoencoder defaults are valid");
        Self {
            kind: "denoising".into(),
            hidden: ae.hidden().to_vec(),
            // Narrower than the builder's 4: measured best on NAB (docs/quality.md).
            latent: 2,
            activation: ae.activation(),
            output_activation: ae.output_activation(),
            loss: "mse".into(),
            learning_rate: ae.learning_rate(),
            batch_size: ae.batch_size(),
            epochs: ae.epochs(),
            validation_fraction: ae.validation_fraction(),
            patience: ae.patience(),
            seed: ae.seed(),
            penalty: "l1".into(),
            penalty_weight: 1e-3,
            noise: "gaussian".into(),
            noise_level: 0.1,
            pca_components: 0,
            skip: "auto".into(),
        }
    }
}

impl Default for RawTraining {
    fn default() -> Self {
        Self {
            min_windows: 100,
            retrain_every: 500,
            drift_tolerance: 0.5,
            buffer: 5000,
            parallel: 1,
        }
    }
}

impl Default for RawThreshold {
    fn default() -> Self {
        Self {
            quantile: 0.999,
            window: 10_000,
            min_scores: 100,
            score: "ae".into(),
            floor: 0.0,
            margin: 1.333,
            sensors: BTreeMap::new(),
        }
    }
}

impl Default for RawAlert {
    fn default() -> Self {
        Self {
            consecutive: 3,
            clear_after: 10,
            cooldown: 100,
            severity_bands: vec![2.0, 5.0],
            stale_after_secs: 0.0,
        }
    }
}

impl Default for RawScore {
    fn default() -> Self {
        Self {
            strategy: "onset".into(),
            history: 5000,
            onset_rows: 100,
            point: "z".into(),
            range_margin: 0.05,
            range_rows: 5000,
        }
    }
}

impl Default for RawLearning {
    fn default() -> Self {
        Self {
            accept_after_secs: 3600.0,
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
