//! Routing of received topics to `[[sources]]`: MQTT topic-filter matching (`+`, `#`,
//! shared subscriptions) and sensor-id and channel-name extraction from topic levels.
//! Pure functions, unit-tested without a broker.

use super::payload::PayloadParams;

/// Where a source's sensor id comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SensorFrom {
    /// This topic level (0-based).
    Level(usize),
    /// The payload (`sensor_field`).
    Payload,
    /// The whole topic: the filter has no wildcard level to take it from.
    Topic,
}

impl SensorFrom {
    /// The default: the first `+` level of the filter (after any `$share/<group>/`),
    /// else the whole topic.
    pub fn first_wildcard(filter: &str) -> Self {
        strip_share(filter)
            .split('/')
            .position(|l| l == "+")
            .map_or(Self::Topic, Self::Level)
    }
}

/// One `[[sources]]` entry, ready to match topics.
#[derive(Clone, Debug)]
pub struct Route {
    /// The filter subscribed to, as configured (may be a shared subscription).
    pub filter: String,
    /// How the sensor id is found.
    pub sensor: SensorFrom,
    /// How payloads are parsed.
    pub params: PayloadParams,
    /// Topic level (0-based) naming the channel of a `number` payload: one channel per
    /// topic. `None`: `number_channel` names it.
    pub channel_level: Option<usize>,
    /// `hold_secs`: how long (reading time) a channel's last value completes readings
    /// of its sensor ([`super::assemble`]).
    pub hold: f64,
}

impl Route {
    /// A route for `filter`.
    pub fn new(filter: &str, sensor: SensorFrom, params: PayloadParams) -> Self {
        Self {
            filter: filter.to_string(),
            sensor,
            params,
            channel_level: None,
            hold: super::assemble::DEFAULT_HOLD_SECS,
        }
    }

    /// Whether a received topic belongs to this source.
    pub fn matches(&self, topic: &str) -> bool {
        topic_matches(strip_share(&self.filter), topic)
    }

    /// The sensor id from the topic, when it is taken from there. An empty level is
    /// no id.
    pub fn sensor_from_topic<'t>(&self, topic: &'t str) -> Option<&'t str> {
        match self.sensor {
            SensorFrom::Level(level) => topic.split('/').nth(level).filter(|s| !s.is_empty()),
            SensorFrom::Topic => Some(topic).filter(|s| !s.is_empty()),
            SensorFrom::Payload => None,
        }
    }

    /// The channel name from the topic, when `channel_level` is set: `Some(None)` when
    /// that level is missing or empty.
    pub fn channel_from_topic<'t>(&self, topic: &'t str) -> Option<Option<&'t str>> {
        let level = self.channel_level?;
        Some(topic.split('/').nth(level).filter(|s| !s.is_empty()))
    }
}

/// Removes a `$share/<group>/` prefix (MQTT 5 §4.8.2; also understood by Mosquitto and
/// EMQX over 3.1.1): messages arrive with the plain topic.
fn strip_share(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_group, f)| f)
}

/// MQTT 3.1.1 §4.7 matching of `topic` against `filter`: `+` is one level, a final `#`
/// is any number of levels (including none); wildcards never match a topic starting
/// with `$` at the first level.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters_match_as_mqtt_specifies() {
        struct Case {
            name: &'static str,
            filter: &'static str,
            topic: &'static str,
            want: bool,
        }
        let cases = [
            Case {
                name: "exact",
                filter: "a/b",
                topic: "a/b",
                want: true,
            },
            Case {
                name: "plus one level",
                filter: "sensors/+/telemetry",
                topic: "sensors/p1/telemetry",
                want: true,
            },
            Case {
                name: "plus not two levels",
                filter: "sensors/+/telemetry",
                topic: "sensors/a/b/telemetry",
                want: false,
            },
            Case {
                name: "plus matches empty level",
                filter: "a/+/c",
                topic: "a//c",
                want: true,
            },
            Case {
                name: "hash many",
                filter: "sensors/#",
                topic: "sensors/a/b/c",
                want: true,
            },
            Case {
                name: "hash includes parent",
                filter: "sensors/#",
                topic: "sensors",
                want: true,
            },
            Case {
                name: "prefix only",
                filter: "a/b",
                topic: "a/b/c",
                want: false,
            },
            Case {
                name: "longer filter",
                filter: "a/b/c",
                topic: "a/b",
                want: false,
            },
            Case {
                name: "dollar topics hidden from hash",
                filter: "#",
                topic: "$SYS/x",
                want: false,
            },
            Case {
                name: "dollar topics hidden from plus",
                filter: "+/x",
                topic: "$SYS/x",
                want: false,
            },
            Case {
                name: "dollar topic exact",
                filter: "$SYS/x",
                topic: "$SYS/x",
                want: true,
            },
        ];
        for c in cases {
            assert_eq!(topic_matches(c.filter, c.topic), c.want, "{}", c.name);
        }
    }

    #[test]
    fn shared_subscription_prefix_is_ignored_when_matching() {
        let r = Route::new(
            "$share/g1/sensors/+/telemetry",
            SensorFrom::first_wildcard("$share/g1/sensors/+/telemetry"),
            PayloadParams::default(),
        );
        assert!(r.matches("sensors/pump-1/telemetry"));
        assert_eq!(r.sensor, SensorFrom::Level(1));
        assert_eq!(r.sensor_from_topic("sensors/pump-1/telemetry"), Some("pump-1"));
    }

    #[test]
    fn sensor_id_comes_from_the_configured_level() {
        let p = PayloadParams::default();
        let default = Route::new(
            "sensors/+/telemetry",
            SensorFrom::first_wildcard("sensors/+/telemetry"),
            p.clone(),
        );
        assert_eq!(default.sensor_from_topic("sensors/p7/telemetry"), Some("p7"));
        assert_eq!(default.sensor_from_topic("sensors//telemetry"), None);
        let level = Route::new("site/+/+/data", SensorFrom::Level(2), p.clone());
        assert_eq!(level.sensor_from_topic("site/north/pump9/data"), Some("pump9"));
        let whole = Route::new(
            "plant/boiler",
            SensorFrom::first_wildcard("plant/boiler"),
            p.clone(),
        );
        assert_eq!(whole.sensor_from_topic("plant/boiler"), Some("plant/boiler"));
        let payload = Route::new("x/#", SensorFrom::Payload, p);
        assert_eq!(payload.sensor_from_topic("x/y"), None);
    }

    #[test]
    fn channel_name_comes_from_the_configured_level() {
        let mut r = Route::new("sensors/+/+", SensorFrom::Level(1), PayloadParams::default());
        assert_eq!(r.channel_from_topic("sensors/pump1/temperature"), None);
        r.channel_level = Some(2);
        assert_eq!(
            r.channel_from_topic("sensors/pump1/temperature"),
            Some(Some("temperature"))
        );
        assert_eq!(r.channel_from_topic("sensors/pump1/"), Some(None));
    }
}
