//! Ingest: everything between the broker and the detector's `Reading` channel.
//!
//! It owns turning raw MQTT messages into [`crate::reading::Reading`]s ([`payload`]:
//! pure bytes → records, no IO; [`sensors`]: which sensors and channel sets are let
//! through; [`assemble`]: partial updates → full readings). It does not window, score
//! or alert; the detector does.
pub mod assemble;
#[cfg(test)]
mod examples;
pub mod mqtt;
pub mod payload;
pub mod route;
pub mod sensors;
pub mod shards;
