//! The subscriber: the only poller of the telemetry connection's MQTT event loop.
//!
//! [`Ingest::run`] polls the connection ([`crate::mqtt::net`]: MQTT 3.1.1 or 5), (re)subscribes
//! every `[[sources]]` filter after a ConnAck without a session, routes each Publish to
//! its source, takes the sensor id from the topic or the payload, parses with
//! [`super::payload::parse`], admits the sensor (when this `[cluster]` instance owns
//! it) and its channel set ([`super::sensors`]), completes partial updates
//! ([`super::assemble`]) and hands each [`Reading`] to its sensor's detector worker with
//! `try_send` ([`Shards`]): `poll()` is never blocked, and a full queue is a counted
//! drop.
//!
//! QoS 1 acknowledgements: rumqttc acknowledges a QoS 1 publish itself (no
//! `manual_acks`) as the event loop reads it, and writes the PUBACKs out with the next
//! flush of that same `poll()`. So an acknowledgement is as prompt as the loop is
//! polled, and nothing here ever awaits the detector: the broker's in-flight window
//! (Mosquitto `max_inflight_messages`, 20 by default) drains at the loop's pace, not
//! the scoring's. The price is that a reading dropped as `queue_full` has been
//! acknowledged and is lost for good; the alternative (waiting for room before
//! polling on) would stall keep-alives and let the broker queue, then drop, everything
//! behind it for every sensor. After a connection
//! error it backs off exponentially in a `select!` with the cancellation token. It does
//! not window, score or publish.

use std::time::Instant;

use rumqttc::QoS;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::assemble::{Assembled, Held};
use super::payload::{self, Field, FieldError, PayloadFormat, PayloadParams};
use super::route::{Route, SensorFrom};
use super::sensors::{Admission, Note, Refused, Restored, first_channel_set};
use super::shards::Shards;
use crate::config::Config;
use crate::escape::Escaped;
use crate::metrics::{Health, labels, names};
use crate::mqtt::backoff::Backoff;
use crate::mqtt::conn::ConnError;
use crate::mqtt::net::{self, Client, EventLoop, NetError, NetEvent};
use crate::ratelimit::LogLimiter;
use crate::reading::{ChannelSet, Reading, SensorId};

/// How often rounds of partial updates left waiting by a silent sensor are closed: a
/// round is closed at most this long after its `hold_secs` ran out, and a sweep of
/// every admitted sensor once a second costs next to nothing.
const EXPIRE_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Requests rumqttc may buffer between the client handle and the event loop; the
/// subscriber only sends a handful of subscribes and one disconnect.
const REQUEST_CAPACITY: usize = 64;

/// Why the subscriber could not be set up. Fatal at startup.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Broker settings.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// A source has an unknown payload format.
    #[error("`sources[{index}].format` must be json, number or senml, got {value:?}")]
    Format {
        /// Position of the source.
        index: usize,
        /// The value given.
        value: String,
    },
    /// A source's field is not a usable key or JSON pointer.
    #[error("`sources[{index}].{key}` {source}")]
    Field {
        /// Position of the source.
        index: usize,
        /// The key, e.g. `channels`.
        key: &'static str,
        /// What is wrong.
        source: FieldError,
    },
}

/// The subscriber task's state; see the module docs.
pub struct Ingest {
    client: Client,
    eventloop: EventLoop,
    routes: Vec<Route>,
    qos: QoS,
    /// The detector workers' queues.
    shards: Shards,
    backoff: Backoff,
    limiter: LogLimiter,
    max_channels: usize,
    /// Sensors let through (the cap), their interned channel sets and the partial
    /// updates held until they complete a reading.
    admission: Admission,
    /// Shared with `/healthz`: connected between a ConnAck and the next error.
    health: Health,
    /// What the detector says about sensors: dropped as idle (admission forgets them,
    /// so they do not hold places under the sensor cap) or trained (their channel set
    /// is fixed).
    notes_rx: mpsc::UnboundedReceiver<Note>,
}

