//! Ingest: everything between the broker and the detector's `Reading` channel.
//!
//! It owns turning raw MQTT messages into [`crate::reading::Reading`]s ([`payload`]:
//! pure bytes → records, no IO). It does not window, score or alert; the detector does.
pub mod mqtt;
pub mod payload;
pub mod route;
pub mod sensors;
pub mod shards;
