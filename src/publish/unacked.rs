//! Bookkeeping of QoS 1 publishes handed to rumqttc but not yet acknowledged.
//!
//! rumqttc keeps unacknowledged publishes across a reconnect only when the broker
//! resumes the session; on a ConnAck without a session it discards them (and the
//! requests still in its channel). The publisher therefore remembers every publish
//! until its PubAck and hands it over again after a fresh session, so an alert is never
//! lost to a broker restart that dropped the session. Sans-IO: driven by rumqttc
//! events, unit-tested without a socket.

use std::collections::{HashMap, VecDeque};

/// One publish the publisher cares to resend.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tracked {
    /// An alert event (topic, JSON, when it was queued).
    Alert(super::Message),
    /// A retained state (topic, JSON).
    State { topic: String, payload: Vec<u8> },
    /// Birth/offline status: re-sent on every ConnAck anyway, never resent from here.
    Status,
}

/// Publishes between `try_publish` and PubAck, in hand-over order.
#[derive(Debug, Default)]
pub(crate) struct Unacked {
    /// Handed to rumqttc, not yet written (no packet id yet), oldest first.
    handed: VecDeque<Tracked>,
    /// Written with this packet id; the sequence number keeps the original order.
    inflight: HashMap<u16, (u64, Tracked)>,
    seq: u64,
}

impl Unacked {
    /// A publish was handed to rumqttc (`try_publish` succeeded).
    pub(crate) fn handed(&mut self, t: Tracked) {
        self.handed.push_back(t);
    }

    /// rumqttc wrote a publish with `pkid`. rumqttc processes requests in order, so it
    /// is the oldest handed one, unless `pkid` is already in flight (a retransmission
    /// after a resumed session).
    pub(crate) fn written(&mut self, pkid: u16) {
        if self.inflight.contains_key(&pkid) {
            return;
        }
        if let Some(t) = self.handed.pop_front() {
            self.seq += 1;
            self.inflight.insert(pkid, (self.seq, t));
        }
    }

    /// The broker acknowledged `pkid`.
    pub(crate) fn acked(&mut self, pkid: u16) {
        self.inflight.remove(&pkid);
    }

    /// Nothing awaits an acknowledgement.
    pub(crate) fn is_empty(&self) -> bool {
        self.handed.is_empty() && self.inflight.is_empty()
    }

    /// Everything not acknowledged, oldest first, leaving the tracker empty: called on a
    /// ConnAck without a session, when rumqttc has discarded them.
    pub(crate) fn take_all(&mut self) -> Vec<Tracked> {
        let mut written: Vec<(u64, Tracked)> = self.inflight.drain().map(|(_, v)| v).collect();
        written.sort_by_key(|(seq, _)| *seq);
        let mut out: Vec<Tracked> = written.into_iter().map(|(_, t)| t).collect();
        out.extend(self.handed.drain(..));
        out.retain(|t| *t != Tracked::Status);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static QUEUED: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();

    fn alert(n: u8) -> Tracked {
        Tracked::Alert(super::super::Message {
            topic: format!("a/{n}"),
            payload: vec![n],
            // One instant for every call, so equal arguments build equal values.
            queued: *QUEUED.get_or_init(tokio::time::Instant::now),
        })
    }

    #[test]
    fn acked_publishes_are_forgotten_and_the_rest_come_back_in_order() {
        let mut u = Unacked::default();
        u.handed(Tracked::Status);
        u.handed(alert(1));
        u.handed(alert(2));
        u.handed(alert(3));
        u.written(7); // status
        u.written(8); // alert 1
        u.written(9); // alert 2
        u.acked(7);
        u.acked(9);
        assert!(!u.is_empty());
        assert_eq!(u.take_all(), vec![alert(1), alert(3)]);
        assert!(u.is_empty());
    }

    #[test]
    fn a_retransmission_does_not_consume_a_handed_publish() {
        let mut u = Unacked::default();
        u.handed(alert(1));
        u.written(1);
        u.handed(alert(2));
        u.written(1); // rumqttc resent pkid 1 after a resumed session
        u.written(2);
        u.acked(1);
        u.acked(2);
        assert!(u.is_empty());
    }
}
