//! Checks of what connects the daemon to the world: `[mqtt]`, `[[sources]]` (topics,
//! payload fields, partial-update hold), `[alerts]` and `[state]`, `[homeassistant]`,
//! `[metrics]` and `[limits]`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::ingest::payload::Field;

/// Largest `limits.max_memory_mb`; also keeps the shift to bytes from overflowing.
const MAX_MEMORY_MB: usize = 1 << 20;

/// Largest `sources[].hold_secs`: a value a day old completes no reading of a
/// process anyone watches live.
const MAX_HOLD_SECS: f64 = 86_400.0;

/// Largest `limits.sensor_idle_secs`, so the cutoff stays an exact f64.
const MAX_IDLE_SECS: u64 = 366 * 86_400;

pub(super) fn mqtt(raw: &RawConfig, p: &mut Problems) -> MqttConfig {
    let m = &raw.mqtt;
    p.check(!m.host.trim().is_empty(), "mqtt.host", || {
        "must not be empty".into()
    });
    p.check(m.port != 0, "mqtt.port", || "must be in 1..=65535, got 0".into());
    p.check(
        !m.client_id.is_empty() && m.client_id.len() <= 64,
        "mqtt.client_id",
        || format!("must be 1 to 64 characters, got {:?}", m.client_id),
    );
    p.check(m.keep_alive_secs >= 5, "mqtt.keep_alive_secs", || {
        format!("must be at least 5, got {}", m.keep_alive_secs)
    });
    p.check(matches!(m.protocol, 3 | 5), "mqtt.protocol", || {
        format!("must be 3 or 5, got {}", m.protocol)
    });
    p.check(m.qos <= 1, "mqtt.qos", || {
        format!("must be 0 or 1, got {}", m.qos)
    });
    p.check(m.reconnect_min_ms >= 10, "mqtt.reconnect_min_ms", || {
        format!("must be at least 10, got {}", m.reconnect_min_ms)
    });
    p.check(
        m.reconnect_max_ms >= m.reconnect_min_ms,
        "mqtt.reconnect_max_ms",
        || {
            format!(
                "must be at least reconnect_min_ms ({}), got {}",
                m.reconnect_min_ms, m.reconnect_max_ms
            )
        },
    );
    if let Some(tls) = &m.tls {
        p.check(!tls.ca_file.is_empty(), "mqtt.tls.ca_file", || {
            "must name a PEM file".into()
        });
        p.check(
            tls.cert_file.is_some() == tls.key_file.is_some(),
            "mqtt.tls.key_file",
            || "cert_file and key_file must be given together".into(),
        );
    }
    MqttConfig {
        host: m.host.clone(),
        port: m.port,
        client_id: m.client_id.clone(),
        keep_alive: Duration::from_secs(m.keep_alive_secs),
        persistent_session: m.persistent_session,
        protocol: m.protocol,
        qos: m.qos,
        username: m.username.clone(),
        password_file: m.password_file.clone(),
        tls: m.tls.clone(),
        reconnect_min: Duration::from_millis(m.reconnect_min_ms),
        reconnect_max: Duration::from_millis(m.reconnect_max_ms),
    }
}

pub(super) fn sources(raw: &RawConfig, p: &mut Problems) {
    p.check(!raw.sources.is_empty(), "sources", || {
        "must list at least one source".into()
    });
    for (i, s) in raw.sources.iter().enumerate() {
        let key = |k: &str| format!("sources[{i}].{k}");
        let levels: Vec<&str> = s.topic.split('/').collect();
        p.check(
            !s.topic.is_empty() && !s.topic.contains('\0'),
            &key("topic"),
            || format!("must be a topic filter, got {:?}", s.topic),
        );
        p.check(
            matches!(s.format.as_str(), "json" | "number" | "senml"),
            &key("format"),
            || format!("must be json, number or senml, got {:?}", s.format),
        );
        if s.sensor_field.is_none() {
            match s.sensor_level {
                Some(l) if l >= levels.len() => {
                    p.add(&key("sensor_level"), format!("must be below the topic's {} levels, got {l}", levels.len()))
                }
                None if !levels.contains(&"+") => p.add(
                    &key("topic"),
                    format!("has no `+` level to take the sensor id from and no sensor_level/sensor_field, got {:?}", s.topic),
                ),
                _ => {}
            }
        }
        if let Some(ch) = &s.channels {
            p.check(!ch.is_empty(), &key("channels"), || {
                "must not be empty when given".into()
            });
        }
        source_fields(s, &key, p);
        p.check(
            s.hold_secs.is_finite() && (0.0..=MAX_HOLD_SECS).contains(&s.hold_secs),
            &key("hold_secs"),
            || {
                format!(
                    "must be 0 (same time only) to {MAX_HOLD_SECS} seconds, got {}",
                    s.hold_secs
                )
            },
        );
        if let Some(level) = s.channel_level {
            p.check(s.format == "number", &key("channel_level"), || {
                format!("applies to format = \"number\" only, got format {:?}", s.format)
            });
            p.check(level < levels.len(), &key("channel_level"), || {
                format!("must be below the topic's {} levels, got {level}", levels.len())
            });
            p.check(s.channels.is_some(), &key("channels"), || {
                "must list the channels when channel_level is set: one channel per topic \
                 cannot show the set in one message"
                    .into()
            });
        }
    }
}

