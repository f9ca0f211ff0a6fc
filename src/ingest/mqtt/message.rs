//! One Publish through ingest: the route its topic matches, the payload parsed (each
//! rejected part counted and logged escaped), the channel named by the topic, the
//! sensor admitted with its channel set, partial updates assembled, and each reading
//! forwarded to its worker without waiting. Also the periodic close of rounds left
//! waiting by silent sensors. All of it is [`Intake`]'s; the task and its connection
//! are in [`super`].

use std::borrow::Cow;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::warn;

use crate::escape::Escaped;
use crate::ingest::assemble::{Assembled, Held};
use crate::ingest::payload::{self, PayloadFormat};
use crate::ingest::route::Route;
use crate::ingest::sensors::{Admission, Note, Refused, first_channel_set};
use crate::ingest::shards::Shards;
use crate::metrics::{labels, names};
use crate::ratelimit::LogLimiter;
use crate::reading::{ChannelSet, Reading, SensorId};

/// What handles each message: the routes, sensor admission with the partial updates
/// it holds, and the detector workers' queues. Owned by [`super::Ingest`].
pub(super) struct Intake {
    pub(super) routes: Vec<Route>,
    /// The detector workers' queues.
    pub(super) shards: Shards,
    pub(super) limiter: LogLimiter,
    pub(super) max_channels: usize,
    /// Sensors let through (the cap), their interned channel sets and the partial
    /// updates held until they complete a reading.
    pub(super) admission: Admission,
    /// What the detector says about sensors: dropped as idle (admission forgets them,
    /// so they do not hold places under the sensor cap) or trained (their channel set
    /// is fixed).
    pub(super) notes_rx: mpsc::UnboundedReceiver<Note>,
}

impl Intake {
    pub(super) fn on_publish(&mut self, topic: &str, payload: &[u8]) {
        // The records borrow their route's params (channel names, no copies) while
        // `self` counts, admits and forwards them: the routes are lent out meanwhile.
        let routes = std::mem::take(&mut self.routes);
        if let Some(route) = routes.iter().find(|r| r.matches(topic)) {
            self.on_routed(route, topic, payload);
        } else {
            self.bad_input("no_route", topic, "topic matches no source");
        }
        self.routes = routes;
    }

    /// One message on a topic of `route`.
    fn on_routed(&mut self, route: &Route, topic: &str, payload: &[u8]) {
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
            Err(error) => (Default::default(), vec![error]),
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
            let names = record.channels.iter().map(|(name, _)| name.as_ref());
            let configured = route.params.channels.as_deref();
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
    pub(super) fn on_expire_tick(&mut self, now: f64) {
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
}

/// Names every record's channel after the topic (one channel per topic).
fn rename_channels<'a>(records: &mut [payload::Parsed<'a>], name: &'a str) {
    for (channel, _) in records.iter_mut().flat_map(|r| r.channels.iter_mut()) {
        *channel = Cow::Borrowed(name);
    }
}
