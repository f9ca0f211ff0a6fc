//! Partial updates → full readings, per sensor, before the readings queue: sans-IO, one
//! [`Held`] per admitted sensor, kept beside its channel set by
//! [`super::sensors::Admission`] (one map lookup per record).
//!
//! Every reading of a sensor carries its whole channel set, as
//! [`super::sensors::Admission`] keeps it (configured `channels`, the snapshot, or the
//! sensor's payloads until its first model), so every window a model learns from and
//! scores has the same channels.
//! Many devices do not send them all at once: a SenML pack with voltage once and
//! current at six times (RFC 8428 §5.1.3), a JSON sensor that leaves out an unchanged
//! field, one channel per topic. Each record is then an update of some channels, and
//! this module turns updates into readings of the whole set:
//!
//! - **Rounds.** The channels updated since the last reading form the open round; its
//!   time is the newest update's. When every channel is in it, it is a reading at once:
//!   a full record goes straight through, holding nothing but its values.
//! - **Hold.** A round closes unfinished when an update repeats one of its channels,
//!   or lies more than the hold (`[[sources]] hold_secs`, reading time) after the
//!   round began. The missing channels then take their last value, if that is at most
//!   the hold older than the round; otherwise the round is **incomplete**: counted
//!   (`anomalyd_readings_incomplete_total`) and dropped, never sent with a different
//!   channel count. Until an update closes it, an unfinished round waits.
//! - **Silence.** A sensor that falls silent sends no update to close its round, so
//!   ingest also closes every round that has waited more than the hold since its first
//!   update arrived ([`Held::expire`], on the gateway clock: no reading time moves
//!   while nothing arrives). It closes as an update would have closed it: completed
//!   with held values or counted as incomplete, never left waiting unseen.
//! - **Order.** A channel keeps the newest value by reading time: a late update (a QoS 1
//!   resend) of a value already superseded completes nothing. A full record is passed
//!   on whatever its time, so the detector's reorder buffer sees resends as today.
//!
//! It does not parse, admit sensors or decide channel sets; a sensor's held values go
//! when admission forgets it, and follow their channels when admission widens the
//! set ([`Held::regroup`]).

use super::payload::Channel;
use crate::reading::{ChannelSet, Reading, SensorId, Values};

/// Default `[[sources]] hold_secs`: a minute covers a SenML pack's spread, fields left out
/// of a message or two, and channels on topics of their own published on a common
/// period of up to a minute, while a value older than that is no longer "now" for a
/// process that is watched in seconds.
pub const DEFAULT_HOLD_SECS: f64 = 60.0;

/// What one update produced, oldest first.
#[derive(Debug, Default, PartialEq)]
pub struct Assembled {
    /// The unfinished round this update closed, completed with held values.
    pub closed: Option<Reading>,
    /// The unfinished round this update closed could not be completed.
    pub incomplete: bool,
    /// The round this update completed.
    pub reading: Option<Reading>,
}

impl Assembled {
    /// The readings to queue, oldest first.
    pub fn readings(self) -> impl Iterator<Item = Reading> {
        self.closed.into_iter().chain(self.reading)
    }
}

/// One sensor's last values and open round; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    /// Per channel (the set's order): reading time of its last value; NaN: none yet.
    ts: Vec<f64>,
    /// Per channel: its last value.
    values: Vec<f64>,
    /// Per channel: updated in the open round.
    fresh: Vec<bool>,
    /// Channels in the open round.
    fresh_count: usize,
    /// Time of the open round's first and newest update.
    round_start: f64,
    round_ts: f64,
    /// When the open round's first update arrived (gateway clock, unix seconds), and
    /// the hold it arrived under: what [`Self::expire`] measures a silence against.
    round_arrived: f64,
    hold: f64,
}

impl Held {
    /// Nothing held yet for a sensor of `channels` channels.
    pub fn new(channels: usize) -> Self {
        Self {
            ts: vec![f64::NAN; channels],
            values: vec![0.0; channels],
            fresh: vec![false; channels],
            fresh_count: 0,
            round_start: f64::NAN,
            round_ts: f64::NAN,
            round_arrived: f64::NAN,
            hold: DEFAULT_HOLD_SECS,
        }
    }

