//! SIGHUP: re-reads the config file. Threshold, alert, score and learning settings apply at
//! once (models are kept); every other changed key needs a restart and is named in
//! the log, so an operator is never left believing a new `[mqtt]` host is in use.

use std::path::PathBuf;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::detect::Reload;
use crate::config::Config;

/// On SIGHUP, re-reads the config file: a valid one replaces thresholds and alert
/// settings and logs each other changed key as needing a restart; an invalid one is
/// logged and the old settings stay. `running` is the config the daemon started with.
pub(super) async fn reload_loop(
    path: PathBuf,
    mut running: Config,
    reload_tx: mpsc::Sender<Reload>,
    token: CancellationToken,
) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(error) => {
            warn!(%error, "Cannot watch SIGHUP; reload disabled.");
            return;
        }
    };
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = hup.recv() => {}
        }
        match Config::load(&path) {
            Ok(c) => {
                info!(path = %path.display(), "SIGHUP: reloading thresholds and alert settings.");
                for key in restart_keys(&running, &c) {
                    warn!(
                        key,
                        "SIGHUP: changed setting needs a restart; still using the old value."
                    );
                }
                running.detector.threshold = c.detector.threshold.clone();
                running.detector.alert = c.detector.alert.clone();
                running.detector.score = c.detector.score;
                running.detector.learning = c.detector.learning;
                let _ = reload_tx
                    .send(Reload {
                        threshold: c.detector.threshold,
                        alert: c.detector.alert,
                        score: c.detector.score,
                        learning: c.detector.learning,
                    })
                    .await;
            }
            Err(error) => {
                error!(path = %path.display(), %error, "SIGHUP: config invalid; old settings kept.")
            }
        }
    }
}

/// The keys (or sections) that differ between `running` and `new` and that a reload
/// does not apply.
fn restart_keys(running: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&running.mqtt, &new.mqtt);
    let mut detector = new.detector.clone();
    detector.threshold = running.detector.threshold.clone();
    detector.alert = running.detector.alert.clone();
    detector.score = running.detector.score;
    detector.learning = running.detector.learning;
    let checks = [
        (a.host != b.host, "mqtt.host"),
        (a.port != b.port, "mqtt.port"),
        (a.client_id != b.client_id, "mqtt.client_id"),
        (a.keep_alive != b.keep_alive, "mqtt.keep_alive_secs"),
        (
            a.persistent_session != b.persistent_session,
            "mqtt.persistent_session",
        ),
        (a.protocol != b.protocol, "mqtt.protocol"),
        (a.qos != b.qos, "mqtt.qos"),
        (a.username != b.username, "mqtt.username"),
        (a.password_file != b.password_file, "mqtt.password_file"),
        (a.tls != b.tls, "mqtt.tls"),
        (a.reconnect_min != b.reconnect_min, "mqtt.reconnect_min_ms"),
        (a.reconnect_max != b.reconnect_max, "mqtt.reconnect_max_ms"),
        (running.sources != new.sources, "sources"),
        (running.alerts != new.alerts, "alerts"),
        (running.state != new.state, "state"),
        (running.metrics_listen != new.metrics_listen, "metrics.listen"),
        (running.limits != new.limits, "limits"),
        (running.stale_after != new.stale_after, "alert.stale_after_secs"),
        (running.homeassistant != new.homeassistant, "homeassistant"),
        (running.cluster != new.cluster, "cluster"),
        (
            running.detector != detector,
            "window, model, training or detrend settings",
        ),
    ];
    checks
        .into_iter()
        .filter(|(changed, _)| *changed)
        .map(|(_, key)| key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_config(text: &str) -> Config {
        Config::from_toml_str(text).expect("valid config")
    }

    #[test]
    fn each_change_that_needs_a_restart_is_named() {
        let running = build_config("");
        let cases = [
            ("nothing", "", vec![]),
            ("threshold only", "[threshold]\nquantile = 0.9\n", vec![]),
            ("broker host", "[mqtt]\nhost = \"elsewhere\"\n", vec!["mqtt.host"]),
            (
                "port and keep-alive",
                "[mqtt]\nport = 1884\nkeep_alive_secs = 7\n",
                vec!["mqtt.port", "mqtt.keep_alive_secs"],
            ),
            (
                "window",
                "[window]\nsize = 7\n",
                vec!["window, model, training or detrend settings"],
            ),
            (
                "severity bands apply at once",
                "[alert]\nseverity_bands = [3.0, 9.0]\n",
                vec![],
            ),
            (
                "staleness and discovery",
                "[alert]\nstale_after_secs = 60\n[homeassistant]\nenabled = true\n",
                vec!["alert.stale_after_secs", "homeassistant"],
            ),
            ("alert expiry", "[alerts]\nexpiry_secs = 60\n", vec!["alerts"]),
            (
                "cluster, which also renames the client and the status topic",
                "[cluster]\ninstances = 2\n",
                vec!["mqtt.client_id", "alerts", "cluster"],
            ),
        ];
        for (name, text, want) in cases {
            assert_eq!(restart_keys(&running, &build_config(text)), want, "{name}");
        }
    }
}