impl Ingest {
    /// Builds the subscriber from the config; connects lazily on the first poll.
    /// `known` are the sensors restored from the snapshot: they keep their place under
    /// the sensor cap and their channel sets (still open when they had no model).
    ///
    /// # Errors
    ///
    /// [`IngestError`] for unreadable credential/TLS files or a bad source format.
    pub fn new(
        config: &Config,
        shards: Shards,
        health: Health,
        known: Vec<Restored>,
        notes_rx: mpsc::UnboundedReceiver<Note>,
    ) -> Result<Self, IngestError> {
        let (client, eventloop) = net::connect(&config.mqtt, &config.mqtt.client_id, None, REQUEST_CAPACITY)?;
        let routes = build_routes(config)?;
        let qos = if config.mqtt.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        Ok(Self {
            client,
            eventloop,
            routes,
            qos,
            shards,
            backoff: Backoff::new(config.mqtt.reconnect_min, config.mqtt.reconnect_max),
            limiter: LogLimiter::default(),
            max_channels: config.limits.max_channels,
            admission: admission(config, known),
            health,
            notes_rx,
        })
    }

    /// Polls until `shutdown` is cancelled, then disconnects. Dropping `self` at the
    /// end closes the readings queues, which tells the detector workers to drain and stop.
    pub async fn run(mut self, shutdown: CancellationToken) {
        // The held partial updates live here, in admission, which this task owns: the
        // sweep for sensors that fell silent mid-round runs on this task's own tick
        // rather than on a detector worker's, which would need them behind a lock.
        let mut expire_tick = tokio::time::interval(EXPIRE_TICK);
        expire_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Cancellation first: a busy broker must not delay shutdown.
                biased;
                () = shutdown.cancelled() => break,
                _ = expire_tick.tick() => self.on_expire_tick(crate::reading::unix_now()),
                event = self.eventloop.poll() => match event {
                    Ok(event) => self.on_event(event),
                    Err(error) => {
                        if !self.on_error(error, &shutdown).await {
                            break;
                        }
                    }
                },
            }
        }
        self.disconnect().await;
    }

    fn on_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::ConnAck { session_present } => self.on_connack(session_present),
            NetEvent::Publish { topic, payload } => {
                self.backoff.delivered();
                self.on_publish(&topic, &payload);
            }
            NetEvent::SubAck { pkid, rejected: 0 } => debug!(pkid, "Subscribed."),
            // E.g. `$share/...` on a broker without shared subscriptions.
            NetEvent::SubAck { pkid, rejected } => warn!(pkid, rejected, "Broker refused subscriptions."),
            _ => {}
        }
    }

    fn on_connack(&mut self, session_present: bool) {
        info!(session_present, "Telemetry connection up.");
        self.backoff.connected(Instant::now());
        self.health.set_broker_connected(true);
        // With a kept session the broker still has our subscriptions (and queued
        // telemetry); subscribing again would be harmless but is not needed.
        if session_present {
            return;
        }
        for route in &self.routes {
            if let Err(error) = self.client.try_subscribe(&route.filter, self.qos) {
                warn!(topic = %route.filter, %error, "Cannot queue subscription.");
            }
        }
    }

    /// Logs the error, marks the broker down and waits out the backoff. Returns false
    /// when cancelled during the wait.
    async fn on_error(&mut self, error: NetError, shutdown: &CancellationToken) -> bool {
        let delay = self.backoff.failed(Instant::now());
        warn!(%error, retry_in_ms = delay.as_millis() as u64, "Telemetry connection failed.");
        self.health.set_broker_connected(false);
        metrics::counter!(names::RECONNECTS).increment(1);
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    fn on_publish(&mut self, topic: &str, payload: &[u8]) {
        let Some(route_index) = self.routes.iter().position(|r| r.matches(topic)) else {
            self.bad_input("no_route", topic, "topic matches no source");
            return;
        };
        let route = &self.routes[route_index];
        let topic_sensor = route.sensor_from_topic(topic);
        // Another `[cluster]` instance's sensor, named by the topic of a one-reading
        // payload: dropped before parsing, so its payload costs nothing more here and
        // a malformed one is counted once in the cluster, by its owner. SenML packs may
        // hold several readings, so they are counted (per reading) after parsing.
        let one_reading = route.params.format != PayloadFormat::Senml;
        if let Some(sensor) = topic_sensor.filter(|_| one_reading) {
            if self.admission.is_foreign(sensor) {
                self.refused(Refused::OtherInstance, sensor);
                return;
            }
        }
        let now = crate::reading::unix_now();
        let hold = route.hold;
        let channel = route.channel_from_topic(topic);
        let (mut records, rejected) = match payload::read(payload, &route.params, now) {
            Ok(read) => (read.records, read.rejected),
            Err(error) => (Vec::new(), vec![error]),
        };
        // A whole payload that was refused, or the batch elements that were: each
        // counted and logged on its own, and a batch's good elements still read below.
        for error in &rejected {
            if let Some(key) = error.unselected() {
                self.unselected(topic, key);
            }
            self.bad_input(error.kind(), topic, &error.to_string());
        }
        if records.is_empty() {
            return;
        }
        match channel {
            Some(Some(name)) => rename_channels(&mut records, name),
            Some(None) => {
                self.bad_input(
                    "missing_channel",
                    topic,
                    "no channel name at the topic's channel_level",
                );
                return;
            }
            None => {}
        }
        while let Ok(note) = self.notes_rx.try_recv() {
            self.admission.note(note);
        }
        for record in &records {
            if let Some(key) = &record.unselected {
                self.unselected(topic, key);
            }
            let Some(sensor) = record.sensor.as_deref().or(topic_sensor) else {
                self.bad_input("missing_sensor", topic, "no sensor id in topic or payload");
                continue;
            };
            if record.channels.len() > self.max_channels {
                self.bad_input(
                    "too_many_channels",
                    topic,
                    "more channels than limits.max_channels",
                );
                continue;
            }
            let names = record.channels.iter().map(|(name, _)| name.as_str());
            let configured = self.routes[route_index].params.channels.as_deref();
            let new_set = || first_channel_set(configured, &records, sensor, topic_sensor);
            let assemble = |id: &SensorId, set: &ChannelSet, held: &mut Held| {
                held.update(id, set, record.ts, &record.channels, (hold, now))
            };
            let assembled = match self.admission.admit(sensor, names, new_set, assemble) {
                Ok(assembled) => assembled,
                Err(refused) => {
                    self.refused(refused, sensor);
                    continue;
                }
            };
            self.assembled(sensor, assembled);
        }
    }

    /// Counts an incomplete reading and forwards the readings partial updates made.
    fn assembled(&mut self, sensor: &str, assembled: Assembled) {
        if assembled.incomplete {
            metrics::counter!(names::READINGS_INCOMPLETE).increment(1);
            if let Some(suppressed) = self.limiter.check("incomplete", Instant::now()) {
                warn!(sensor = %Escaped(sensor), suppressed, "Partial updates left a reading incomplete (a channel's last value older than hold_secs, or none); dropped.");
            }
        }
        for reading in assembled.readings() {
            self.forward(reading);
        }
    }

    /// Closes the rounds of sensors that fell silent with partial updates waiting.
    fn on_expire_tick(&mut self, now: f64) {
        for (sensor, assembled) in self.admission.expire(now) {
            self.assembled(sensor.as_str(), assembled);
        }
    }

    /// A nested object or array that no configuration selects: counted and logged,
    /// never read as channels.
    fn unselected(&mut self, topic: &str, key: &str) {
        metrics::counter!(names::PAYLOAD_UNSELECTED).increment(1);
        if let Some(suppressed) = self.limiter.check("unselected", Instant::now()) {
            // The key and the topic come from the network: logged escaped.
            warn!(topic = %Escaped(topic), key = %Escaped(key), suppressed, "Nested payload field selected by no configuration; ignored (name its fields in `channels` as JSON pointers).");
        }
    }

    /// Hands one reading over without waiting: the event loop must keep polling
    /// (keep-alives, acks) even when the detector lags, so a full channel is a drop.
    fn forward(&mut self, reading: Reading) {
        match self.shards.try_send(reading) {
            Ok(()) => metrics::counter!(names::READINGS).increment(1),
            Err(mpsc::error::TrySendError::Full(t)) => {
                metrics::counter!(names::READINGS_DROPPED, labels::REASON => "queue_full").increment(1);
                if let Some(suppressed) = self.limiter.check("channel_full", Instant::now()) {
                    warn!(sensor = %t.sensor.escaped(), suppressed, "Detector lagging; reading dropped.");
                }
            }
            // The detector has stopped: only during shutdown.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// A reading refused before the queue (another instance's sensor, sensor cap,
    /// changed channel set).
    fn refused(&mut self, refused: Refused, sensor: &str) {
        let reason = refused.reason();
        metrics::counter!(names::READINGS_DROPPED, labels::REASON => reason).increment(1);
        // Another instance's readings are the normal share of a cluster: counted only.
        if refused == Refused::OtherInstance {
            return;
        }
        if let Some(suppressed) = self.limiter.check(reason, Instant::now()) {
            warn!(reason, sensor = %Escaped(sensor), suppressed, "Dropped reading.");
        }
    }

    fn bad_input(&mut self, kind: &'static str, topic: &str, error: &str) {
        metrics::counter!(names::PAYLOAD_ERRORS, labels::KIND => kind).increment(1);
        if let Some(suppressed) = self.limiter.check(kind, Instant::now()) {
            // The topic and the error (which may quote payload text) come from the
            // network: logged escaped and bounded.
            warn!(kind, topic = %Escaped(topic), error = %Escaped(error), suppressed, "Dropped malformed message.");
        }
    }

    /// Sends DISCONNECT and polls until it is written (bounded), so the broker keeps
    /// our session and queues telemetry for the next start instead of firing a will.
    async fn disconnect(&mut self) {
        if self.client.try_disconnect().is_err() {
            return;
        }
        let flush = async {
            loop {
                match self.eventloop.poll().await {
                    Ok(NetEvent::DisconnectSent) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        if tokio::time::timeout(std::time::Duration::from_secs(2), flush)
            .await
            .is_err()
        {
            warn!("Telemetry disconnect not confirmed within 2 s.");
        }
        self.health.set_broker_connected(false);
        info!("Telemetry connection closed.");
    }
}

/// Sensor admission under `limits.max_sensors` and `limits.max_memory_mb` (charged
/// with the detector's own estimate, so both refuse the same sensors).
fn admission(config: &Config, known: Vec<Restored>) -> Admission {
    let admission = Admission::new(config.cluster, config.limits.max_sensors, known)
        .with_max_channels(config.limits.max_channels);
    if config.limits.max_memory_mb == 0 {
        return admission;
    }
    let detector = config.detector.clone();
    admission.with_budget(
        config.limits.max_memory_mb << 20,
        Box::new(move |channels| crate::detector::memory::pipeline_bytes(&detector, channels)),
    )
}

/// Names every record's channel after the topic (one channel per topic).
fn rename_channels(records: &mut [payload::Parsed], name: &str) {
    for (channel, _) in records.iter_mut().flat_map(|r| r.channels.iter_mut()) {
        channel.clear();
        channel.push_str(name);
    }
}

/// Builds one [`Route`] per `[[sources]]` entry.
pub(super) fn build_routes(config: &Config) -> Result<Vec<Route>, IngestError> {
    config
        .sources
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let format = match s.format.as_str() {
                "json" => PayloadFormat::Json,
                "number" => PayloadFormat::Number,
                "senml" => PayloadFormat::Senml,
                other => {
                    return Err(IngestError::Format {
                        index,
                        value: other.to_string(),
                    });
                }
            };
            let field = |key: &'static str, text: &str| {
                Field::parse(text).map_err(|source| IngestError::Field { index, key, source })
            };
            let channels = match &s.channels {
                Some(list) => Some(
                    list.iter()
                        .map(|c| field("channels", c))
                        .collect::<Result<_, _>>()?,
                ),
                None => None,
            };
            let params = PayloadParams {
                format,
                timestamp_field: field("timestamp_field", &s.timestamp_field)?,
                timestamp_unit: s.timestamp_unit,
                require_timestamp: false,
                channels,
                sensor_field: s
                    .sensor_field
                    .as_deref()
                    .map(|f| field("sensor_field", f))
                    .transpose()?,
                number_channel: s.number_channel.clone(),
                max_payload_bytes: config.limits.max_payload_bytes,
            };
            let sensor = match (&s.sensor_field, s.sensor_level) {
                (Some(_), _) => SensorFrom::Payload,
                (None, Some(level)) => SensorFrom::Level(level),
                (None, None) => SensorFrom::first_wildcard(&s.topic),
            };
            let mut route = Route::new(&s.topic, sensor, params);
            route.channel_level = s.channel_level;
            route.hold = s.hold_secs;
            Ok(route)
        })
        .collect()
}
