//! Home Assistant MQTT discovery (`[homeassistant]`): the retained config messages
//! that make each sensor a Home Assistant device with two entities,
//!
//! - a `binary_sensor` (device class `problem`) that is on while the sensor's retained
//!   state says `alert`, with the state's fields as attributes, and
//! - a `sensor` showing `anomaly_score` from the retained score topic (the score, the
//!   threshold and the model version as attributes).
//!
//! The configs are sent when a sensor is first seen, after a reconnect without a
//! session, and whenever Home Assistant announces `online` on `<prefix>/status`.
//! Both are available while the daemon's status topic says `online` and the sensor is
//! not `stale`. Pure: the publisher calls [`Discovery::configs`] the first time it publishes a
//! sensor's state and sends what it returns. Sensor ids come from the network, so the
//! object id in the discovery topic is [`object_id`] (injective into Home Assistant's
//! `[a-zA-Z0-9_-]`), unique ids reuse the injective topic-level mapping, and the device
//! name shows the id escaped like a log line.

use serde::Serialize;
use serde_json::json;

use crate::alert::{render_topic, sanitize_topic_level};
use crate::config::Config;
use crate::escape::{Escaped, Marks, encode_bounded_with};

/// Longest object or node id, bytes; longer ids are cut and hashed (still injective).
const MAX_ID_BYTES: usize = 96;

/// Maps text into Home Assistant's id alphabet `[a-zA-Z0-9_-]`, injectively: ASCII
/// letters, digits and `-` are kept; everything else, `_` included, becomes `_XX` per
/// UTF-8 byte (`pump/7` → `pump_2F7`, `a_b` → `a_5Fb`); the empty id becomes `_`; past
/// 96 bytes the id is cut and ends in `_x` plus 32 hex digits of its SHA-256.
pub fn object_id(id: &str) -> String {
    encode_bounded_with(id, MAX_ID_BYTES, Marks::UNDERSCORE, |_, ch| {
        !(ch.is_ascii_alphanumeric() || ch == '-')
    })
}

/// A sensor's score update, as published (retained) on `homeassistant.score_topic`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScoreUpdate {
    /// Sensor id as received.
    pub sensor: String,
    /// In [0, 1]; the score sensor's value.
    pub anomaly_score: f64,
    /// The thresholded reconstruction error of the latest window.
    pub score: f64,
    /// The threshold in force, once ready.
    pub threshold: Option<f64>,
    /// Model that scored the window.
    pub model_version: u64,
    /// Time of the reading that completed the window, unix seconds.
    pub ts: f64,
}

/// What discovery needs from the config.
#[derive(Clone, Debug)]
pub struct Discovery {
    prefix: String,
    node: String,
    instance: String,
    state_topic: String,
    score_topic: String,
    status_topic: String,
}

impl Discovery {
    /// From the config; `None` unless `[homeassistant] enabled`.
    pub fn new(config: &Config) -> Option<Self> {
        let ha = config.homeassistant.as_ref()?;
        Some(Self {
            prefix: ha.prefix.clone(),
            node: object_id(&config.mqtt.client_id),
            instance: sanitize_topic_level(&config.mqtt.client_id),
            state_topic: config.alerts.state_topic.clone(),
            score_topic: ha.score_topic.clone(),
            status_topic: config.alerts.status_topic.clone(),
        })
    }

    /// Home Assistant's birth topic, `<prefix>/status`.
    pub fn birth_topic(&self) -> String {
        format!("{}/status", self.prefix)
    }

    /// `payload` on `topic` is Home Assistant announcing it (re)started: it then wants
    /// every discovery config again.
    pub fn is_birth(&self, topic: &str, payload: &[u8]) -> bool {
        payload == b"online" && topic == self.birth_topic()
    }

    /// The score topic of `sensor`.
    pub fn score_topic(&self, sensor: &str) -> String {
        render_topic(&self.score_topic, sensor)
    }

