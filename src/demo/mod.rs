//! `anomalyd demo`: an embedded MQTT broker (rumqttd) on a free loopback port, the
//! simulator and the daemon in one process, with alerts printed as they arrive on the
//! alert topic (the same path an operator's subscriber would see) and a scorecard at
//! the end ([`scorecard`]: anomalies detected and how late, missed, false alarms).
//! Small windows and a short warm-up make the first alerts show within ~30 s.
//! [`printed_config`] is the same daemon config for a real broker, with the simulate
//! command that feeds it (`anomalyd demo --print-config`).

pub mod scorecard;

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::simulate::{self, SimParams};

/// Topic prefix the simulator publishes under (`demo/<sensor>/telemetry`).
const PREFIX: &str = "demo";

/// Readings per second per simulated sensor.
const RATE_HZ: f64 = 25.0;

/// What the demo's subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    raises: Vec<scorecard::Raise>,
    cleared: u64,
}

/// The simulator the demo runs. The detector is ready after ~22 s (400 training windows,
/// then 150 scores at 25 Hz); the first anomaly comes after 25 s, then one per sensor
/// every ~10 s. The daemon trains on the first 16 s: the 12 s load cycle lets that
/// cover a whole cycle, or the rest of a 10-minute cycle would look anomalous.
fn sim_params() -> SimParams {
    SimParams {
        sensors: 3,
        rate_hz: RATE_HZ,
        seed: 7,
        anomaly_every: 10.0,
        warmup: 25.0,
        load_period: 12.0,
    }
}

/// The demo's daemon config for a real broker at `127.0.0.1:1883` (edit `[mqtt]`), with
/// the `anomalyd simulate` command line that sends what the demo sends.
pub fn printed_config() -> String {
    let p = sim_params();
    format!(
        "# The config `anomalyd demo` runs: small windows and a short warm-up, for the demo's\n\
         # simulated pumps. To run the same against a real broker, set [mqtt] host and port,\n\
         # start the daemon with `anomalyd run --config <this file>` and feed it with\n\
         #   anomalyd simulate --host 127.0.0.1 --port 1883 --sensors {} --rate {} --seed {} \\\n\
         #       --anomaly-every {} --warmup {} --load-period {} --prefix {PREFIX}\n\
         # Alerts: mosquitto_sub -t 'anomalyd/alerts/+' -v\n{}",
        p.sensors,
        p.rate_hz,
        p.seed,
        p.anomaly_every,
        p.warmup,
        p.load_period,
        demo_config("127.0.0.1", 1883, "anomalyd-demo", "anomalyd-demo-state"),
    )
}

/// Runs the demo for `seconds` or until `ctrl_c` completes.
///
/// # Errors
///
/// When the broker cannot start or the daemon fails.
pub async fn run(seconds: u64, ctrl_c: impl Future<Output = ()>) -> anyhow::Result<()> {
    let port = free_port().context("no free loopback port for the embedded broker")?;
    start_broker(port)?;
    wait_for_port(port).await?;
    let dir = std::env::temp_dir().join(format!("anomalyd-demo-{}", std::process::id()));
    let client_id = format!("anomalyd-demo-{}", std::process::id());
    let config = Config::from_toml_str(&demo_config(
        "127.0.0.1",
        port,
        &client_id,
        &dir.to_string_lossy(),
    ))
    .context("demo config")?;
    println!("anomalyd demo: broker on 127.0.0.1:{port}, 3 simulated sensors at {RATE_HZ} Hz, {seconds} s");
    println!("warming up (collecting training windows, then the threshold)…");

    let stop = CancellationToken::new();
    let daemon_stop = CancellationToken::new();
    let printer = tokio::spawn(print_alerts(port, daemon_stop.clone()));
    let daemon = tokio::spawn(crate::daemon::run(
        config,
        None,
        daemon_stop.clone().cancelled_owned(),
    ));
    let params = sim_params();
    let sim_stop = stop.clone();
    let sim = tokio::spawn(async move {
        simulate::run(
            "127.0.0.1",
            port,
            params,
            None,
            PREFIX,
            sim_stop.cancelled_owned(),
        )
        .await
    });

    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        () = ctrl_c => println!("interrupted"),
    }
    stop.cancel();
    let summary = sim.await.context("simulator task")?.context("simulator")?;
    let stopped = crate::reading::unix_now();
    // Let the last windows reach the detector and their alerts the printer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    daemon_stop.cancel();
    let daemon_result = daemon.await.context("daemon task")?;
    let seen = printer.await.unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);

    print_summary(&summary, &seen, stopped);
    daemon_result
}

/// The closing lines: counts, then the scorecard.
fn print_summary(summary: &simulate::SimSummary, seen: &Seen, stopped: f64) {
    println!();
    println!(
        "summary: {} readings published, {} alerts raised, {} cleared",
        summary.published,
        seen.raises.len(),
        seen.cleared,
    );
    print!(
        "{}",
        scorecard::Scorecard::new(&summary.injections, &seen.raises, stopped).render()
    );
}

