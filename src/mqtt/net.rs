//! One MQTT connection, MQTT 3.1.1 or MQTT 5, behind one interface.
//!
//! rumqttc has a separate client, event loop and packet types per protocol version.
//! The subscriber and the publisher only need a few requests ([`Client`]) and a few
//! events ([`NetEvent`]), so [`connect`] picks the version from `mqtt.protocol` and
//! everything above it (routing, parsing, backoff, the alert queue) has one code path.
//! The event mapping ([`map_v3`], [`map_v5`]) is pure and unit-tested.

use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5::Packet as Packet5;
use rumqttc::{Outgoing, Packet, QoS};

use super::conn::{self, ConnError, Will};
use crate::config::MqttConfig;

/// Content type of every JSON payload the daemon publishes under MQTT 5.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// What the daemon reacts to, whatever the protocol version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// The broker accepted the connection.
    ConnAck {
        /// The broker resumed our session (subscriptions and in-flight messages kept).
        session_present: bool,
    },
    /// A message on a subscribed topic.
    Publish {
        /// The topic it was published on.
        topic: String,
        /// Its payload, unparsed; rumqttc's buffer, not a copy (an oversize message is
        /// held once, and a normal one costs no allocation here).
        payload: bytes::Bytes,
    },
    /// The broker answered a subscribe.
    SubAck {
        /// Packet id of the subscribe.
        pkid: u16,
        /// How many filters of it the broker refused.
        rejected: usize,
    },
    /// A publish was written to the socket with this packet id.
    PublishSent {
        /// Its packet id (0 for QoS 0).
        pkid: u16,
    },
    /// The broker acknowledged a QoS 1 publish.
    PubAck {
        /// The acknowledged packet id.
        pkid: u16,
    },
    /// Our DISCONNECT was written to the socket.
    DisconnectSent,
    /// Anything else (pings, other acks); nothing to do.
    Other,
}

/// A connection failure reported by `poll()`; transient, the caller backs off.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// From the MQTT 3.1.1 event loop.
    #[error(transparent)]
    V3(#[from] rumqttc::ConnectionError),
    /// From the MQTT 5 event loop.
    #[error(transparent)]
    V5(#[from] v5::ConnectionError),
}

/// A request could not be queued: rumqttc's request channel is full or closed. Boxed:
/// rumqttc's error carries the whole request, payload included.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// From the MQTT 3.1.1 client.
    #[error(transparent)]
    V3(Box<rumqttc::ClientError>),
    /// From the MQTT 5 client.
    #[error(transparent)]
    V5(Box<v5::ClientError>),
}

impl From<rumqttc::ClientError> for RequestError {
    fn from(error: rumqttc::ClientError) -> Self {
        Self::V3(Box::new(error))
    }
}

impl From<v5::ClientError> for RequestError {
    fn from(error: v5::ClientError) -> Self {
        Self::V5(Box::new(error))
    }
}

/// The request half of a connection. Requests are queued without waiting; they go
/// out when the [`EventLoop`] is polled.
#[derive(Clone, Debug)]
pub enum Client {
    /// MQTT 3.1.1.
    V3(rumqttc::AsyncClient),
    /// MQTT 5.
    V5(v5::AsyncClient),
}

impl Client {
    /// Queues a subscribe to `filter`.
    ///
    /// # Errors
    ///
    /// [`RequestError`] when the request cannot be queued.
    pub fn try_subscribe(&self, filter: &str, qos: QoS) -> Result<(), RequestError> {
        match self {
            Self::V3(c) => Ok(c.try_subscribe(filter, qos)?),
            Self::V5(c) => Ok(c.try_subscribe(filter, qos_v5(qos))?),
        }
    }

    /// Queues a publish.
    ///
    /// # Errors
    ///
    /// [`RequestError`] when the request cannot be queued.
    pub fn try_publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), RequestError> {
        let payload = payload.into();
        match self {
            Self::V3(c) => Ok(c.try_publish(topic, qos, retain, payload)?),
            Self::V5(c) => Ok(c.try_publish(topic, qos_v5(qos), retain, payload)?),
        }
    }

    /// Queues a publish of a JSON payload: under MQTT 5 with content type
    /// `application/json`, the UTF-8 payload format indicator and, with `expiry_secs`,
    /// a message expiry interval; under MQTT 3.1.1 (no properties) as [`Self::try_publish`].
    ///
    /// # Errors
    ///
    /// [`RequestError`] when the request cannot be queued.
    pub fn try_publish_json(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
        expiry_secs: Option<u32>,
    ) -> Result<(), RequestError> {
        let payload = payload.into();
        match self {
            Self::V3(c) => Ok(c.try_publish(topic, qos, retain, payload)?),
            Self::V5(c) => {
                let properties = v5::mqttbytes::v5::PublishProperties {
                    payload_format_indicator: Some(1),
                    message_expiry_interval: expiry_secs,
                    content_type: Some(JSON_CONTENT_TYPE.to_string()),
                    ..Default::default()
                };
                Ok(c.try_publish_with_properties(topic, qos_v5(qos), retain, payload, properties)?)
            }
        }
    }

    /// Queues a DISCONNECT (the broker then keeps a persistent session and drops the will).
    ///
    /// # Errors
    ///
    /// [`RequestError`] when the request cannot be queued.
    pub fn try_disconnect(&self) -> Result<(), RequestError> {
        match self {
            Self::V3(c) => Ok(c.try_disconnect()?),
            Self::V5(c) => Ok(c.try_disconnect()?),
        }
    }
}