    /// The two retained discovery messages (topic, JSON) of `sensor`.
    pub fn configs(&self, sensor: &str) -> [(String, Vec<u8>); 2] {
        let object = object_id(sensor);
        let level = sanitize_topic_level(sensor);
        let state_topic = render_topic(&self.state_topic, sensor);
        let score_topic = self.score_topic(sensor);
        let unique = |entity: &str| format!("anomalyd/{}/{level}/{entity}", self.instance);
        let device = json!({
            "identifiers": [format!("anomalyd/{}/{level}", self.instance)],
            "name": Escaped(sensor).to_string(),
            "manufacturer": "anomalyd",
            "model": "anomaly detector",
            "sw_version": env!("CARGO_PKG_VERSION"),
        });
        let availability = json!([
            { "topic": self.status_topic, "payload_available": "online", "payload_not_available": "offline" },
            { "topic": state_topic, "value_template": "{{ 'offline' if value_json.stale else 'online' }}" },
        ]);
        let origin = json!({ "name": "anomalyd", "sw_version": env!("CARGO_PKG_VERSION") });
        let alert = json!({
            "name": "Anomaly",
            "unique_id": unique("alert"),
            "device_class": "problem",
            "state_topic": state_topic,
            "value_template": "{{ 'ON' if value_json.state == 'alert' else 'OFF' }}",
            "json_attributes_topic": state_topic,
            "availability": availability,
            "availability_mode": "all",
            "device": device,
            "origin": origin,
        });
        let score = json!({
            "name": "Anomaly score",
            "unique_id": unique("score"),
            "state_topic": score_topic,
            "value_template": "{{ value_json.anomaly_score }}",
            "state_class": "measurement",
            "suggested_display_precision": 3,
            "json_attributes_topic": score_topic,
            "availability": availability,
            "availability_mode": "all",
            "device": device,
            "origin": origin,
        });
        let topic = |component: &str| format!("{}/{component}/{}/{object}/config", self.prefix, self.node);
        [
            (topic("binary_sensor"), alert.to_string().into_bytes()),
            (topic("sensor"), score.to_string().into_bytes()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_use_only_home_assistants_alphabet() {
        let long = "é".repeat(80);
        let cases = [
            ("plain", "pump-7", "pump-7"),
            ("slash", "pump/7", "pump_2F7"),
            ("underscore is the escape", "a_b", "a_5Fb"),
            ("dot and space", "a. b", "a_2E_20b"),
            ("empty", "", "_"),
            ("unicode", "é", "_C3_A9"),
            ("wildcards", "+#", "_2B_23"),
        ];
        for (name, id, want) in cases {
            assert_eq!(object_id(id), want, "{name}");
        }
        let cut = object_id(&long);
        assert!(cut.len() <= MAX_ID_BYTES && cut.contains("_x"), "{cut}");
        assert!(
            cut.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{cut}"
        );
    }

    proptest::proptest! {
        #[test]
        fn object_ids_never_collide_and_stay_in_the_alphabet(a in "(?s).{0,60}", b in "(?s).{0,60}") {
            let (oa, ob) = (object_id(&a), object_id(&b));
            proptest::prop_assert!(oa.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'));
            proptest::prop_assume!(a != b);
            proptest::prop_assert_ne!(oa, ob);
        }
    }

    #[test]
    fn configs_point_at_the_sensors_own_topics() {
        let config = Config::from_toml_str(
            "[mqtt]\nclient_id = \"gw 1\"\n[homeassistant]\nenabled = true\nprefix = \"ha\"\n",
        )
        .expect("config");
        let d = Discovery::new(&config).expect("enabled");
        let [(alert_topic, alert), (score_topic, score)] = d.configs("pump/7");
        assert_eq!(alert_topic, "ha/binary_sensor/gw_201/pump_2F7/config");
        assert_eq!(score_topic, "ha/sensor/gw_201/pump_2F7/config");
        let alert: serde_json::Value = serde_json::from_slice(&alert).expect("json");
        let score: serde_json::Value = serde_json::from_slice(&score).expect("json");
        assert_eq!(alert["state_topic"], "anomalyd/state/pump%2F7");
        assert_eq!(score["state_topic"], "anomalyd/score/pump%2F7");
        assert_eq!(alert["availability"][0]["topic"], "anomalyd/status");
        assert_eq!(alert["unique_id"], "anomalyd/gw 1/pump%2F7/alert");
        assert_ne!(alert["unique_id"], score["unique_id"]);
        assert_eq!(alert["device"], score["device"], "one device per sensor");
        let hostile = d.configs("a\u{202E}b")[0].1.clone();
        let v: serde_json::Value = serde_json::from_slice(&hostile).expect("json");
        assert_eq!(v["device"]["name"], "a\\u{202e}b", "device name escaped");
        assert!(d.is_birth("ha/status", b"online"));
        assert!(!d.is_birth("ha/status", b"offline") && !d.is_birth("homeassistant/status", b"online"));
        assert!(Discovery::new(&Config::from_toml_str("").expect("defaults")).is_none());
    }
}
