//! Alert lifecycle and the alert event payloads.
//!
//! Owns the per-sensor state machine ([`AlertState`]: raise after `consecutive`
//! windows over threshold, clear after `clear_after` windows under it, no raise during
//! `cooldown` windows after a clear unless the fault comes back worse than the cleared
//! alert saw; a clear as subsided when the fault's error falls
//! well below its peak, [`subside`]; acceptance clears through [`AlertState::clear`]
//! when the learning policy says so), the JSON event the publisher sends
//! ([`AlertEvent`]), the per-channel error breakdown ([`channel_contributions`]), and
//! topic rendering ([`render_topic`], [`sanitize_topic_level`]). [`severity`] owns the
//! alert id and the severity bands; [`stale`] owns silent-sensor tracking and its
//! `stale` / `fresh` events. The event types live in `event`, topic rendering in
//! `topic`. docs/alert.schema.json describes every event. It is
//! sans-IO: the detector calls [`AlertState::update`] once per scored window and hands
//! any event to the publisher, which owns QoS and the broker connection.

mod event;
pub mod severity;
pub mod stale;
mod subside;
mod topic;

use serde::{Deserialize, Serialize};

pub use event::{AlertEvent, ChannelContribution, StuckChannel, channel_contributions, rfc3339};
pub use severity::{Severity, SeverityBands};
pub use subside::Subside;
pub use topic::{render_topic, sanitize_topic_level};

/// Alert lifecycle settings, counted in scored windows.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertParams {
    /// Consecutive windows over threshold needed to raise (≥ 1; 0 behaves as 1).
    pub consecutive: u32,
    /// Consecutive windows under threshold needed to clear (≥ 1; 0 behaves as 1).
    pub clear_after: u32,
    /// Windows after a clear during which no new raise may happen, unless, after a
    /// recovery, `consecutive` windows score over the cleared alert's largest score.
    pub cooldown: u32,
    /// `over_by` bounds of the severities (`[alert] severity_bands`).
    pub severity: SeverityBands,
    /// Readings a channel must stay unchanged for to be stuck (`[alert] stuck_rows`,
    /// [`crate::detector::stuck`]); 0 = off.
    pub stuck_rows: u32,
    /// Fraction of a raised episode's peak level under which its score must stay for
    /// `cooldown` windows (at least `clear_after`) to clear as subsided (`[alert]
    /// subside`, [`subside`]); 0 = off.
    pub subside: f64,
}

/// What an alert event announces.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlertEventKind {
    /// The sensor entered the alert state.
    Raised,
    /// The sensor left the alert state (see [`ClearReason`]).
    Cleared,
}

/// Why an alert was cleared.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClearReason {
    /// The signal came back under the threshold for `clear_after` windows.
    Recovered,
    /// The alert lasted `[learning] accept_after_secs`: what it saw is the new normal
    /// and the detector re-baselined on it.
    Accepted,
    /// The error stayed under `[alert] subside` of the episode's peak for `cooldown`
    /// windows (at least `clear_after`) but not under the threshold: the fault ended, the sensor has not come
    /// back to what it learned. No new alert unless the error rises over the level it
    /// subsided to.
    Subsided,
}

/// What one window did to the alert lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertStep {
    /// An alert was raised.
    Raised,
    /// The raised alert cleared: `clear_after` windows under the threshold.
    Recovered,
    /// The raised alert cleared as subsided; a hold is in force.
    Subsided,
    /// A hold ended: `clear_after` windows under the threshold after a subsided clear.
    Settled,
}

/// Per-sensor alert state; serialisable so snapshots keep a raised alert raised.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AlertState {
    /// Whether an alert is currently raised.
    raised: bool,
    /// Consecutive windows over threshold, up to and including the latest.
    over_run: u32,
    /// Consecutive windows under threshold, up to and including the latest.
    under_run: u32,
    /// Windows left in which a raise is suppressed after the last clear.
    cooldown_left: u32,
    /// Reading time of the raise, while raised (absent in older snapshots).
    #[serde(default)]
    raised_at: Option<f64>,
    /// Severity of the raise, while raised, so its `cleared` says the same (absent in
    /// older snapshots: such a clear says `minor`).
    #[serde(default)]
    severity: Option<Severity>,
    /// The episode's level and any hold after a subsided clear. Snapshots keep it in
    /// their own field (format 7), so this struct reads as it did in every format.
    #[serde(skip)]
    subside: Subside,
    /// Largest score of the current run over the threshold (not in snapshots, nor
    /// are the three below: after a restart they count from there, and the rest of a
    /// cooldown is plain).
    #[serde(skip)]
    run_max: f64,
    /// Largest score of the raised episode, the run that raised it included.
    #[serde(skip)]
    episode_max: f64,
    /// During the cooldown after a recovered clear, the largest score of the episode
    /// it ended.
    #[serde(skip)]
    cooldown_peak: Option<f64>,
    /// Consecutive cooldown windows, up to the latest, over `cooldown_peak`.
    #[serde(skip)]
    stronger_run: u32,
}

