//! Broker connection settings shared by the subscriber ([`super::mqtt`]) and the
//! publisher ([`crate::publish`]): MQTT options from `[mqtt]` (session, credentials,
//! TLS with rustls + ring, last will) and the reconnect [`Backoff`].
//!
//! Nothing here touches a socket, so the pure parts are unit-tested.

use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};

use crate::config::MqttConfig;

/// Why the connection settings could not be built. Fatal at startup.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// A credential or TLS file could not be read.
    #[error("cannot read {what} file {path}: {source}")]
    ReadFile {
        /// Which setting, e.g. `mqtt.password_file`.
        what: &'static str,
        /// The path configured.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// Only one of `cert_file` / `key_file` was given.
    #[error("`mqtt.tls` needs both cert_file and key_file for client authentication, got only one")]
    HalfClientAuth,
    /// A protocol version the daemon does not speak.
    #[error("`mqtt.protocol` {0} is not supported by this build of the daemon (use 3)")]
    Protocol(u8),
}

/// Builds MQTT 3.1.1 options for one connection of this instance.
///
/// `client_id` is the full id (the subscriber and the publisher use different ones);
/// `will` is set only on the connection that owns the instance status topic.
///
/// # Errors
///
/// [`ConnError`] when a credential or TLS file cannot be read.
pub fn options(cfg: &MqttConfig, client_id: &str, will: Option<LastWill>) -> Result<MqttOptions, ConnError> {
    if cfg.protocol != 3 {
        return Err(ConnError::Protocol(cfg.protocol));
    }
    let mut opts = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    opts.set_keep_alive(cfg.keep_alive.max(Duration::from_secs(1)));
    // A persistent session lets the broker queue QoS 1 telemetry while we restart.
    opts.set_clean_session(!cfg.persistent_session);
    // Telemetry payloads are limited by `limits.max_payload_bytes` after receipt; the
    // packet limit only keeps rumqttc from rejecting an oversize payload as a
    // protocol error (which would drop the connection instead of counting one message).
    opts.set_max_packet_size(16 * 1024 * 1024, 1024 * 1024);
    if let Some(user) = &cfg.username {
        let password = match &cfg.password_file {
            Some(path) => read_password(path)?,
            None => String::new(),
        };
        opts.set_credentials(user.clone(), password);
    }
    if let Some(tls) = &cfg.tls {
        opts.set_transport(Transport::Tls(tls_config(tls)?));
    }
    if let Some(will) = will {
        opts.set_last_will(will);
    }
    Ok(opts)
}

/// The retained `offline` last will for the status topic.
pub fn offline_will(status_topic: &str) -> LastWill {
    LastWill::new(status_topic, "offline", QoS::AtLeastOnce, true)
}

fn read_file(what: &'static str, path: &str) -> Result<Vec<u8>, ConnError> {
    std::fs::read(path).map_err(|source| ConnError::ReadFile {
        what,
        path: path.to_string(),
        source,
    })
}

/// The first line of the password file, without its line ending.
fn read_password(path: &str) -> Result<String, ConnError> {
    let bytes = read_file("mqtt.password_file", path)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.lines().next().unwrap_or("").to_string())
}

fn tls_config(tls: &crate::config::raw::RawTls) -> Result<TlsConfiguration, ConnError> {
    // rumqttc is built without a crypto provider (its default pulls aws-lc); install
    // ring as the process default once. A second install fails harmlessly.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let ca = read_file("mqtt.tls.ca_file", &tls.ca_file)?;
    let client_auth = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some((
            read_file("mqtt.tls.cert_file", cert)?,
            read_file("mqtt.tls.key_file", key)?,
        )),
        (None, None) => None,
        _ => return Err(ConnError::HalfClientAuth),
    };
    Ok(TlsConfiguration::Simple {
        ca,
        alpn: None,
        client_auth,
    })
}

/// Exponential reconnect delay: `min`, doubling each failure, capped at `max`; reset
/// by a successful ConnAck. rumqttc itself reconnects at once on the next `poll()`
/// (its issue #703), so without this a dead broker would be hammered in a tight loop.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`, never above `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay to wait now; the following one doubles.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Back to `min` after a successful connection.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_min_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let seq: Vec<u64> = (0..6).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(seq, [1, 2, 4, 8, 10, 10]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn backoff_max_below_min_is_raised_to_min() {
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(5));
        assert_eq!(b.next_delay(), Duration::from_secs(5));
    }

    #[test]
    fn password_is_the_first_line_of_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\nignored\n").expect("write");
        assert_eq!(
            read_password(path.to_str().expect("utf-8 path")).expect("read"),
            "s3cret"
        );
    }

    #[test]
    fn half_client_auth_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").expect("write");
        let tls = crate::config::raw::RawTls {
            ca_file: ca.to_string_lossy().into_owned(),
            cert_file: Some("c.pem".into()),
            key_file: None,
        };
        assert!(matches!(tls_config(&tls), Err(ConnError::HalfClientAuth)));
    }
}
