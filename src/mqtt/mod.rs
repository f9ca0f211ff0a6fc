//! The MQTT layer shared by the subscriber ([`crate::ingest`]) and the publisher
//! ([`crate::publish`]): connection options and credentials ([`conn`]), the reconnect
//! policy ([`backoff`]) and one protocol-neutral connection for MQTT 3.1.1 and 5
//! ([`net`]). It knows nothing about telemetry, alerts or sensors.
pub mod backoff;
pub mod conn;
pub mod net;
