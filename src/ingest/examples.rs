//! The examples of docs/payloads.md, tested: each `[[sources]]` block is checked as
//! `check-config` checks it, each payload goes through the same steps as
//! [`super::mqtt::Ingest`]'s (route, parse, channel from the topic, admission with
//! assembly), and the readings are the ones the page states.

use super::assemble::Held;
use super::mqtt::build_routes;
use super::payload;
use super::sensors::{Admission, first_channel_set};
use crate::cluster::Partition;
use crate::config::Config;
use crate::reading::Reading;

const PAGE: &str = include_str!("../../docs/payloads.md");

/// The fenced blocks of `lang` under the `## heading` section, in order.
fn blocks(heading: &str, lang: &str) -> Vec<String> {
    let section = PAGE
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    let fence = format!("```{lang}\n");
    (section.split(fence.as_str()).skip(1))
        .map(|b| b.split("```").next().unwrap_or_default().to_owned())
        .collect()
}

/// Ingest without the broker: the daemon's routes of `config`, and what it holds.
struct Intake {
    config: Config,
    admission: Admission,
    incomplete: usize,
    /// `(kind, message)` of each batch element the payloads' parse rejected.
    rejected: Vec<(&'static str, String)>,
}

impl Intake {
    fn new(sources: &str) -> Self {
        let config = Config::from_toml_str(sources).unwrap_or_else(|e| panic!("{e}\n{sources}"));
        Self {
            config,
            admission: Admission::new(Partition::default(), 100, []),
            incomplete: 0,
            rejected: Vec::new(),
        }
    }

    /// The readings `payload` on `topic` makes, received at `now`, as [`show`]s them.
    fn take(&mut self, topic: &str, payload: &str, now: f64) -> Vec<Shown> {
        let routes = build_routes(&self.config).expect("routes");
        let route = routes
            .iter()
            .find(|r| r.matches(topic))
            .expect("a source for the topic");
        let read = payload::read(payload.trim().as_bytes(), &route.params, now).expect("payload parses");
        let mut records = read.records;
        self.rejected
            .extend(read.rejected.iter().map(|e| (e.kind(), e.to_string())));
        if let Some(level) = route.channel_from_topic(topic) {
            let name = level.expect("channel level");
            for (channel, _) in records.iter_mut().flat_map(|r| r.channels.iter_mut()) {
                *channel = name.into();
            }
        }
        let topic_sensor = route.sensor_from_topic(topic);
        let mut out = Vec::new();
        for record in &records {
            assert_eq!(record.unselected, None, "nothing left unread: {payload}");
            let sensor = record.sensor.as_deref().or(topic_sensor).expect("sensor id");
            let names = record.channels.iter().map(|(n, _)| n.as_ref());
            let configured = route.params.channels.as_deref();
            let new_set = || first_channel_set(configured, &records, sensor, topic_sensor);
            let assemble = |id: &_, set: &_, held: &mut Held| {
                held.update(id, set, record.ts, &record.channels, (route.hold, now))
            };
            let assembled = (self.admission)
                .admit(sensor, names, new_set, assemble)
                .expect("admitted");
            self.incomplete += usize::from(assembled.incomplete);
            out.extend(assembled.readings().map(|r| show(&r)));
        }
        out
    }
}

/// `(sensor, ts, [(channel, value)])` of a reading.
type Shown = (String, f64, Vec<(String, f64)>);

fn show(r: &Reading) -> Shown {
    let channels = (r.channels.iter().cloned())
        .zip(r.values.iter().copied())
        .collect();
    (r.sensor.to_string(), r.ts, channels)
}

fn reading(sensor: &str, ts: f64, channels: &[(&str, f64)]) -> Shown {
    let channels = channels.iter().map(|&(n, v)| (n.to_owned(), v)).collect();
    (sensor.to_owned(), ts, channels)
}

const NOW: f64 = 1_700_000_100.0;

#[test]
fn the_telegraf_example_reads_the_fields_at_the_telegraf_timestamp() {
    let (config, payload) = (&blocks("Telegraf", "toml")[0], &blocks("Telegraf", "json")[0]);
    let mut intake = Intake::new(config);
    let got = intake.take("telegraf/gw1/modbus", payload, NOW);
    let want = reading(
        "gw1",
        1_700_000_000.0,
        &[("temperature", 41.5), ("pressure", 3.25)],
    );
    assert_eq!(got, vec![want]);
    // A failed read leaves a field out: the reading is completed with the held value.
    let partial =
        r#"{"fields":{"temperature":42.0},"name":"modbus","tags":{"host":"gw1"},"timestamp":1700000010}"#;
    let got = intake.take("telegraf/gw1/modbus", partial, NOW);
    assert_eq!(got, vec![]);
    let next = payload.replace("1700000000", "1700000020");
    let got = intake.take("telegraf/gw1/modbus", &next, NOW);
    assert_eq!(
        got,
        vec![
            reading(
                "gw1",
                1_700_000_010.0,
                &[("temperature", 42.0), ("pressure", 3.25)]
            ),
            reading(
                "gw1",
                1_700_000_020.0,
                &[("temperature", 41.5), ("pressure", 3.25)]
            ),
        ]
    );
    assert_eq!(intake.incomplete, 0);
}

#[test]
fn the_telegraf_payload_without_channels_is_refused_naming_the_nested_fields() {
    let payload = &blocks("Telegraf", "json")[0];
    let config =
        Intake::new("[[sources]]\ntopic = \"telegraf/+/modbus\"\ntimestamp_field = \"/timestamp\"\n").config;
    let route = &build_routes(&config).expect("routes")[0];
    let err = payload::parse(payload.trim().as_bytes(), &route.params, NOW).unwrap_err();
    assert_eq!(err.kind(), "no_channels");
    assert!(err.unselected().is_some(), "{err}");
}

#[test]
fn a_telegraf_batch_is_a_reading_per_element_and_a_bad_element_loses_only_itself() {
    let config = &blocks("Telegraf batches", "toml")[0];
    let [batch, with_bad] = &blocks("Telegraf batches", "json")[..] else {
        panic!("two payloads in the section");
    };
    let mut intake = Intake::new(config);
    let got = intake.take("telegraf/hub/batch", batch, NOW);
    let want = vec![
        reading(
            "gw1",
            1_700_000_000.0,
            &[("temperature", 41.5), ("pressure", 3.25)],
        ),
        reading(
            "gw2",
            1_700_000_000.0,
            &[("temperature", 38.0), ("pressure", 2.9)],
        ),
        reading(
            "gw1",
            1_700_000_010.0,
            &[("temperature", 41.7), ("pressure", 3.5)],
        ),
    ];
    assert_eq!(got, want);
    assert_eq!(intake.rejected, vec![]);
    let got = intake.take("telegraf/hub/batch", with_bad, NOW);
    let want = reading(
        "gw1",
        1_700_000_020.0,
        &[("temperature", 40.0), ("pressure", 3.0)],
    );
    assert_eq!(got, vec![want]);
    let kinds: Vec<_> = intake.rejected.iter().map(|(kind, _)| *kind).collect();
    assert_eq!(kinds, ["missing_sensor", "wrong_type"]);
    assert_eq!(
        intake.rejected[0].1,
        "`metrics[1]`: sensor field `/tags/host` is missing or empty"
    );
    assert!(
        intake.rejected[1]
            .1
            .starts_with("`metrics[2]`: field `/fields/temperature`"),
        "{}",
        intake.rejected[1].1
    );
    let prose = PAGE.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        prose.contains(&format!("\"{}\"", intake.rejected[0].1)),
        "the page quotes the message as it is"
    );
}

