//! Issue 11 item 6 through the daemon and a real Mosquitto: the RFC 8428 §5.1.3 SenML
//! pack (voltage once, current at six times) is assembled into full readings instead of
//! being refused as a wrong channel count, a Telegraf payload read without `channels`
//! is refused and counted as an unselected nested object, not scored, and a partial
//! update left waiting by a sensor that falls silent is counted once its hold ran out.

use super::*;
use support::{assert_counter, counter, wait_for_metrics};

/// RFC 8428 §5.1.3, with the base time as a parameter.
fn pack(bt: f64) -> String {
    format!(
        r#"[{{"bn":"urn:dev:ow:10e2073a0108006:","bt":{bt},"bu":"A","bver":5,"n":"voltage","u":"V","v":120.1}},
{{"n":"current","t":-5,"v":1.2}},{{"n":"current","t":-4,"v":1.3}},{{"n":"current","t":-3,"v":1.4}},
{{"n":"current","t":-2,"v":1.5}},{{"n":"current","t":-1,"v":1.6}},{{"n":"current","v":1.7}}]"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senml_packs_are_assembled_and_unselected_nested_fields_are_counted() {
    let mut w = World::new("payloads", 10).await;
    let p = w.prefix.clone();
    w.config.push_str(&format!(
        "\n[[sources]]\ntopic = \"{p}/devices/+/senml\"\nformat = \"senml\"\nsensor_field = \"bn\"\nhold_secs = 10\n\
         \n[[sources]]\ntopic = \"{p}/telegraf/+/modbus\"\ntimestamp_field = \"/timestamp\"\n\
         \n[[sources]]\ntopic = \"{p}/split/+\"\nchannels = [\"a\", \"b\"]\nhold_secs = 1\n"
    ));
    let (mut d, probe) = w.start().await;
    let bt = 1.276020076001e9;
    probe.send(&format!("{p}/devices/d1/senml"), pack(bt)).await;
    probe.send(&format!("{p}/devices/d1/senml"), pack(bt + 6.0)).await;
    let telegraf = r#"{"fields":{"temperature":41.5},"name":"modbus","tags":{"host":"gw1\u001b[2J"},"timestamp":1700000000}"#;
    probe.send(&format!("{p}/telegraf/gw1/modbus"), telegraf).await;
    // `a` without `b`, then silence: no update will close the round.
    probe.send(&format!("{p}/split/s1"), r#"{"a": 1.0}"#).await;
    let text = wait_for_metrics(
        w.metrics_port,
        "the packs' readings and the Telegraf refusal",
        |t| {
            counter(t, "anomalyd_readings_total", "") >= 7.0
                && counter(t, "anomalyd_payload_unselected_total", "") >= 1.0
                && counter(t, "anomalyd_readings_incomplete_total", "") >= 6.0
        },
    )
    .await;
    // The first pack: one reading at bt, five currents without a voltage yet. The
    // second: six readings, the voltage held for 1 to 5 s. The silent sensor's `a`:
    // one more incomplete, a second after it arrived.
    assert_counter(&text, "anomalyd_readings_total", "", 7.0);
    assert_counter(&text, "anomalyd_readings_incomplete_total", "", 6.0);
    assert_counter(&text, "anomalyd_payload_unselected_total", "", 1.0);
    assert_counter(
        &text,
        "anomalyd_payload_errors_total",
        "kind=\"no_channels\"",
        1.0,
    );
    assert_eq!(
        counter(&text, "anomalyd_readings_dropped_total", "") + 0.0,
        0.0,
        "no wrong channel count, no changed set:\n{text}"
    );
    let log = d.log_text();
    assert!(
        log.contains("Nested payload field selected by no configuration"),
        "{log}"
    );
    assert!(log.contains("key=fields"), "{log}");
    assert!(!log.contains('\u{1b}'), "network text logged unescaped:\n{log}");
    // One connection, new to the broker (it::slowlink makes every tick land
    // mid-connect, so a poll dropped by the expiry tick is caught there for certain).
    assert_eq!(log.matches("Telemetry connection up.").count(), 1, "{log}");
    assert!(log.contains("session_present=false"), "{log}");
    assert!(d.alive(), "{log}");
}
