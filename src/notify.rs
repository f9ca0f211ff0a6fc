//! systemd integration: readiness, status text, stopping, and the watchdog.
//!
//! The unit is `Type=notify` with `WatchdogSec=`: the daemon says `READY=1` once it
//! has loaded its snapshot and connected its tasks, sends `WATCHDOG=1` at half the
//! watchdog period while the detector is alive, and `STOPPING=1` when shutdown starts.
//! Every call is a no-op outside systemd (no `NOTIFY_SOCKET`), so `replay`, tests and
//! a foreground run need no special casing. Errors sending a notification are logged
//! at debug and otherwise ignored: a missing notification is systemd's problem to
//! time out on, never a reason to stop scoring.
//!
//! What it does not do: decide when the daemon is ready or healthy; it reads
//! [`Health`], which the stages maintain.

use std::future::Future;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::metrics::Health;

fn send(state: NotifyState<'_>) {
    if let Err(error) = sd_notify::notify(&[state]) {
        tracing::debug!(%error, "Cannot notify systemd.");
    }
}

/// Tells systemd start-up is complete (`READY=1`).
pub fn ready() {
    send(NotifyState::Ready);
}

/// Sets the one-line status shown by `systemctl status` (`STATUS=...`).
pub fn status(msg: &str) {
    send(NotifyState::Status(msg));
}

/// Tells systemd shutdown has begun (`STOPPING=1`).
pub fn stopping() {
    send(NotifyState::Stopping);
}

/// How often to ping: half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises, or
/// `None` when the watchdog is off or meant for another process.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|period| !period.is_zero())
        .map(|period| period / 2)
}

/// Sends `WATCHDOG=1` every [`watchdog_interval`] while [`Health::detector_alive`],
/// until `shutdown` resolves. Returns at once when there is no watchdog. When the
/// detector dies the pings stop, and systemd restarts the unit after `WatchdogSec`.
pub async fn watchdog_loop(health: Health, shutdown: impl Future<Output = ()>) {
    let Some(period) = watchdog_interval() else {
        return;
    };
    tracing::info!(?period, "Pinging the systemd watchdog.");
    ping_while_alive(period, &health, shutdown, || send(NotifyState::Watchdog)).await;
}

/// The loop behind [`watchdog_loop`], with the ping injected so tests can count it.
async fn ping_while_alive(
    period: Duration,
    health: &Health,
    shutdown: impl Future<Output = ()>,
    mut ping: impl FnMut(),
) {
    tokio::pin!(shutdown);
    let mut ticks = tokio::time::interval(period);
    let mut was_alive = true;
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {
                let alive = health.detector_alive();
                if alive {
                    ping();
                } else if was_alive {
                    // Logged once per outage, not every tick.
                    tracing::error!("Detector is not running; withholding watchdog pings.");
                }
                was_alive = alive;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn watchdog_pings_only_while_the_detector_is_alive() {
        let health = Health::new();
        health.set_detector_alive(true);
        let pings = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = {
            let (health, pings) = (health.clone(), pings.clone());
            tokio::spawn(async move {
                let shutdown = async {
                    let _ = stop_rx.await;
                };
                ping_while_alive(Duration::from_secs(10), &health, shutdown, || {
                    pings.fetch_add(1, Ordering::Relaxed);
                })
                .await;
            })
        };
        // Ticks at 0, 10, 20 s.
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(pings.load(Ordering::Relaxed), 3);
        health.set_detector_alive(false);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(pings.load(Ordering::Relaxed), 3);
        health.set_detector_alive(true);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(pings.load(Ordering::Relaxed), 4);
        drop(stop_tx);
        task.await.expect("loop ends on shutdown");
    }

    #[test]
    fn notifications_are_no_ops_outside_systemd() {
        // The test runner has no NOTIFY_SOCKET (asserted, so a CI under systemd
        // notices instead of sending stray READY=1 to its own manager).
        assert!(std::env::var_os("NOTIFY_SOCKET").is_none());
        ready();
        status("testing");
        stopping();
    }
}
