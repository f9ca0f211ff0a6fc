//! Home Assistant MQTT discovery against a real Mosquitto: the retained configs, the
//! topics they point at, and escaping of sensor ids into object ids.

use std::collections::HashMap;

use rumqttc::QoS;
use serde_json::Value;

use super::*;
use support::now;

fn in_ha_alphabet(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Collects discovery configs from `probe` until `n` distinct topics have arrived.
async fn configs(probe: &mut Probe, prefix: &str, n: usize) -> HashMap<String, Value> {
    let mut found = HashMap::new();
    let ha = format!("{prefix}/ha/");
    while found.len() < n {
        let m = probe
            .wait_for(WAIT, "discovery configs", |m| {
                m.topic.starts_with(&ha) && m.topic.ends_with("/config") && !m.payload.is_empty()
            })
            .await;
        found.insert(m.topic.clone(), m.json());
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sensor_appears_as_an_alert_binary_sensor_and_a_score_sensor() {
    let mut w = World::new("hass", 10).await;
    let p = w.prefix.clone();
    w.config.push_str(&format!(
        "\n[homeassistant]\nenabled = true\nprefix = \"{p}/ha\"\nscore_topic = \"{p}/score/{{sensor}}\"\nscore_every_secs = 0.2\n"
    ));
    let _d = w.daemon();
    let filters = [
        format!("{p}/ha/#"),
        format!("{p}/state/+"),
        format!("{p}/score/+"),
        format!("{p}/status"),
    ];
    let mut probe = Probe::connect(w.broker.port, &p, &filters).await;
    probe.wait_online(WAIT).await;
    // A space and the escape character itself: both must be escaped in object ids.
    let odd = "we ird_1";
    let mut sig = Signal::new(now() - 5000.0);
    feed(&probe, &w.telemetry(odd), &mut sig, 2, 0.0).await;
    // Configs and the first state arrive in either order: take both from one stream.
    let (mut found, mut odd_state) = (HashMap::new(), None);
    while found.len() < 2 || odd_state.is_none() {
        let m = probe
            .wait_for(WAIT, "configs and state of the odd sensor", |m| {
                m.topic.starts_with(&format!("{p}/ha/")) || m.json()["sensor"] == odd
            })
            .await;
        if m.topic.contains("/state/") {
            odd_state = Some(m);
        } else if m.topic.starts_with(&format!("{p}/ha/")) {
            found.insert(m.topic.clone(), m.json());
        }
    }
    let odd_state = odd_state.expect("loop ends with the state");
    for (topic, config) in &found {
        let levels: Vec<&str> = topic.trim_start_matches(&format!("{p}/ha/")).split('/').collect();
        assert_eq!(levels.len(), 4, "{topic}");
        assert!(["binary_sensor", "sensor"].contains(&levels[0]), "{topic}");
        assert!(in_ha_alphabet(levels[1]) && in_ha_alphabet(levels[2]), "{topic}");
        assert_eq!((levels[2], levels[3]), ("we_20ird_5F1", "config"), "{topic}");
        assert_eq!(
            config["availability"][0]["topic"],
            format!("{p}/status"),
            "{config}"
        );
        assert_eq!(config["device"]["name"], odd, "{config}");
    }
    let alert = &found[&format!("{p}/ha/binary_sensor/hass-daemon/we_20ird_5F1/config")];
    assert_eq!(alert["state_topic"], odd_state.topic.as_str(), "{alert}");
    assert_eq!(alert["device_class"], "problem");
    assert!(
        alert["value_template"]
            .as_str()
            .is_some_and(|t| t.contains("value_json.state == 'alert'")),
        "{alert}"
    );
    let score_cfg = &found[&format!("{p}/ha/sensor/hass-daemon/we_20ird_5F1/config")];
    assert_eq!(
        score_cfg["state_topic"],
        format!("{p}/score/we ird_1"),
        "{score_cfg}"
    );
    assert_ne!(alert["unique_id"], score_cfg["unique_id"]);

    // A second sensor gets its own object id; a scored window feeds its score sensor.
    let topic = w.telemetry("pump-1");
    let mut sig = Signal::new(now() - 5000.0);
    warm_up(&mut probe, &topic, "pump-1", &mut sig).await;
    // Past score_every_secs since any update sent during the warm-up.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    feed(&probe, &topic, &mut sig, 5, 0.0).await;
    let score = probe
        .wait_for(WAIT, "a score update", |m| m.topic == format!("{p}/score/pump-1"))
        .await
        .json();
    assert!(
        score["anomaly_score"]
            .as_f64()
            .is_some_and(|s| (0.0..=1.0).contains(&s)),
        "{score}"
    );
    assert!(score["model_version"].as_u64() >= Some(1), "{score}");

    // Retained: a Home Assistant that connects later sees every config.
    let mut late = Probe::connect(w.broker.port, "hass-late", &[format!("{p}/ha/#")]).await;
    let retained = configs(&mut late, &p, 4).await;
    let objects: std::collections::BTreeSet<&str> =
        retained.keys().filter_map(|t| t.split('/').nth(4)).collect();
    assert_eq!(
        objects,
        ["pump-1", "we_20ird_5F1"].into(),
        "{:?}",
        retained.keys()
    );

    // Home Assistant starts on a broker that lost them: its birth message brings the
    // configs back.
    for topic in retained.keys() {
        late.client
            .publish(topic.clone(), QoS::AtLeastOnce, true, Vec::<u8>::new())
            .await
            .expect("queue the deletion");
    }
    late.send(&format!("{p}/ha/status"), "online").await;
    let again = configs(&mut late, &p, 4).await;
    assert_eq!(again, retained, "configs sent again on Home Assistant's birth");
}
