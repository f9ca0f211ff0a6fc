//! Broker connection settings shared by the subscriber ([`crate::ingest::mqtt`]) and the
//! publisher ([`crate::publish`]): MQTT 3.1.1 and MQTT 5 options from `[mqtt]`
//! (session, credentials, TLS with rustls + ring, last will). [`super::net`] picks the
//! protocol and builds the client from these.
//!
//! Nothing here touches a socket, so the pure parts are unit-tested.

use std::time::Duration;

use rumqttc::{QoS, TlsConfiguration, Transport, v5};

use crate::config::MqttConfig;

/// Largest packet accepted from the broker: the largest any MQTT packet can be (its
/// Remaining Length field tops out at 268,435,455, MQTT 3.1.1 §2.2.3 and MQTT 5
/// §1.5.5). Telemetry payloads are limited by `limits.max_payload_bytes` after receipt
/// and counted as `too_large`. A smaller limit here would make rumqttc refuse the
/// packet as a protocol error and drop the connection; the broker then redelivers the
/// same QoS 1 message on the resumed session, forever (issue 10, defect 1). The cost is
/// that one oversize message is held in memory once while it is counted and dropped.
pub const MAX_INCOMING_PACKET: usize = 268_435_455;

/// Largest packet the daemon sends (MQTT 3.1.1; under MQTT 5 the broker's ConnAck says).
const MAX_OUTGOING_PACKET: usize = 1024 * 1024;

/// MQTT 5 session expiry of a persistent session: `u32::MAX` means the session never
/// expires (MQTT 5 §3.1.2.11.2), like a 3.1.1 session with `clean_session = false`.
/// Without it an MQTT 5 broker ends the session at disconnect and queues nothing.
const SESSION_NEVER_EXPIRES: u32 = u32::MAX;

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
    /// `mqtt.tls.ca_file` holds no PEM certificate: every TLS handshake would fail, so
    /// this is fatal at startup like a missing file, not retried forever.
    #[error("`mqtt.tls.ca_file` {path} holds no PEM certificate")]
    NoCertificate {
        /// The path configured.
        path: String,
    },
    /// Only one of `cert_file` / `key_file` was given.
    #[error("`mqtt.tls` needs both cert_file and key_file for client authentication, got only one")]
    HalfClientAuth,
    /// A protocol version the daemon does not speak.
    #[error("`mqtt.protocol` must be 3 or 5, got {0}")]
    Protocol(u8),
}

/// A last will, independent of the protocol version: retained, QoS 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    /// The topic the broker publishes the will on.
    pub topic: String,
    /// The will's payload.
    pub payload: &'static str,
}

/// What both protocol versions configure the same way.
struct Common {
    credentials: Option<(String, String)>,
    transport: Option<Transport>,
}

impl Common {
    fn read(cfg: &MqttConfig) -> Result<Self, ConnError> {
        let credentials = match &cfg.username {
            Some(user) => {
                let password = match &cfg.password_file {
                    Some(path) => read_password(path)?,
                    None => String::new(),
                };
                Some((user.clone(), password))
            }
            None => None,
        };
        let transport = match &cfg.tls {
            Some(tls) => Some(Transport::Tls(tls_config(tls)?)),
            None => None,
        };
        Ok(Self {
            credentials,
            transport,
        })
    }
}

/// Builds MQTT 3.1.1 options for one connection of this instance.
///
/// `client_id` is the full id (the subscriber and the publisher use different ones);
/// `will` is set only on the connection that owns the instance status topic.
///
/// # Errors
///
/// [`ConnError`] when a credential or TLS file cannot be read.
pub fn options(
    cfg: &MqttConfig,
    client_id: &str,
    will: Option<&Will>,
) -> Result<rumqttc::MqttOptions, ConnError> {
    let common = Common::read(cfg)?;
    let mut opts = rumqttc::MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    opts.set_keep_alive(cfg.keep_alive.max(Duration::from_secs(1)));
    // A persistent session lets the broker queue QoS 1 telemetry while we restart.
    opts.set_clean_session(!cfg.persistent_session);
    opts.set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
    if let Some((user, password)) = common.credentials {
        opts.set_credentials(user, password);
    }
    if let Some(transport) = common.transport {
        opts.set_transport(transport);
    }
    if let Some(will) = will {
        opts.set_last_will(rumqttc::LastWill::new(
            &will.topic,
            will.payload,
            QoS::AtLeastOnce,
            true,
        ));
    }
    Ok(opts)
}

