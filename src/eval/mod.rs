//! Offline evaluation: reading CSV series, replaying them through the detector, and
//! (in submodules) scoring against labelled corpora.

pub mod replay;
pub mod series;
