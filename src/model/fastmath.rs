//! Inlined `tanh` and `exp` for the scoring hot path, and their `f32` forms for the
//! training pass.
//!
//! libm's `tanh` is an opaque call of ~30 ns and was 60 % of the time to score a 1×32
//! window with the default tanh net. These versions are plain arithmetic the compiler
//! inlines, accurate to a few ulp (tested against libm below), so training and scoring
//! use them everywhere and the gradient check still holds. The `f32` forms are the same
//! algorithm with `f32` constants and a shorter series.

use std::f64::consts::LOG2_E;

/// 2^52 + 2^51: adding and subtracting it rounds an f64 of magnitude < 2^51 to the
/// nearest integer without a libm call (round-to-nearest-even is the FPU default).
const ROUNDER: f64 = 6_755_399_441_055_744.0;

/// 1/2!, 1/3!, …, 1/13!.
const INV_FACT: [f64; 12] = [
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5_040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
    1.0 / 6_227_020_800.0,
];

/// Splits `e^x` as `2^k · (1 + m)`, returning `(2^k, m)` with `m = e^r − 1` computed
/// without cancellation, for `x` in [−700, 700].
#[inline(always)]
fn split_exp(x: f64) -> (f64, f64) {
    let kr = x * LOG2_E + ROUNDER;
    let k = kr - ROUNDER;
    // Cody–Waite: ln 2 split so that k·LN2_HI is exact for |k| < 2^11.
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // e^r − 1 for |r| ≤ ln2/2 by its Taylor series to r^13 (next term < 5e-16·|r|):
    // r + r²·(1/2! + r/3! + … + r^11/13!), Horner from the highest term.
    let mut p = INV_FACT[11];
    for c in INV_FACT[..11].iter().rev() {
        p = p * r + c;
    }
    // 2^k from its exponent bits; |k| ≤ 1010 here, inside the normal range. `kr` lies
    // in [2^52, 2^53), where one ulp is 1, so its bits are ROUNDER's bits + k: integer
    // arithmetic on the bits (no float → int conversion) keeps the loop vectorisable.
    let k_bits = kr.to_bits().wrapping_sub(ROUNDER.to_bits());
    let scale = f64::from_bits(k_bits.wrapping_add(1023) << 52);
    (scale, r + r * r * p)
}

/// `e^x − 1`, accurate for small `x` (no cancellation), for `x` in [−700, 700].
#[inline(always)]
fn expm1(x: f64) -> f64 {
    let (scale, m) = split_exp(x);
    scale * m + (scale - 1.0)
}

/// `tanh(x)` via `expm1(2x) / (expm1(2x) + 2)`; saturates to ±1 beyond |x| = 20, where
/// tanh is 1 to within 1e-17.
#[inline(always)]
pub(crate) fn tanh(x: f64) -> f64 {
    let x = x.clamp(-20.0, 20.0);
    let e = expm1(2.0 * x);
    e / (e + 2.0)
}

/// `e^x` for `x` clamped to [−700, 700] (the sigmoid never needs more).
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    let (scale, m) = split_exp(x.clamp(-700.0, 700.0));
    scale + scale * m
}

/// 2^23 + 2^22: [`ROUNDER`] for `f32` (magnitudes < 2^22).
const ROUNDER_F32: f32 = 12_582_912.0;

/// 1/2!, 1/3!, …, 1/8!.
const INV_FACT_F32: [f32; 7] = [
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5_040.0,
    1.0 / 40_320.0,
];

/// [`split_exp`] in `f32`, for `x` in [−87, 87].
#[inline(always)]
fn split_exp_f32(x: f32) -> (f32, f32) {
    let kr = x * std::f32::consts::LOG2_E + ROUNDER_F32;
    let k = kr - ROUNDER_F32;
    // ln 2 split so that k·LN2_HI is exact for |k| < 2^9: LN2_HI = 0.693145751953125
    // has 15 significant bits, LN2_LO is ln 2 − LN2_HI rounded.
    const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
    const LN2_LO: f32 = 1.428_606_8e-6;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // e^r − 1 for |r| ≤ ln2/2 to r^8 (next term < 6e-10·|r|, under half an f32 ulp).
    let mut p = INV_FACT_F32[6];
    for c in INV_FACT_F32[..6].iter().rev() {
        p = p * r + c;
    }
    // 2^k from its exponent bits; |k| ≤ 126 here, inside the normal range.
    let k_bits = kr.to_bits().wrapping_sub(ROUNDER_F32.to_bits());
    let scale = f32::from_bits(k_bits.wrapping_add(127) << 23);
    (scale, r + r * r * p)
}

/// [`tanh`] in `f32`; saturates to ±1 beyond |x| = 9, where tanh rounds to 1 in `f32`.
#[inline(always)]
pub(crate) fn tanh_f32(x: f32) -> f32 {
    let x = x.clamp(-9.0, 9.0);
    let (scale, m) = split_exp_f32(2.0 * x);
    let e = scale * m + (scale - 1.0);
    e / (e + 2.0)
}

/// [`exp`] in `f32`, for `x` clamped to [−87, 87] (inside the normal range).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    let (scale, m) = split_exp_f32(x.clamp(-87.0, 87.0));
    scale + scale * m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Error of `got` in units of the `f32` epsilon relative to the exact `want`.
    fn ulps_f32(got: f32, want: f64) -> f64 {
        ((got as f64 - want) / want.abs().max(f32::MIN_POSITIVE as f64) / f32::EPSILON as f64).abs()
    }

    #[test]
    fn f32_tanh_and_exp_match_libm_to_a_few_f32_ulp() {
        let (mut worst_tanh, mut worst_exp): (f64, f64) = (0.0, 0.0);
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4 * 1.37;
            let want = (x as f64).tanh();
            if want != 0.0 {
                worst_tanh = worst_tanh.max(ulps_f32(tanh_f32(x), want));
            } else {
                assert_eq!(tanh_f32(x), 0.0);
            }
        }
        for x in [1e-30f32, 1e-6, -3e-5, 8.9, -9.5, 25.0] {
            worst_tanh = worst_tanh.max(ulps_f32(tanh_f32(x), (x as f64).tanh()));
        }
        for i in -8_700..=8_700 {
            let x = i as f32 * 1e-2;
            worst_exp = worst_exp.max(ulps_f32(exp_f32(x), (x as f64).exp()));
        }
        assert!(worst_tanh < 8.0, "tanh: worst error {worst_tanh} ulp");
        assert!(worst_exp < 8.0, "exp: worst error {worst_exp} ulp");
    }

    fn ulps(a: f64, b: f64) -> f64 {
        ((a - b) / b.abs().max(f64::MIN_POSITIVE) / f64::EPSILON).abs()
    }

    #[test]
    fn tanh_matches_libm_to_a_few_ulp() {
        let mut worst: f64 = 0.0;
        for i in -200_000..=200_000 {
            let x = i as f64 * 1e-4 * 1.37;
            let (got, want) = (tanh(x), x.tanh());
            if want != 0.0 {
                worst = worst.max(ulps(got, want));
            } else {
                assert_eq!(got, 0.0);
            }
        }
        for x in [1e-300, 1e-12, -3e-9, 19.9, -25.0, 700.0] {
            worst = worst.max(ulps(tanh(x), x.tanh()));
        }
        assert!(worst < 8.0, "worst error {worst} ulp");
    }

    #[test]
    fn exp_matches_libm_to_a_few_ulp() {
        let mut worst: f64 = 0.0;
        for i in -70_000..=70_000 {
            let x = i as f64 * 1e-2;
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst < 8.0, "worst error {worst} ulp");
    }
}