    /// Takes one update of `sensor`, whose channel set is `set` (the one this was made
    /// for): `channels` are
    /// `(name, value)` pairs whose names are all in `set` (admission checked), in the
    /// set's order. `hold` is the source's `hold_secs`; `arrived` the gateway clock.
    pub fn update(
        &mut self,
        sensor: &SensorId,
        set: &ChannelSet,
        ts: f64,
        channels: &[Channel<'_>],
        (hold, arrived): (f64, f64),
    ) -> Assembled {
        let reading = |ts: f64, values: Values| Reading {
            sensor: sensor.clone(),
            ts,
            channels: set.clone(),
            values,
        };
        let mut out = Assembled::default();
        self.hold = hold;
        let full = channels.len() == set.len() && (channels.iter().zip(set.iter())).all(|((n, _), s)| n == s);
        let closes = full
            || ts - self.round_start > hold
            || ts < self.round_start - hold
            || positions(set, channels).any(|(i, _)| self.fresh[i]);
        if closes {
            match self.close(hold) {
                Some(Ok(values)) => out.closed = Some(reading(self.round_ts, values)),
                Some(Err(())) => out.incomplete = true,
                None => {}
            }
        }
        if full {
            for (i, &(_, value)) in channels.iter().enumerate() {
                self.set(i, ts, value);
            }
            out.reading = Some(reading(ts, channels.iter().map(|&(_, v)| v).collect()));
            return out;
        }
        for (i, value) in positions(set, channels) {
            if self.set(i, ts, value) {
                self.join(i, ts, arrived);
            }
        }
        if self.fresh_count == set.len() {
            if let Some(Ok(values)) = self.close(hold) {
                out.reading = Some(reading(self.round_ts, values));
            }
        }
        out
    }

    /// The same held values and open round for the channel set `to`, from the set
    /// `from` this was made for: each channel's value moves with its name; channels
    /// new in `to` have none yet, and those `to` leaves out are gone.
    pub fn regroup(&self, from: &ChannelSet, to: &ChannelSet) -> Self {
        let mut out = Self::new(to.len());
        for (j, name) in to.iter().enumerate() {
            if let Some(i) = from.iter().position(|n| n == name) {
                out.ts[j] = self.ts[i];
                out.values[j] = self.values[i];
                out.fresh[j] = self.fresh[i];
            }
        }
        out.fresh_count = out.fresh.iter().filter(|&&f| f).count();
        (out.round_start, out.round_ts) = (self.round_start, self.round_ts);
        (out.round_arrived, out.hold) = (self.round_arrived, self.hold);
        out
    }

    /// Stores one channel's value unless a newer one is held; returns whether it did.
    fn set(&mut self, channel: usize, ts: f64, value: f64) -> bool {
        // A NaN (no value yet) is replaced.
        if self.ts[channel].is_nan() || ts >= self.ts[channel] {
            self.ts[channel] = ts;
            self.values[channel] = value;
            true
        } else {
            false
        }
    }

    /// Closes the open round if it has waited more than its hold since its first
    /// update arrived, as of `now` (the gateway clock): see the module docs.
    pub fn expire(&mut self, sensor: &SensorId, set: &ChannelSet, now: f64) -> Assembled {
        let mut out = Assembled::default();
        if self.fresh_count == 0 || now - self.round_arrived <= self.hold {
            return out;
        }
        match self.close(self.hold) {
            Some(Ok(values)) => {
                out.closed = Some(Reading {
                    sensor: sensor.clone(),
                    ts: self.round_ts,
                    channels: set.clone(),
                    values,
                });
            }
            Some(Err(())) => out.incomplete = true,
            None => {}
        }
        out
    }

    /// Adds a stored update to the open round.
    fn join(&mut self, channel: usize, ts: f64, arrived: f64) {
        if self.fresh_count == 0 {
            self.round_arrived = arrived;
        }
        if !self.fresh[channel] {
            self.fresh[channel] = true;
            self.fresh_count += 1;
        }
        if self.fresh_count == 1 || ts < self.round_start {
            self.round_start = ts;
        }
        if self.fresh_count == 1 || ts > self.round_ts {
            self.round_ts = ts;
        }
    }

    /// Closes the open round: the reading at its time, when every missing channel's
    /// last value is at most `hold` older; `Err(())` when one is not.
    fn close(&mut self, hold: f64) -> Option<Result<Values, ()>> {
        if self.fresh_count == 0 {
            return None;
        }
        let round_ts = self.round_ts;
        let complete = (self.fresh.iter().zip(&self.ts)).all(|(&fresh, &ts)| fresh || round_ts - ts <= hold);
        self.fresh.fill(false);
        self.fresh_count = 0;
        Some(if complete {
            Ok(Values::from_slice(&self.values))
        } else {
            Err(())
        })
    }
}

/// Each update's position in the set, with its value, in one pass: the names are in
/// the set's order (the configured order or sorted by name, as admission checked).
fn positions<'a>(
    set: &'a ChannelSet,
    channels: &'a [Channel<'_>],
) -> impl Iterator<Item = (usize, f64)> + 'a {
    let mut cursor = set.iter().enumerate();
    channels
        .iter()
        .filter_map(move |(name, value)| cursor.find(|(_, s)| *s == name).map(|(i, _)| (i, *value)))
}

#[cfg(test)]
mod tests;
