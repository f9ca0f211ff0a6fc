//! The alert connection's events: errors (backoff), ConnAck (birth, and what a lost
//! session dropped put back in the queues), acknowledgements, and messages received
//! (Home Assistant's status).

use super::*;

impl Publisher {
    pub(super) fn on_poll(&mut self, event: Result<NetEvent, NetError>) {
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

    pub(super) fn on_connack(&mut self, session_present: bool) {
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
    pub(super) fn on_message(&mut self, topic: &str, payload: &[u8]) {
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
    pub(super) fn requeue_unacked(&mut self) {
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
}