#[test]
fn the_node_red_examples_read_date_now_and_one_value_per_topic() {
    let config = &blocks("Node-RED", "toml")[0];
    let payload = &blocks("Node-RED", "json")[0];
    let mut intake = Intake::new(config);
    let got = intake.take("nodered/pump2/telemetry", payload, NOW);
    let want = reading("pump2", 1_700_000_000.123, &[("flow", 12.5), ("pressure", 3.1)]);
    assert_eq!(got.len(), 1);
    assert_eq!((&got[0].0, &got[0].2), (&want.0, &want.2));
    assert!((got[0].1 - want.1).abs() < 1e-6, "{}", got[0].1);
    assert_eq!(intake.take("nodered/pump3/flow", "12.5", NOW), vec![]);
    let got = intake.take("nodered/pump3/pressure", "3.1", NOW + 0.5);
    assert_eq!(
        got,
        vec![reading("pump3", NOW + 0.5, &[("flow", 12.5), ("pressure", 3.1)])]
    );
    assert_eq!(intake.incomplete, 0);
}

#[test]
fn the_senml_example_is_one_reading_then_six_with_the_voltage_held() {
    let (config, pack) = (&blocks("SenML", "toml")[0], &blocks("SenML", "json")[0]);
    let mut intake = Intake::new(config);
    let sensor = "urn:dev:ow:10e2073a0108006";
    let bt = 1.276020076001e9;
    let got = intake.take("devices/x/senml", pack, NOW);
    assert_eq!(
        got,
        vec![reading(sensor, bt, &[("current", 1.7), ("voltage", 120.1)])]
    );
    assert_eq!(intake.incomplete, 5, "five currents before the first voltage");
    let later = pack.replace("1.276020076001e+09", "1.276020082001e+09");
    let got = intake.take("devices/x/senml", &later, NOW);
    let currents = [1.2, 1.3, 1.4, 1.5, 1.6, 1.7];
    assert_eq!(got.len(), 6, "{got:?}");
    for (i, (r, current)) in got.iter().zip(currents).enumerate() {
        assert!((r.1 - (bt + 1.0 + i as f64)).abs() < 1e-6, "{i}: {}", r.1);
        assert_eq!(
            r.2,
            vec![("current".to_owned(), current), ("voltage".to_owned(), 120.1)]
        );
    }
    assert_eq!(intake.incomplete, 5, "none more");
}
