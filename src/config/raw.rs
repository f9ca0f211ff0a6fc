//! `RawConfig`: the TOML file as written, before any check. Every field documents its
//! unit and default; `config/anomalyd.toml` shows them all.
//!
//! Unknown keys are not rejected here with `deny_unknown_fields`, which would stop at the
//! first one: [`super::Config::from_toml_str`] reads through `serde_ignored` instead and
//! reports every unknown key, each with its dotted path.
//!
//! Here: the whole file; `wiring` holds the daemon's sections (broker, sources,
//! outputs, state, limits, Home Assistant, cluster), `detector` the detector's
//! (window, model, training, threshold, alert, score, learning), as
//! `validate` checks them.

mod detector;
mod wiring;

use serde::{Deserialize, Serialize};

pub use detector::*;
use wiring::default_sources;
pub use wiring::*;

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
