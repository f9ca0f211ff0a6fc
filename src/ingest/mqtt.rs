//! The subscriber: the only poller of the telemetry connection's MQTT event loop.
//!
//! [`Ingest::run`] polls the connection ([`crate::mqtt::net`]: MQTT 3.1.1 or 5), (re)subscribes
//! every `[[sources]]` filter after a ConnAck without a session, routes each Publish to
//! its source, takes the sensor id from the topic or the payload, parses with
//! [`super::payload::parse`], admits the sensor (when this `[cluster]` instance owns
//! it) and its channel set ([`super::sensors`]), completes partial updates
//! ([`super::assemble`]) and hands each [`crate::reading::Reading`] to its sensor's detector worker with
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
//!
//! Here: the task, its loop and the connection; `message` holds `Intake`, which
//! handles each Publish (route,
//! parse, admit, assemble, forward, and the counting and logging of what is dropped);
//! `setup` builds the routes and admission from the config.

mod message;
mod setup;

use std::time::Instant;

use rumqttc::QoS;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::sensors::{Note, Restored};
use super::shards::Shards;
use crate::config::Config;
use crate::metrics::{Health, names};
use crate::mqtt::backoff::Backoff;
use crate::mqtt::net::{self, Client, EventLoop, NetError, NetEvent};
use crate::ratelimit::LogLimiter;

use message::Intake;
pub use setup::IngestError;
use setup::admission;
pub(super) use setup::build_routes;

/// How often rounds of partial updates left waiting by a silent sensor are closed: a
/// round is closed at most this long after its `hold_secs` ran out, and a sweep of
/// every admitted sensor once a second costs next to nothing.
const EXPIRE_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Requests rumqttc may buffer between the client handle and the event loop; the
/// subscriber only sends a handful of subscribes and one disconnect.
const REQUEST_CAPACITY: usize = 64;

/// The subscriber task's state; see the module docs. The connection's part is here;
/// what handles each message is `Intake`, a field of its own so that it can run
/// while a poll of the event loop is still pending (see [`Ingest::run`]).
pub struct Ingest {
    client: Client,
    eventloop: EventLoop,
    qos: QoS,
    backoff: Backoff,
    /// Shared with `/healthz`: connected between a ConnAck and the next error.
    health: Health,
    intake: Intake,
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
            qos,
            backoff: Backoff::new(config.mqtt.reconnect_min, config.mqtt.reconnect_max),
            health,
            intake: Intake {
                routes,
                shards,
                limiter: LogLimiter::default(),
                max_channels: config.limits.max_channels,
                admission: admission(config, known),
                notes_rx,
            },
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
            // One poll across any number of ticks: rumqttc's `poll` is not cancel
            // safe. Dropped while it connects, the next poll connects again under the
            // same client id, the broker closes the first connection, and the second
            // finds that session "present" and subscribes to nothing; dropped while it
            // writes, a packet may be cut. So only cancellation ends a pending poll,
            // and the tick runs beside it on `intake`, a field the poll does not borrow.
            let event = {
                let poll = self.eventloop.poll();
                tokio::pin!(poll);
                loop {
                    tokio::select! {
                        // Cancellation first: a busy broker must not delay shutdown.
                        biased;
                        () = shutdown.cancelled() => break None,
                        event = &mut poll => break Some(event),
                        _ = expire_tick.tick() => self.intake.on_expire_tick(crate::reading::unix_now()),
                    }
                }
            };
            match event {
                None => break,
                Some(Ok(event)) => self.on_event(event),
                Some(Err(error)) => {
                    if !self.on_error(error, &shutdown).await {
                        break;
                    }
                }
            }
        }
        self.disconnect().await;
    }

    fn on_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::ConnAck { session_present } => self.on_connack(session_present),
            NetEvent::Publish { topic, payload } => {
                self.backoff.delivered();
                self.intake.on_publish(&topic, &payload);
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
        for route in &self.intake.routes {
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
