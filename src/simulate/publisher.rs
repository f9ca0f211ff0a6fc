//! The MQTT side of the simulator: publishes [`Simulator`] ticks in real time.
//!
//! Owns the rumqttc client and the task that polls its event loop. It does not
//! generate data (that is the pure [`Simulator`]) and does not subscribe to anything.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use rumqttc::{AsyncClient, ClientError, Event, EventLoop, MqttOptions, Outgoing, QoS};
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval, sleep, timeout};

use super::{Injection, SimParams, Simulator, to_json_payload};

/// How long the poller waits after a connection error before retrying.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// How long [`run`] waits for the Disconnect packet to go out before giving up.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);

/// Errors that stop the simulator.
#[derive(thiserror::Error, Debug)]
pub enum SimError {
    /// A [`SimParams`] field is out of range.
    #[error("simulator `{field}` must be {rule}, got {value}")]
    InvalidParams {
        /// Field name.
        field: &'static str,
        /// The offending value (sensor counts as f64).
        value: f64,
        /// The rule it broke.
        rule: &'static str,
    },
    /// The MQTT event loop task ended unexpectedly, so nothing can be sent.
    #[error("mqtt event loop stopped: {0}")]
    EventLoop(String),
}

/// What [`run`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimSummary {
    /// Ticks generated (each covers every sensor).
    pub ticks: u64,
    /// Messages handed to the MQTT client. QoS 0: delivery is not confirmed.
    pub published: u64,
    /// Messages dropped because the client's queue was full (broker slow or down).
    pub dropped: u64,
    /// Every injected anomaly, in start order: the ground truth for the run.
    pub injections: Vec<Injection>,
}

/// Publishes synthetic telemetry to `host:port` until `duration` elapses or
/// `shutdown` completes, whichever is first.
///
/// Each sensor publishes `rate_hz` JSON payloads per second ([`to_json_payload`]) at
/// QoS 0 to `<topic_prefix>/<sensor>/telemetry`. Each injection is printed to stdout
/// as `inject <sensor> <kind> at <rfc3339> for <secs>s`. While the broker is
/// unreachable the poller retries every second and messages that do not fit the
/// client queue are counted in [`SimSummary::dropped`] rather than blocking the clock.
///
/// # Errors
/// [`SimError::InvalidParams`] before connecting; [`SimError::EventLoop`] if the
/// poller task dies.
pub async fn run(
    host: &str,
    port: u16,
    p: SimParams,
    duration: Option<Duration>,
    topic_prefix: &str,
    shutdown: impl Future<Output = ()>,
) -> Result<SimSummary, SimError> {
    p.check()?;
    let mut opts = MqttOptions::new(client_id(), host, port);
    opts.set_keep_alive(Duration::from_secs(10));
    // About two seconds of messages: rides out a short stall without unbounded memory.
    let cap = (p.sensors as f64 * p.rate_hz * 2.0).clamp(64.0, 65_536.0) as usize;
    let (client, eventloop) = AsyncClient::new(opts, cap);
    let mut poller = tokio::spawn(poll_events(eventloop));

    let mut ticker = interval(Duration::from_secs_f64(1.0 / p.rate_hz));
    // Burst keeps sim time (t0 + k/rate) aligned with the wall clock after a stall.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut sim = Simulator::new(p, crate::reading::unix_now());
    let mut summary = SimSummary::default();
    let deadline = async {
        match duration {
            Some(d) => sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(shutdown, deadline);
    let result = loop {
        tokio::select! {
            // Biased: a requested stop wins over a due tick, so shutdown is prompt.
            biased;
            () = &mut shutdown => break Ok(()),
            () = &mut deadline => break Ok(()),
            _ = ticker.tick() => {
                if let Err(e) = publish_tick(&client, &mut sim, topic_prefix, &mut summary, &poller) {
                    break Err(e);
                }
            }
        }
    };
    finish(&client, &mut poller).await;
    result.map(|()| summary)
}

/// Generates one tick and queues its messages without waiting on the network.
fn publish_tick(
    client: &AsyncClient,
    sim: &mut Simulator,
    prefix: &str,
    summary: &mut SimSummary,
    poller: &JoinHandle<()>,
) -> Result<(), SimError> {
    let (readings, started) = sim.next_tick();
    summary.ticks += 1;
    for inj in started {
        println!(
            "inject {} {} at {} for {:.1}s",
            inj.sensor,
            inj.kind,
            rfc3339(inj.start),
            inj.end - inj.start
        );
        summary.injections.push(inj);
    }
    for (sensor, ts, channels) in readings {
        let topic = format!("{prefix}/{sensor}/telemetry");
        match client.try_publish(topic, QoS::AtMostOnce, false, to_json_payload(ts, &channels)) {
            Ok(()) => summary.published += 1,
            Err(ClientError::TryRequest(_)) if !poller.is_finished() => summary.dropped += 1,
            Err(e) => return Err(SimError::EventLoop(e.to_string())),
        }
    }
    Ok(())
}

/// The only poller of the event loop: drives the connection, retries with a delay
/// (rumqttc has none of its own), and ends once the Disconnect packet is sent.
async fn poll_events(mut eventloop: EventLoop) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "Simulator lost the broker; retrying in 1 s.");
                sleep(RECONNECT_DELAY).await;
            }
        }
    }
}

/// Sends Disconnect and waits briefly for it to go out; aborts the poller otherwise
/// (e.g. the broker is down and the Disconnect can never be written).
async fn finish(client: &AsyncClient, poller: &mut JoinHandle<()>) {
    if client.try_disconnect().is_ok() && timeout(DISCONNECT_GRACE, &mut *poller).await.is_ok() {
        return;
    }
    poller.abort();
}

/// Unique per process and per call, so parallel simulators never kick each other off.
fn client_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("anomalyd-sim-{}-{n}", std::process::id())
}

fn rfc3339(ts: f64) -> String {
    let secs = ts.floor();
    let nanos = ((ts - secs) * 1e9) as u32;
    DateTime::from_timestamp(secs as i64, nanos.min(999_999_999)).map_or_else(
        || format!("{ts}"),
        |dt| dt.to_rfc3339_opts(SecondsFormat::Millis, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_renders_millis_in_utc() {
        assert_eq!(rfc3339(1_700_000_000.25), "2023-11-14T22:13:20.250Z");
    }

    #[tokio::test]
    async fn run_rejects_bad_params_before_connecting() {
        let p = SimParams {
            rate_hz: 0.0,
            ..SimParams::default()
        };
        let err = run("127.0.0.1", 1, p, None, "sensors", async {}).await;
        assert!(matches!(
            err,
            Err(SimError::InvalidParams { field: "rate_hz", .. })
        ));
    }

    #[tokio::test]
    async fn run_without_broker_keeps_ticking_and_stops_at_deadline() {
        // Port of a listener we just closed: nothing accepts, so connects fail fast.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind an ephemeral port");
        let p = SimParams {
            sensors: 2,
            rate_hz: 50.0,
            ..SimParams::default()
        };
        let d = Some(Duration::from_millis(300));
        let run = run("127.0.0.1", port, p, d, "t", std::future::pending());
        let summary = timeout(Duration::from_secs(5), run)
            .await
            .expect("stops")
            .expect("ok");
        assert!(summary.ticks >= 5, "{summary:?}");
        assert_eq!(summary.published + summary.dropped, 2 * summary.ticks);
    }
}