/// A free loopback port: bind port 0, read the port, release it. Another process
/// could take it in between; on a demo machine that is unlikely and merely fails.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts rumqttd on its own threads; it lives until the process exits.
#[cfg(feature = "embedded-broker")]
fn start_broker(port: u16) -> anyhow::Result<()> {
    let listen: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let config: rumqttd::Config = serde_json::from_value(serde_json::json!({
        "id": 0,
        "router": { "max_connections": 100, "max_outgoing_packet_count": 1000,
                    "max_segment_size": 10_485_760, "max_segment_count": 10 },
        "v4": { "1": { "name": "v4-1", "listen": listen.to_string(), "next_connection_delay_ms": 1,
                       "connections": { "connection_timeout_ms": 60_000, "max_payload_size": 1_048_576,
                                        "max_inflight_count": 500, "dynamic_filters": true } } }
    }))
    .context("embedded broker config")?;
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(error) = broker.start() {
                tracing::error!(%error, "Embedded broker stopped.");
            }
        })?;
    Ok(())
}

/// Without the embedded broker the demo cannot run.
#[cfg(not(feature = "embedded-broker"))]
fn start_broker(_port: u16) -> anyhow::Result<()> {
    anyhow::bail!("this build has no embedded broker; rebuild with the `embedded-broker` feature")
}

async fn wait_for_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("embedded broker did not start listening on port {port}")
}

/// Subscribes to the alert topic and prints each event on one line until `stop`.
async fn print_alerts(port: u16, stop: CancellationToken) -> Seen {
    let mut opts = MqttOptions::new(
        format!("anomalyd-demo-viewer-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let mut seen = Seen::default();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = client.try_subscribe("anomalyd/alerts/+", QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => print_alert(&p.payload, &mut seen),
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    seen
}

fn print_alert(payload: &[u8], seen: &mut Seen) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    let event = v["event"].as_str().unwrap_or("?");
    match event {
        "raised" => seen.raises.push(scorecard::Raise {
            sensor: v["sensor"].as_str().unwrap_or("?").to_string(),
            ts: v["ts"].as_f64().unwrap_or(f64::NAN),
        }),
        "cleared" => seen.cleared += 1,
        _ => {}
    }
    let top = v["channels"]
        .as_array()
        .and_then(|cs| {
            cs.iter().max_by(|a, b| {
                a["share"]
                    .as_f64()
                    .partial_cmp(&b["share"].as_f64())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
        })
        .map(|c| {
            format!(
                "{} ({:.0}%)",
                c["channel"].as_str().unwrap_or("?"),
                c["share"].as_f64().unwrap_or(0.0) * 100.0
            )
        })
        .unwrap_or_default();
    let stuck: String = (v["stuck"].as_array().into_iter().flatten())
        .map(|s| {
            let channel = crate::escape::Escaped(s["channel"].as_str().unwrap_or("?"));
            format!(
                "  stuck: {channel} ({} readings)",
                s["rows"].as_u64().unwrap_or(0)
            )
        })
        .collect();
    let time = v["ts_rfc3339"].as_str().unwrap_or("").get(11..19).unwrap_or("");
    println!(
        "{time}  {:<8} {:<8} {:<10} score {:.4} vs threshold {:.4} (×{:.1})  top channel: {top}{stuck}  model v{}",
        event.to_uppercase(),
        v["severity"].as_str().unwrap_or(""),
        crate::escape::Escaped(v["sensor"].as_str().unwrap_or("?")),
        v["score"].as_f64().unwrap_or(f64::NAN),
        v["threshold"].as_f64().unwrap_or(f64::NAN),
        v["over_by"].as_f64().unwrap_or(f64::NAN),
        v["model_version"].as_u64().unwrap_or(0),
    );
}

/// The demo's daemon config: small windows and warm-up so alerts show quickly.
fn demo_config(host: &str, port: u16, client_id: &str, state_dir: &str) -> String {
    format!(
        r#"
[mqtt]
host = "{host}"
port = {port}
client_id = "{client_id}"
persistent_session = false
reconnect_min_ms = 200
reconnect_max_ms = 2000

[[sources]]
topic = "{PREFIX}/+/telemetry"

[state]
dir = "{state_dir}"
snapshot_every_secs = 0

[metrics]
listen = ""

[window]
size = 16

[model]
hidden = [16]
latent = 4
epochs = 15
batch_size = 32
learning_rate = 0.005

[training]
min_windows = 400
# No retraining during the short demo: a retrain would learn a long level shift
# as normal before it is shown.
retrain_every = 0
buffer = 1500

[threshold]
quantile = 0.995
window = 2000
min_scores = 150

[alert]
consecutive = 4
clear_after = 25
cooldown = 100

[score]
onset_rows = 0
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_config_is_the_demo_config_and_names_the_simulator_it_expects() {
        let printed = printed_config();
        let config = Config::from_toml_str(&printed).expect("printed config is valid");
        let demo = Config::from_toml_str(&demo_config(
            "127.0.0.1",
            1883,
            "anomalyd-demo",
            "anomalyd-demo-state",
        ))
        .expect("demo config");
        assert_eq!(config, demo);
        assert_eq!(config.detector.window.size, 16);
        assert_eq!(config.sources[0].topic, format!("{PREFIX}/+/telemetry"));
        let p = sim_params();
        for flag in [
            format!("--rate {}", p.rate_hz),
            format!("--load-period {}", p.load_period),
            format!("--prefix {PREFIX}"),
        ] {
            assert!(printed.contains(&flag), "{flag} missing:\n{printed}");
        }
    }
}
