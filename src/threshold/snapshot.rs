//! The serialised form of [`RollingQuantile`]: its blocks as they are, checked on the
//! way in (a snapshot is data from disk: no layout it holds may break the invariants
//! the quantile relies on).

use serde::{Deserialize, Serialize};

use super::{RollingQuantile, ThresholdError, check_params, kept_ranks};

/// Serialised form of [`RollingQuantile`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QuantileSnapshot {
    pub(super) capacity: usize,
    pub(super) q: f64,
    pub(super) block: usize,
    pub(super) open: Vec<f32>,
    pub(super) sealed: Vec<Vec<f32>>,
}

impl From<RollingQuantile> for QuantileSnapshot {
    fn from(r: RollingQuantile) -> Self {
        Self {
            capacity: r.capacity,
            q: r.q,
            block: r.block,
            open: r.open,
            sealed: r.sealed.into_iter().map(Vec::from).collect(),
        }
    }
}

impl TryFrom<QuantileSnapshot> for RollingQuantile {
    type Error = ThresholdError;

    fn try_from(s: QuantileSnapshot) -> Result<Self, Self::Error> {
        check_params(s.capacity, s.q)?;
        if s.block == 0 || s.block > s.capacity || s.open.len() >= s.block {
            return Err(ThresholdError::Layout("block size or open block length"));
        }
        let len = s.open.len() + s.sealed.len() * s.block;
        if len > s.capacity {
            return Err(ThresholdError::TooManyValues {
                len,
                capacity: s.capacity,
            });
        }
        let values = s.open.iter().chain(s.sealed.iter().flatten());
        if let Some((index, &v)) = values.enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ThresholdError::NotFinite {
                index,
                value: f64::from(v),
            });
        }
        let heads = kept_ranks(s.block).count();
        let sorted = |b: &[f32]| b.windows(2).all(|w| w[0] >= w[1]);
        if s.sealed.iter().any(|b| b.len() != heads || !sorted(b)) {
            return Err(ThresholdError::Layout("sealed block summary"));
        }
        let mut open = s.open;
        open.sort_unstable_by(|a, b| b.total_cmp(a));
        open.reserve_exact(s.block - open.len());
        let mut r = Self {
            capacity: s.capacity,
            q: s.q,
            block: s.block,
            open,
            sealed: s.sealed.into_iter().map(Vec::into_boxed_slice).collect(),
            merged: Vec::new(),
        };
        r.remerge();
        Ok(r)
    }
}
