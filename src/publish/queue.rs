//! What waits to go out: the bounded alert queue (oldest dropped and counted), the
//! latest state per sensor, Home Assistant discovery configs before a sensor's first
//! state, and [`Publisher::flush`], which hands them to rumqttc while connected.

use super::*;

impl Publisher {
    pub(super) fn enqueue(&mut self, msg: Outbound) {
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
    pub(super) fn push_alert(&mut self, sensor: &str, json: String) {
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
    pub(super) fn discover(&mut self, sensor: &str) {
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
    pub(super) fn flush(&mut self) {
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
}
