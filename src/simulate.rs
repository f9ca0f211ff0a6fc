//! Synthetic telemetry (work in progress).
