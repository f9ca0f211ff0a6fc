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

pub mod homeassistant;
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
    /// Why the sensor's last alert was cleared (`recovered` or `accepted`), if it had one.
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

    fn enqueue(&mut self, msg: Outbound) {
        match msg {
            Outbound::Alert(event) => {
                let kind = match event.event {
                    AlertEventKind::Raised => "raised",
                    AlertEventKind::Cleared => "cleared",
                };
                info!(sensor = %crate::escape::Escaped(&event.sensor), event = kind, severity = event.severity.as_str(), score = event.score, threshold = event.threshold, "Alert.");
                self.push_alert(&event.sensor, event.to_json());
            }
            Outbound::Stale(event) => {
                info!(sensor = %crate::escape::Escaped(&event.sensor), event = event.event.as_str(), silent_s = event.silent_secs, "Alert.");
                self.push_alert(&event.sensor, event.to_json());
            }
            Outbound::Score(update) => {
                let Some(d) = &self.discovery else {
                    return;
                };
                let topic = d.score_topic(&update.sensor);
                // serde_json cannot fail on this plain struct of strings and numbers.
                let payload = serde_json::to_vec(&update).unwrap_or_default();
                self.states.insert(topic, payload);
            }
            Outbound::State(state) => {
                self.discover(&state.sensor);
                let topic = render_topic(&self.state_topic, &state.sensor);
                // serde_json cannot fail on this plain struct of strings and numbers.
                let payload = serde_json::to_vec(&state).unwrap_or_default();
                self.states.insert(topic, payload);
            }
        }
    }

    /// Queues one alert payload on the sensor's alert topic, dropping the oldest when
    /// the queue is full.
    fn push_alert(&mut self, sensor: &str, json: String) {
        if self.alerts.len() >= self.capacity {
            self.alerts.pop_front();
            metrics::counter!(names::ALERTS_DROPPED).increment(1);
            warn!(
                capacity = self.capacity,
                "Alert queue full; oldest alert dropped."
            );
        }
        self.alerts.push_back(Message {
            topic: render_topic(&self.alert_topic, sensor),
            payload: json.into_bytes(),
            queued: Instant::now(),
        });
        metrics::gauge!(names::ALERTS_QUEUED).set(self.alerts.len() as f64);
    }

    /// Queues the Home Assistant discovery configs of a sensor seen for the first time.
    fn discover(&mut self, sensor: &str) {
        let Some(d) = &self.discovery else {
            return;
        };
        if !self.discovered.insert(sensor.to_string()) {
            return;
        }
        for (topic, payload) in d.configs(sensor) {
            self.configs.insert(topic.clone(), payload.clone());
            self.states.insert(topic, payload);
        }
    }

    /// Hands queued messages to rumqttc while connected and it has room.
    fn flush(&mut self) {
        if !self.connected {
            return;
        }
        while let Some(msg) = self.alerts.front() {
            let Some(expiry) = remaining(self.expiry, msg.queued, Instant::now()) else {
                self.alerts.pop_front();
                metrics::counter!(names::ALERTS_EXPIRED).increment(1);
                continue;
            };
            if self
                .client
                .try_publish_json(&msg.topic, QoS::AtLeastOnce, false, msg.payload.clone(), expiry)
                .is_err()
            {
                return; // rumqttc's request buffer is full: retry after the next poll.
            }
            if let Some(msg) = self.alerts.pop_front() {
                self.unacked.handed(Tracked::Alert(msg));
            }
        }
        metrics::gauge!(names::ALERTS_QUEUED).set(self.alerts.len() as f64);
        while let Some((topic, payload)) = self.states.pop_first() {
            if self
                .client
                .try_publish_json(&topic, QoS::AtLeastOnce, true, payload.clone(), None)
                .is_err()
            {
                self.states.insert(topic, payload);
                return;
            }
            self.unacked.handed(Tracked::State { topic, payload });
        }
    }

    fn on_poll(&mut self, event: Result<NetEvent, NetError>) {
        match event {
            Ok(NetEvent::ConnAck { session_present }) => self.on_connack(session_present),
            Ok(NetEvent::Publish { topic, payload }) => self.on_message(&topic, &payload),
            Ok(NetEvent::PublishSent { pkid }) => self.unacked.written(pkid),
            Ok(NetEvent::PubAck { pkid }) => {
                // The birth message is acknowledged on every healthy connection.
                self.backoff.delivered();
                self.unacked.acked(pkid);
            }
            Ok(_) => {}
            Err(error) => {
                let delay = self.backoff.failed(std::time::Instant::now());
                warn!(%error, retry_in_ms = delay.as_millis() as u64, "Alert connection failed.");
                metrics::counter!(names::RECONNECTS).increment(1);
                self.connected = false;
                self.retry_at = Some(Instant::now() + delay);
            }
        }
    }

    fn on_connack(&mut self, session_present: bool) {
        if !session_present {
            self.requeue_unacked();
        }
        info!(
            session_present,
            queued = self.alerts.len(),
            "Alert connection up."
        );
        self.connected = true;
        self.backoff.connected(std::time::Instant::now());
        match self
            .client
            .try_publish(&self.status_topic, QoS::AtLeastOnce, true, "online")
        {
            Ok(()) => self.unacked.handed(Tracked::Status),
            Err(error) => warn!(%error, "Cannot queue birth message."),
        }
        if let Some(d) = &self.discovery {
            // Home Assistant asks for the configs again when it starts (its birth message).
            if let Err(error) = self.client.try_subscribe(&d.birth_topic(), QoS::AtLeastOnce) {
                warn!(%error, "Cannot subscribe to Home Assistant's status.");
            }
        }
    }

    /// The only subscription of this connection is Home Assistant's birth topic: on
    /// `online`, every discovery config is sent again.
    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        if !self
            .discovery
            .as_ref()
            .is_some_and(|d| d.is_birth(topic, payload))
        {
            return;
        }
        info!(
            configs = self.configs.len(),
            "Home Assistant started; discovery configs sent again."
        );
        for (topic, payload) in &self.configs {
            self.states.insert(topic.clone(), payload.clone());
        }
    }

    /// Without a session rumqttc has discarded what was not acknowledged: put it back
    /// in front of the queues, in its original order. A newer state for the same
    /// sensor wins over a resent one.
    fn requeue_unacked(&mut self) {
        let lost = self.unacked.take_all();
        for t in lost.into_iter().rev() {
            match t {
                Tracked::Alert(msg) => self.alerts.push_front(msg),
                Tracked::State { topic, payload } => {
                    self.states.entry(topic).or_insert(payload);
                }
                Tracked::Status => {}
            }
        }
        for (topic, payload) in &self.configs {
            self.states
                .entry(topic.clone())
                .or_insert_with(|| payload.clone());
        }
        if self.alerts.len() > self.capacity {
            let excess = self.alerts.len() - self.capacity;
            self.alerts.drain(..excess);
            metrics::counter!(names::ALERTS_DROPPED).increment(excess as u64);
        }
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
mod tests {
    use super::*;

    #[test]
    fn sensor_state_serialises_with_snake_case_state() {
        let s = SensorState {
            sensor: "p/1".into(),
            state: crate::detector::SensorState::WarmingUp,
            last_clear: None,
            model_version: 0,
            threshold_ready: false,
            window_ready: false,
            stale: false,
            ts: 1.5,
        };
        let v: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&s).expect("json")).expect("parse");
        assert_eq!(v["state"], "warming_up");
        assert_eq!(v["sensor"], "p/1");
        assert_eq!(v["threshold_ready"], false);
        assert!(
            v.get("last_clear").is_none(),
            "absent before the first clear: {v}"
        );
        let accepted = SensorState {
            state: crate::detector::SensorState::Accepted,
            last_clear: Some(crate::alert::ClearReason::Accepted),
            ..s
        };
        let v = serde_json::to_value(&accepted).expect("json");
        assert_eq!(
            (v["state"].as_str(), v["last_clear"].as_str()),
            (Some("accepted"), Some("accepted"))
        );
    }

    #[test]
    fn remaining_expiry_counts_down_from_the_time_queued_and_ends() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let cases = [
            ("no expiry", None, secs(1000), Some(None)),
            ("fresh", Some(secs(60)), secs(0), Some(Some(60))),
            (
                "part gone",
                Some(secs(60)),
                Duration::from_millis(20_500),
                Some(Some(40)),
            ),
            (
                "a fraction left",
                Some(secs(60)),
                Duration::from_millis(59_999),
                Some(Some(1)),
            ),
            ("exactly expired", Some(secs(60)), secs(60), None),
            ("long expired", Some(secs(60)), secs(3600), None),
        ];
        for (name, expiry, age, want) in cases {
            assert_eq!(remaining(expiry, t0, t0 + age), want, "{name}");
        }
    }
}
