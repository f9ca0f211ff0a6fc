//! anomalyd: streaming anomaly detection for edge gateways.
//!
//! Architecture (data flows top to bottom):
//!
//! ```text
//! broker → ingest (MQTT poll) → payload parse → Reading
//!        → detector: per-sensor window → normalise → AE score ∥ PCA score → rolling quantile → alert state
//!        → publisher → broker (alert events, retained state, Home Assistant discovery)
//! side paths: detector ⇄ trainer (training windows out, new models back)
//!             detector → store (snapshots)      every stage → metrics
//! ```
//!
//! The detector core ([`detector`], [`window`], [`model`], [`threshold`], [`score`],
//! [`range`], [`alert`], [`trainer`]) is sans-IO: the daemon, `replay` and `eval` all
//! drive the same code.
#![warn(missing_docs, unreachable_pub)]

pub mod alert;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod detector;
pub mod escape;
pub mod eval;
pub mod ingest;
pub mod likelihood;
pub mod metrics;
pub mod model;
pub mod mqtt;
pub mod notify;
pub mod publish;
pub mod range;
pub mod ratelimit;
pub mod reading;
pub mod score;
pub mod simulate;
pub mod store;
pub mod threshold;
pub mod trainer;
pub mod window;