/// The network half of a connection; polling it drives the connection (and
/// reconnects after an error).
pub enum EventLoop {
    /// MQTT 3.1.1.
    V3(Box<rumqttc::EventLoop>),
    /// MQTT 5.
    V5(Box<v5::EventLoop>),
}

impl EventLoop {
    /// Waits for the next event. Cancel-safe like rumqttc's `poll()`.
    ///
    /// # Errors
    ///
    /// [`NetError`] when the connection failed; the next call reconnects.
    pub async fn poll(&mut self) -> Result<NetEvent, NetError> {
        match self {
            Self::V3(e) => Ok(map_v3(e.poll().await?)),
            Self::V5(e) => Ok(map_v5(e.poll().await?)),
        }
    }
}

/// Builds the client and event loop for `mqtt.protocol`; connects lazily on the first
/// poll. `capacity` bounds the requests buffered between the two halves.
///
/// # Errors
///
/// [`ConnError`] for unreadable credential/TLS files or an unknown protocol version.
pub fn connect(
    cfg: &MqttConfig,
    client_id: &str,
    will: Option<&Will>,
    capacity: usize,
) -> Result<(Client, EventLoop), ConnError> {
    match cfg.protocol {
        3 => {
            let (client, eventloop) =
                rumqttc::AsyncClient::new(conn::options(cfg, client_id, will)?, capacity);
            Ok((Client::V3(client), EventLoop::V3(Box::new(eventloop))))
        }
        5 => {
            let (client, eventloop) = v5::AsyncClient::new(conn::options_v5(cfg, client_id, will)?, capacity);
            Ok((Client::V5(client), EventLoop::V5(Box::new(eventloop))))
        }
        other => Err(ConnError::Protocol(other)),
    }
}

fn qos_v5(qos: QoS) -> v5::mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// The events both versions share, from the outgoing side.
fn map_outgoing(out: Outgoing) -> NetEvent {
    match out {
        Outgoing::Publish(pkid) => NetEvent::PublishSent { pkid },
        Outgoing::Disconnect => NetEvent::DisconnectSent,
        _ => NetEvent::Other,
    }
}

/// Maps an MQTT 3.1.1 event.
pub fn map_v3(event: rumqttc::Event) -> NetEvent {
    match event {
        rumqttc::Event::Incoming(packet) => match packet {
            Packet::ConnAck(ack) => NetEvent::ConnAck {
                session_present: ack.session_present,
            },
            Packet::Publish(p) => NetEvent::Publish {
                topic: p.topic,
                payload: p.payload,
            },
            Packet::SubAck(ack) => NetEvent::SubAck {
                pkid: ack.pkid,
                rejected: (ack.return_codes.iter())
                    .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                    .count(),
            },
            Packet::PubAck(ack) => NetEvent::PubAck { pkid: ack.pkid },
            _ => NetEvent::Other,
        },
        rumqttc::Event::Outgoing(out) => map_outgoing(out),
    }
}

/// Maps an MQTT 5 event. Topics arrive as bytes; brokers enforce UTF-8 topics
/// (MQTT 5 §1.5.4), so a lossy conversion only matters for a broken broker, and then
/// the mangled topic is counted as unroutable or its sensor id shows the damage.
pub fn map_v5(event: v5::Event) -> NetEvent {
    use v5::mqttbytes::v5::SubscribeReasonCode;
    match event {
        v5::Event::Incoming(packet) => match packet {
            Packet5::ConnAck(ack) => NetEvent::ConnAck {
                session_present: ack.session_present,
            },
            Packet5::Publish(p) => NetEvent::Publish {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                payload: p.payload,
            },
            Packet5::SubAck(ack) => NetEvent::SubAck {
                pkid: ack.pkid,
                rejected: (ack.return_codes.iter())
                    .filter(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                    .count(),
            },
            Packet5::PubAck(ack) => NetEvent::PubAck { pkid: ack.pkid },
            _ => NetEvent::Other,
        },
        v5::Event::Outgoing(out) => map_outgoing(out),
    }
}

#[cfg(test)]
mod tests;
