//! The publisher: the only poller of the outgoing MQTT connection.
//!
//! It receives [`Outbound`] messages (alert events and per-sensor state) from the
//! detector over a bounded channel, keeps alerts in a bounded queue (the oldest is
//! dropped and counted when full) and publishes them with QoS 1 while the broker is
//! reachable, so alerts raised during an outage go out after the reconnect. Per-sensor
//! state is retained and only the latest per sensor is kept. This connection owns the
//! instance status topic: birth `online` on every ConnAck, last will `offline`, and an
//! explicit `offline` when the daemon stops. Sensor ids are sanitised by
//! [`crate::alert::render_topic`] before they enter a topic. Publishes stay tracked
//! (`unacked`) until the broker acknowledges them, so a broker restart that loses
//! the session does not lose an alert. An alert older than `[alerts] expiry_secs` when
//! it could go out is dropped and counted; under MQTT 5 the broker is given what is
//! left of that time as the message expiry, and every JSON payload is marked
//! `application/json`. With `[homeassistant]`, the first state of each sensor is
//! preceded by its retained discovery configs ([`homeassistant`]), which are sent
//! again after any reconnect without a session, and score updates go out retained
//! like states.
//!
//! Here: the messages, the task's state and its loop; `queue` holds what waits to go
//! out, `session` reacts to the connection's events, `unacked` tracks what the broker
//! has not acknowledged.

pub mod homeassistant;
mod queue;
mod session;
mod unacked;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use rumqttc::QoS;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::alert::stale::StaleEvent;
use crate::alert::{AlertEvent, AlertEventKind, render_topic};
use crate::config::Config;
use crate::metrics::names;
use crate::mqtt::backoff::Backoff;
use crate::mqtt::conn::{self, ConnError};
use crate::mqtt::net::{self, Client, EventLoop, NetError, NetEvent};
use unacked::{Tracked, Unacked};

/// Requests rumqttc buffers between `try_publish` and the event loop. When it is full
/// the publisher keeps the message in its own queue and tries again after a poll.
const REQUEST_CAPACITY: usize = 256;

/// How long the publisher tries to deliver what is queued once the detector is done.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// A sensor's retained state, as published on `alerts.state_topic`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SensorState {
    /// Sensor id as received (the topic level is sanitised).
    pub sensor: String,
    /// Where the sensor is in its lifecycle: `warming_up`, `normal`, `alert` or
    /// `accepted` (an alert was accepted as the new normal; re-baselining).
    pub state: crate::detector::SensorState,
    /// Why the sensor's last alert was cleared (`recovered`, `subsided` or `accepted`), if
    /// it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_clear: Option<crate::alert::ClearReason>,
    /// Model generation, 0 before the first model.
    pub model_version: u64,
    /// The threshold has `min_scores` scores: alerts are possible.
    pub threshold_ready: bool,
    /// The sensor's window is full: scoring resumes. False while it fills at start
    /// and after a gap in the telemetry cleared it (no window spans a gap).
    pub window_ready: bool,
    /// No reading for `[alert] stale_after_secs` (wall clock); always false when
    /// staleness is off.
    pub stale: bool,
    /// After a `subsided` clear: the sensor holds the level its fault subsided to (no
    /// alert unless the error rises over it) until it recovers or the episode is
    /// accepted; absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub holding: bool,
    /// Channels stuck at one value now (`[alert] stuck_rows`); absent when none is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stuck: Vec<String>,
    /// Time of the reading that changed the state, unix seconds.
    pub ts: f64,
}

/// What the detector hands to the publisher.
#[derive(Clone, Debug)]
pub enum Outbound {
    /// A raised or cleared alert; QoS 1, queued while the broker is away.
    Alert(Box<AlertEvent>),
    /// A state change; retained, only the latest per sensor is kept.
    State(SensorState),
    /// A sensor fell silent or spoke again; queued like an alert.
    Stale(StaleEvent),
    /// The latest scores for Home Assistant; retained, only the latest per sensor is kept.
    Score(homeassistant::ScoreUpdate),
}

/// One alert message ready for the wire.
#[derive(Clone, Debug, PartialEq)]
struct Message {
    topic: String,
    payload: Vec<u8>,
    /// When the publisher received it: its age decides expiry.
    queued: Instant,
}

/// The publisher task's state; see the module docs.
pub struct Publisher {
    client: Client,
    eventloop: EventLoop,
    alert_topic: String,
    state_topic: String,
    status_topic: String,
    /// Alerts not yet handed to rumqttc, oldest first, at most `capacity`.
    alerts: VecDeque<Message>,
    capacity: usize,
    /// Latest state per state topic not yet handed to rumqttc.
    states: BTreeMap<String, Vec<u8>>,
    /// Handed to rumqttc and not yet acknowledged.
    unacked: Unacked,
    connected: bool,
    backoff: Backoff,
    /// Set after a connection error: no poll until then (rumqttc would retry at once).
    retry_at: Option<Instant>,
    /// `[alerts] expiry_secs`.
    expiry: Option<Duration>,
    /// `[homeassistant]`, when enabled.
    discovery: Option<homeassistant::Discovery>,
    /// Sensors whose discovery configs were queued in this run.
    discovered: HashSet<String>,
    /// Every discovery config queued so far (topic → JSON), resent after a reconnect
    /// without a session: a broker without persistence has lost them.
    configs: BTreeMap<String, Vec<u8>>,
}

