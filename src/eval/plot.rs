//! Replay plots (in progress).
