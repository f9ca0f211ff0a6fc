//! Unit tests of the protocol-neutral event mapping.

use rumqttc::v5::mqttbytes::v5 as p5;

use super::*;

fn build_publish_event(topic: &str, payload: &[u8]) -> NetEvent {
    NetEvent::Publish {
        topic: topic.into(),
        payload: bytes::Bytes::copy_from_slice(payload),
    }
}

#[test]
fn v3_events_map_to_the_neutral_events() {
    let cases: Vec<(&str, rumqttc::Event, NetEvent)> = vec![
        (
            "connack with session",
            rumqttc::Event::Incoming(Packet::ConnAck(rumqttc::ConnAck::new(
                rumqttc::ConnectReturnCode::Success,
                true,
            ))),
            NetEvent::ConnAck {
                session_present: true,
            },
        ),
        (
            "publish",
            rumqttc::Event::Incoming(Packet::Publish(rumqttc::Publish::new(
                "a/b",
                QoS::AtLeastOnce,
                b"{}".to_vec(),
            ))),
            build_publish_event("a/b", b"{}"),
        ),
        (
            "suback with a refused filter",
            rumqttc::Event::Incoming(Packet::SubAck(rumqttc::SubAck::new(
                4,
                vec![
                    rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce),
                    rumqttc::SubscribeReasonCode::Failure,
                ],
            ))),
            NetEvent::SubAck { pkid: 4, rejected: 1 },
        ),
        (
            "puback",
            rumqttc::Event::Incoming(Packet::PubAck(rumqttc::PubAck::new(9))),
            NetEvent::PubAck { pkid: 9 },
        ),
        (
            "ping",
            rumqttc::Event::Incoming(Packet::PingResp),
            NetEvent::Other,
        ),
        (
            "publish written",
            rumqttc::Event::Outgoing(Outgoing::Publish(3)),
            NetEvent::PublishSent { pkid: 3 },
        ),
        (
            "disconnect written",
            rumqttc::Event::Outgoing(Outgoing::Disconnect),
            NetEvent::DisconnectSent,
        ),
    ];
    for (name, event, want) in cases {
        assert_eq!(map_v3(event), want, "case {name}");
    }
}

#[test]
fn v5_events_map_to_the_same_neutral_events() {
    let connack = |session_present| p5::ConnAck {
        session_present,
        code: p5::ConnectReturnCode::Success,
        properties: None,
    };
    let qos1 = v5::mqttbytes::QoS::AtLeastOnce;
    let cases: Vec<(&str, v5::Event, NetEvent)> = vec![
        (
            "connack without session",
            v5::Event::Incoming(Packet5::ConnAck(connack(false))),
            NetEvent::ConnAck {
                session_present: false,
            },
        ),
        (
            "publish",
            v5::Event::Incoming(Packet5::Publish(p5::Publish::new("a/b", qos1, &b"1.5"[..], None))),
            build_publish_event("a/b", b"1.5"),
        ),
        (
            "suback with shared subscriptions refused",
            v5::Event::Incoming(Packet5::SubAck(p5::SubAck {
                pkid: 2,
                return_codes: vec![
                    p5::SubscribeReasonCode::Success(qos1),
                    p5::SubscribeReasonCode::SharedSubscriptionsNotSupported,
                ],
                properties: None,
            })),
            NetEvent::SubAck { pkid: 2, rejected: 1 },
        ),
        (
            "puback",
            v5::Event::Incoming(Packet5::PubAck(p5::PubAck::new(7, None))),
            NetEvent::PubAck { pkid: 7 },
        ),
        (
            "ping",
            v5::Event::Incoming(Packet5::PingResp(p5::PingResp)),
            NetEvent::Other,
        ),
        (
            "publish written",
            v5::Event::Outgoing(Outgoing::Publish(5)),
            NetEvent::PublishSent { pkid: 5 },
        ),
        (
            "disconnect written",
            v5::Event::Outgoing(Outgoing::Disconnect),
            NetEvent::DisconnectSent,
        ),
    ];
    for (name, event, want) in cases {
        assert_eq!(map_v5(event), want, "case {name}");
    }
}

#[test]
fn qos_maps_level_for_level() {
    assert_eq!(qos_v5(QoS::AtMostOnce), v5::mqttbytes::QoS::AtMostOnce);
    assert_eq!(qos_v5(QoS::AtLeastOnce), v5::mqttbytes::QoS::AtLeastOnce);
    assert_eq!(qos_v5(QoS::ExactlyOnce), v5::mqttbytes::QoS::ExactlyOnce);
}