impl AlertState {
    /// Feeds one scored window (`over`: its score exceeded the threshold; `score`: the
    /// thresholded score, infinite for a stuck channel) and returns what it did.
    ///
    /// Windows over threshold during the cooldown still count toward `consecutive`,
    /// so an anomaly that persists through the cooldown is raised as soon as it ends;
    /// a flapping signal is raised at most once per clear + cooldown. A fault that
    /// comes back worse than anything the recovered alert saw (`consecutive` windows
    /// over its largest score) is no flapping: it is raised at once, cooldown or not.
    /// During a hold (after a subsided clear) only scores over the held level count
    /// toward a raise.
    pub fn update(&mut self, p: &AlertParams, over: bool, score: f64, ts: f64) -> Option<AlertStep> {
        let clear_after = p.clear_after.max(1);
        let settled = !self.raised && self.subside.held_window(over, clear_after);
        let counts = over && (self.raised || !self.subside.blocks_raise(score));
        if counts {
            // The first window of a run (after any reset of `over_run`) starts its maximum.
            let before = if self.over_run == 0 { 0.0 } else { self.run_max };
            self.run_max = before.max(score);
            self.over_run = self.over_run.saturating_add(1);
            self.under_run = 0;
        } else {
            self.under_run = self.under_run.saturating_add(1);
            self.over_run = 0;
        }
        if self.raised {
            self.episode_max = self.episode_max.max(score);
            if self.under_run >= clear_after {
                let peak = self.episode_max;
                self.clear(p);
                self.cooldown_peak = Some(peak);
                return Some(AlertStep::Recovered);
            }
            // As long a quiet spell as separates two alerts: a dip of an ongoing fault is
            // not its end.
            let quiet = clear_after.max(p.cooldown);
            if p.subside > 0.0 && self.subside.raised_window(score, p.subside, quiet) {
                // The severity stays for the episode: an acceptance of it says the same.
                self.raised = false;
                self.under_run = 0;
                self.over_run = 0;
                self.subside.begin_hold();
                return Some(AlertStep::Subsided);
            }
            return None;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            let stronger = self.cooldown_peak.is_some_and(|peak| counts && score > peak);
            self.stronger_run = if stronger { self.stronger_run + 1 } else { 0 };
            if self.stronger_run >= p.consecutive.max(1) {
                return Some(self.raise(ts));
            }
            return settled.then_some(AlertStep::Settled);
        }
        if self.over_run >= p.consecutive.max(1) {
            return Some(self.raise(ts));
        }
        settled.then_some(AlertStep::Settled)
    }

    fn raise(&mut self, ts: f64) -> AlertStep {
        self.raised = true;
        self.raised_at = Some(ts);
        self.over_run = 0;
        self.cooldown_left = 0;
        self.cooldown_peak = None;
        self.stronger_run = 0;
        self.episode_max = self.run_max;
        self.subside.start();
        AlertStep::Raised
    }

    /// Clears a raised alert whatever the signal does (acceptance), with the usual
    /// cooldown after it.
    pub fn clear(&mut self, p: &AlertParams) {
        self.raised = false;
        self.raised_at = None;
        self.subside.start();
        self.severity = None;
        self.cooldown_left = p.cooldown;
        self.cooldown_peak = None;
        self.stronger_run = 0;
        self.under_run = 0;
        self.over_run = 0;
    }

    /// Reading time of the raise, while an alert is raised.
    pub fn raised_at(&self) -> Option<f64> {
        self.raised_at.filter(|_| self.raised)
    }

    /// Whether an alert is currently raised.
    pub fn is_raised(&self) -> bool {
        self.raised
    }

    /// Whether an episode is under way: an alert raised, or a hold after it subsided.
    /// Its windows are held for the learning policy either way.
    pub fn in_episode(&self) -> bool {
        self.raised || self.holding()
    }

    /// Whether the sensor holds the level a fault subsided to (no alert is raised then:
    /// a raise ends the hold).
    pub fn holding(&self) -> bool {
        self.subside.holding()
    }

    /// Reading time of the raise that began the episode under way (see
    /// [`Self::in_episode`]): what acceptance is timed from.
    pub fn episode_since(&self) -> Option<f64> {
        self.raised_at.filter(|_| self.in_episode())
    }

    /// The episode's level and hold, for a snapshot.
    pub fn subside(&self) -> &Subside {
        &self.subside
    }

    /// Restores the episode's level and hold from a snapshot.
    pub fn restore_subside(&mut self, subside: Subside) {
        self.subside = subside;
    }

    /// Records the severity of the raise just made (kept until the clear).
    pub fn set_severity(&mut self, severity: Severity) {
        self.severity = Some(severity).filter(|_| self.raised);
    }

    /// Severity of the raise, while its episode is under way (see [`Self::in_episode`]).
    pub fn severity(&self) -> Option<Severity> {
        self.severity.filter(|_| self.in_episode())
    }
}

#[cfg(test)]
mod tests;
