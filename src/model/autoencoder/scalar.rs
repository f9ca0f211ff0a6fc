//! The float type of the training pass, [`Real`], and the arithmetic the pass needs from
//! it ([`Scalar`]).
//!
//! Training runs in `f32`: the pass is most of a fit, and its loops vectorise, so `f32`
//! does twice the work per instruction. The master weights, Adam's moments, scoring and
//! snapshots stay `f64`; a fit rounds the weights to `f32` for the pass after every Adam
//! step and widens the gradients back. [`Scalar`] is implemented for `f64` too so the
//! gradient check can run the very same kernels in double precision.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use super::params::Activation;
use crate::model::fastmath;

/// The training pass's float type: inputs, activations, deltas and gradients. The one
/// place that decides it.
pub(super) type Real = f32;

/// A float the training kernels can run on (`f32` or `f64`).
pub(super) trait Scalar:
    Copy
    + Debug
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    /// The nearest value (rounded to nearest for `f32`).
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn abs(self) -> Self;
    /// The larger of the two (relu).
    fn max(self, other: Self) -> Self;
    /// `fastmath::tanh` or its `f32` form.
    fn tanh(self) -> Self;
    /// `fastmath::exp` or its `f32` form.
    fn exp(self) -> Self;
}

/// One [`Scalar`] impl for a float type: its own operations, and the `fastmath`
/// functions of its width.
macro_rules! impl_scalar {
    ($t:ty, $tanh:path, $exp:path) => {
        impl Scalar for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                self.abs()
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                self.max(other)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                $exp(self)
            }
        }
    };
}

impl_scalar!(f64, fastmath::tanh, fastmath::exp);
impl_scalar!(f32, fastmath::tanh_f32, fastmath::exp_f32);

/// [`Activation::apply_slice`] in `F`: one `match` for the slice so each arm vectorises.
#[inline(always)]
pub(super) fn activate<F: Scalar>(act: Activation, z: &mut [F]) {
    match act {
        Activation::Relu => z.iter_mut().for_each(|v| *v = v.max(F::ZERO)),
        Activation::Tanh => z.iter_mut().for_each(|v| *v = v.tanh()),
        Activation::Sigmoid => z.iter_mut().for_each(|v| *v = F::ONE / (F::ONE + (-*v).exp())),
        Activation::Linear => {}
    }
}

/// [`Activation::derivative_from_output`] in `F`.
#[inline(always)]
pub(super) fn derivative_from_output<F: Scalar>(act: Activation, a: F) -> F {
    match act {
        Activation::Relu => {
            if a > F::ZERO {
                F::ONE
            } else {
                F::ZERO
            }
        }
        Activation::Tanh => F::ONE - a * a,
        Activation::Sigmoid => a * (F::ONE - a),
        Activation::Linear => F::ONE,
    }
}