impl Publisher {
    /// Builds the publisher (client id `<mqtt.client_id>-pub`); connects lazily.
    ///
    /// # Errors
    ///
    /// [`ConnError`] for unreadable credential or TLS files.
    pub fn new(config: &Config) -> Result<Self, ConnError> {
        let will = conn::offline_will(&config.alerts.status_topic);
        let client_id = format!("{}-pub", config.mqtt.client_id);
        let (client, eventloop) = net::connect(&config.mqtt, &client_id, Some(&will), REQUEST_CAPACITY)?;
        Ok(Self {
            client,
            eventloop,
            alert_topic: config.alerts.topic.clone(),
            state_topic: config.alerts.state_topic.clone(),
            status_topic: config.alerts.status_topic.clone(),
            alerts: VecDeque::new(),
            capacity: config.alerts.queue.max(1),
            states: BTreeMap::new(),
            unacked: Unacked::default(),
            connected: false,
            backoff: Backoff::new(config.mqtt.reconnect_min, config.mqtt.reconnect_max),
            retry_at: None,
            expiry: config.alert_expiry,
            discovery: homeassistant::Discovery::new(config),
            discovered: HashSet::new(),
            configs: BTreeMap::new(),
        })
    }

    /// Publishes until `outbound_rx` closes (the detector has drained), then flushes
    /// what is queued (bounded by a deadline), publishes `offline` and disconnects.
    pub async fn run(mut self, mut outbound_rx: mpsc::Receiver<Outbound>) {
        loop {
            let retry_at = self.retry_at;
            tokio::select! {
                // Only while backing off; poll() is disabled meanwhile.
                () = sleep_until_opt(retry_at), if retry_at.is_some() => self.retry_at = None,
                // Not while backing off: polling is what reconnects.
                event = self.eventloop.poll(), if retry_at.is_none() => self.on_poll(event),
                msg = outbound_rx.recv() => match msg {
                    Some(msg) => self.enqueue(msg),
                    None => break,
                },
            }
            self.flush();
        }
        self.finish().await;
    }

    /// After the detector is done: deliver what is queued if the broker is reachable
    /// within [`FLUSH_DEADLINE`], then say `offline` and disconnect cleanly.
    async fn finish(mut self) {
        let deadline = Instant::now() + FLUSH_DEADLINE;
        while !self.delivered() && Instant::now() < deadline {
            let retry_at = self.retry_at;
            tokio::select! {
                () = sleep_until_opt(retry_at), if retry_at.is_some() => self.retry_at = None,
                event = self.eventloop.poll(), if retry_at.is_none() => self.on_poll(event),
                () = tokio::time::sleep_until(deadline) => break,
            }
            self.flush();
        }
        if !self.alerts.is_empty() {
            warn!(
                lost = self.alerts.len(),
                "Broker unreachable at shutdown; queued alerts not delivered."
            );
        }
        if !self.connected {
            return;
        }
        let _ = self
            .client
            .try_publish(&self.status_topic, QoS::AtLeastOnce, true, "offline");
        let _ = self.client.try_disconnect();
        let drain = async {
            loop {
                match self.eventloop.poll().await {
                    Ok(NetEvent::DisconnectSent) | Err(_) => break,
                    Ok(other) => debug!(?other, "Flushing."),
                }
            }
        };
        if tokio::time::timeout_at(deadline.max(Instant::now() + Duration::from_secs(1)), drain)
            .await
            .is_err()
        {
            warn!("Alert connection disconnect not confirmed in time.");
        }
        info!("Alert connection closed.");
    }
}

impl Publisher {
    /// Connected, nothing queued and nothing awaiting an acknowledgement.
    fn delivered(&self) -> bool {
        self.connected && self.alerts.is_empty() && self.states.is_empty() && self.unacked.is_empty()
    }
}

/// The message expiry left to an alert queued at `queued`, whole seconds rounded up:
/// `Some(None)` without `[alerts] expiry_secs`, `None` once it has expired.
fn remaining(expiry: Option<Duration>, queued: Instant, now: Instant) -> Option<Option<u32>> {
    let Some(expiry) = expiry else {
        return Some(None);
    };
    let left = expiry.checked_sub(now.saturating_duration_since(queued))?;
    if left.is_zero() {
        return None;
    }
    // Validation bounds expiry_secs by u32::MAX; the ceiling keeps a fraction alive.
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    Some(Some(u32::try_from(secs).unwrap_or(u32::MAX)))
}

/// Sleeps until `at`; pending forever for `None` (the `select!` guard disables it then).
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