/// Builds MQTT 5 options: the same settings as [`options`], with the session kept by
/// `clean_start = false` plus a session expiry interval.
///
/// # Errors
///
/// [`ConnError`] when a credential or TLS file cannot be read.
pub fn options_v5(
    cfg: &MqttConfig,
    client_id: &str,
    will: Option<&Will>,
) -> Result<v5::MqttOptions, ConnError> {
    let common = Common::read(cfg)?;
    let mut opts = v5::MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    opts.set_keep_alive(cfg.keep_alive.max(Duration::from_secs(1)));
    opts.set_clean_start(!cfg.persistent_session);
    if cfg.persistent_session {
        opts.set_session_expiry_interval(Some(SESSION_NEVER_EXPIRES));
    }
    // Sent to the broker as Maximum Packet Size; the outgoing limit is the broker's.
    opts.set_max_packet_size(Some(MAX_INCOMING_PACKET as u32));
    if let Some((user, password)) = common.credentials {
        opts.set_credentials(user, password);
    }
    if let Some(transport) = common.transport {
        opts.set_transport(transport);
    }
    if let Some(will) = will {
        let qos = v5::mqttbytes::QoS::AtLeastOnce;
        opts.set_last_will(v5::mqttbytes::v5::LastWill::new(
            &will.topic,
            will.payload,
            qos,
            true,
            None,
        ));
    }
    Ok(opts)
}

/// The retained `offline` last will for the status topic.
pub fn offline_will(status_topic: &str) -> Will {
    Will {
        topic: status_topic.to_string(),
        payload: "offline",
    }
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
    if !holds_certificate(&ca) {
        return Err(ConnError::NoCertificate {
            path: tls.ca_file.clone(),
        });
    }
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

/// Whether `pem` holds at least one well-formed PEM certificate.
fn holds_certificate(pem: &[u8]) -> bool {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem).any(|c| c.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A syntactically valid PEM certificate block (its DER is not checked here).
    const TEST_CA: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0xTPjJZ\n-----END CERTIFICATE-----\n";

    fn build_mqtt_config(persistent_session: bool) -> MqttConfig {
        MqttConfig {
            host: "localhost".into(),
            port: 1883,
            client_id: "c".into(),
            keep_alive: Duration::from_secs(5),
            persistent_session,
            protocol: 5,
            qos: 1,
            username: None,
            password_file: None,
            tls: None,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
        }
    }

    #[test]
    fn v5_persistent_session_keeps_the_session_and_never_expires_it() {
        let opts = options_v5(&build_mqtt_config(true), "c", None).expect("options");
        assert!(!opts.clean_start());
        assert_eq!(opts.session_expiry_interval(), Some(u32::MAX));
        let opts = options_v5(&build_mqtt_config(false), "c", None).expect("options");
        assert!(opts.clean_start());
        assert_eq!(opts.session_expiry_interval(), None);
    }

    #[test]
    fn v5_will_is_retained_offline_at_qos_1() {
        let will = offline_will("p/status");
        let opts = options_v5(&build_mqtt_config(true), "c", Some(&will)).expect("options");
        let lw = opts.last_will().expect("will set");
        assert_eq!(&lw.topic[..], b"p/status");
        assert_eq!(&lw.message[..], b"offline");
        assert!(lw.retain);
        assert_eq!(lw.qos, v5::mqttbytes::QoS::AtLeastOnce);
    }

    #[test]
    fn a_ca_file_without_a_certificate_fails_at_startup() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in [
            ("empty", ""),
            ("not pem", "hello"),
            (
                "a key",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
        ] {
            let ca = dir.path().join("ca.pem");
            std::fs::write(&ca, text).expect("write");
            let tls = crate::config::raw::RawTls {
                ca_file: ca.to_string_lossy().into_owned(),
                cert_file: None,
                key_file: None,
            };
            assert!(
                matches!(tls_config(&tls), Err(ConnError::NoCertificate { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn half_client_auth_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, TEST_CA).expect("write");
        let tls = crate::config::raw::RawTls {
            ca_file: ca.to_string_lossy().into_owned(),
            cert_file: Some("c.pem".into()),
            key_file: None,
        };
        assert!(matches!(tls_config(&tls), Err(ConnError::HalfClientAuth)));
    }
}