/// A source's JSON fields: each a key or a valid pointer ([`Field::parse`], the one
/// place they are read), pointers only for `json`, channel names distinct.
fn source_fields(s: &super::raw::RawSource, key: &dyn Fn(&str) -> String, p: &mut Problems) {
    let json = s.format == "json";
    let mut check = |name: &str, text: &str| match Field::parse(text) {
        Ok(f) if f.is_pointer() && !json => {
            p.add(
                &key(name),
                format!("JSON pointers apply to format = \"json\" only, got {text:?}"),
            );
            None
        }
        Ok(f) => Some(f),
        Err(e) => {
            p.add(&key(name), e.to_string());
            None
        }
    };
    check("timestamp_field", &s.timestamp_field);
    if let Some(f) = &s.sensor_field {
        check("sensor_field", f);
    }
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for text in s.channels.iter().flatten() {
        let Some(f) = check("channels", text) else {
            continue;
        };
        if let Some(first) = names.insert(f.name().to_owned(), text.clone()) {
            duplicates.push(format!(
                "must name distinct channels: {first:?} and {text:?} are both {:?}",
                f.name()
            ));
        }
    }
    for message in duplicates {
        p.add(&key("channels"), message);
    }
}

/// A topic template: names the sensor's level and has no wildcards.
fn template(p: &mut Problems, key: &str, t: &str) {
    p.check(t.contains("{sensor}"), key, || {
        format!("must contain {{sensor}}, got {t:?}")
    });
    p.check(!t.contains('+') && !t.contains('#'), key, || {
        format!("must not contain wildcards, got {t:?}")
    });
}

pub(super) fn alerts(raw: &RawConfig, p: &mut Problems) {
    let a = &raw.alerts;
    for (key, t) in [("alerts.topic", &a.topic), ("alerts.state_topic", &a.state_topic)] {
        template(p, key, t);
    }
    p.check(!a.status_topic.is_empty(), "alerts.status_topic", || {
        "must not be empty".into()
    });
    p.check(a.queue >= 1, "alerts.queue", || {
        format!("must be at least 1, got {}", a.queue)
    });
    p.check(!raw.state.dir.is_empty(), "state.dir", || {
        "must not be empty".into()
    });
}

pub(super) fn homeassistant(raw: &RawConfig, p: &mut Problems) -> Option<HomeAssistantConfig> {
    let h = &raw.homeassistant;
    let prefix = &h.prefix;
    p.check(
        !prefix.is_empty()
            && !prefix.contains(['+', '#', '\0'])
            && !prefix.starts_with('/')
            && !prefix.ends_with('/'),
        "homeassistant.prefix",
        || format!("must be a topic without wildcards or a leading or trailing `/`, got {prefix:?}"),
    );
    template(p, "homeassistant.score_topic", &h.score_topic);
    let every = h.score_every_secs;
    p.check(
        every.is_finite() && every > 0.0,
        "homeassistant.score_every_secs",
        || format!("must be a positive number of seconds, got {every}"),
    );
    h.enabled.then(|| HomeAssistantConfig {
        prefix: prefix.clone(),
        score_topic: h.score_topic.clone(),
        score_every: Duration::try_from_secs_f64(every).unwrap_or(Duration::from_secs(10)),
    })
}

pub(super) fn metrics(raw: &RawConfig, p: &mut Problems) -> Option<std::net::SocketAddr> {
    if raw.metrics.listen.is_empty() {
        return None;
    }
    raw.metrics
        .listen
        .parse()
        .map_err(|_| {
            p.add(
                "metrics.listen",
                format!("must be host:port, got {:?}", raw.metrics.listen),
            )
        })
        .ok()
}

pub(super) fn limits(raw: &RawConfig, p: &mut Problems) {
    let l = &raw.limits;
    p.check(l.max_payload_bytes >= 16, "limits.max_payload_bytes", || {
        format!("must be at least 16, got {}", l.max_payload_bytes)
    });
    p.check(l.max_sensors >= 1, "limits.max_sensors", || {
        format!("must be at least 1, got {}", l.max_sensors)
    });
    p.check(l.channel_capacity >= 1, "limits.channel_capacity", || {
        format!("must be at least 1, got {}", l.channel_capacity)
    });
    p.check(l.detector_workers <= 64, "limits.detector_workers", || {
        format!(
            "must be at most 64 (0 = one per core), got {}",
            l.detector_workers
        )
    });
    p.check(l.max_channels >= 1, "limits.max_channels", || {
        format!("must be at least 1, got {}", l.max_channels)
    });
    p.check(l.max_memory_mb <= MAX_MEMORY_MB, "limits.max_memory_mb", || {
        format!("must be at most {MAX_MEMORY_MB} (1 TiB), got {}", l.max_memory_mb)
    });
    p.check(
        l.sensor_idle_secs <= MAX_IDLE_SECS,
        "limits.sensor_idle_secs",
        || {
            format!(
                "must be at most {MAX_IDLE_SECS} (a year), got {}",
                l.sensor_idle_secs
            )
        },
    );
}
