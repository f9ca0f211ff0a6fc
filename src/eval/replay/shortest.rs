//! Float text for the replay CSV, byte for byte what `format!("{v}")` writes for an
//! `f64` (the shortest digits that read back to the same value, in plain decimal
//! without an exponent), built from the `ryu` crate's digits.
//!
//! Why not `format!`: the replay output has five floats a row, and the standard
//! library's formatter with its allocation was half the time of writing it. Both pick
//! the same digits (the shortest string inside the value's rounding interval, the one
//! closest to the value), so only the layout is converted here; a test compares the two
//! on a million random bit patterns.

/// A reusable buffer that formats one float at a time. It keeps the last value's
/// text: one per column, a value repeated from the row before (a threshold, a flat
/// signal, an anomaly score of 0) is not formatted again.
#[derive(Default)]
pub(super) struct Shortest {
    ryu: ryu::Buffer,
    text: Vec<u8>,
    /// The bits of the value `text` holds, if any.
    last: Option<u64>,
}

impl Shortest {
    /// `v` as `format!("{v}")` writes it.
    pub(super) fn format(&mut self, v: f64) -> &[u8] {
        if self.last == Some(v.to_bits()) {
            return &self.text;
        }
        self.last = Some(v.to_bits());
        self.text.clear();
        if v == 0.0 {
            // Common (the anomaly score of most rows); std writes the sign of −0.
            self.text
                .extend_from_slice(if v.is_sign_negative() { b"-0" } else { b"0" });
            return &self.text;
        }
        if !v.is_finite() || tie_possible(v) {
            // NaN, ±inf and the rare possible tie: std's own text is the definition.
            use std::io::Write;
            // Cannot fail: writing into a Vec does not fail.
            write!(self.text, "{v}").expect("write to a Vec");
            return &self.text;
        }
        let raw = self.ryu.format_finite(v).as_bytes();
        if !raw.contains(&b'e') {
            // Plain decimal (ryu writes one for 1e-5 <= |v| < 1e16): the same text as
            // std's but for a whole number's ".0".
            let text = raw.strip_suffix(b".0").unwrap_or(raw);
            self.text.extend_from_slice(text);
            return &self.text;
        }
        let (negative, raw) = match raw.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, raw),
        };
        let (mantissa, exponent) = match raw.iter().position(|&c| c == b'e') {
            Some(e) => (&raw[..e], parse_exponent(&raw[e + 1..])),
            None => (raw, 0),
        };
        let mut digits = [0u8; 24];
        let (n, point) = significant_digits(mantissa, exponent, &mut digits);
        let digits = &digits[..n];
        if negative {
            self.text.push(b'-');
        }
        // As std's `digits_to_dec_str` with no minimum of fraction digits.
        let len = n as i32;
        if point <= 0 {
            self.text.extend_from_slice(b"0.");
            self.text
                .extend(std::iter::repeat_n(b'0', point.unsigned_abs() as usize));
            self.text.extend_from_slice(digits);
        } else if point < len {
            let (int, frac) = digits.split_at(point as usize);
            self.text.extend_from_slice(int);
            self.text.push(b'.');
            self.text.extend_from_slice(frac);
        } else {
            self.text.extend_from_slice(digits);
            self.text
                .extend(std::iter::repeat_n(b'0', (point - len) as usize));
        }
        &self.text
    }
}

/// Whether `v` may lie exactly halfway between two shortest candidates, where `ryu`
/// rounds the last digit to even and std rounds it up (`…933.25` → `…933.2` against
/// `…933.3`). A tie needs the exact decimal value to have at most 18 significant digits
/// (at most 17 shortest digits, then a 5): for `v = m · 2^e` with `m` odd that is
/// `m · 5^-e < 10^18` when `e < 0`, and, for an integer, `m` divisible by `5^(e+1)` (the
/// integer stripped of its trailing decimal zeros, `m / 5^e`, must end in 5). Values
/// this admits are few (short decimals such as 0.5, some integers) and go to std.
fn tie_possible(v: f64) -> bool {
    let bits = v.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    let zeros = m.trailing_zeros();
    let (m, e) = (m >> zeros, e + zeros as i32);
    if e < 0 {
        // 5^27 > 10^18, so a longer tail is never short.
        let k = e.unsigned_abs();
        k <= 27 && u128::from(m) * 5u128.pow(k) < 10u128.pow(18)
    } else {
        let mut power = 5u64;
        for _ in 0..e {
            match power.checked_mul(5) {
                Some(p) if p <= m => power = p,
                _ => return false,
            }
        }
        m % power == 0
    }
}

/// `ryu`'s exponent after the `e`: an optional `-` and decimal digits.
fn parse_exponent(text: &[u8]) -> i32 {
    let (sign, digits) = match text.split_first() {
        Some((b'-', rest)) => (-1, rest),
        _ => (1, text),
    };
    sign * digits.iter().fold(0i32, |e, &c| e * 10 + i32::from(c - b'0'))
}

/// Copies the significant digits of `mantissa` × 10^`exponent` into `out` (no leading
/// or trailing zero; `mantissa` is a non-zero decimal such as `0.0012` or `1.5`) and
/// returns their count and the position of the decimal point: the value is
/// 0.d₁d₂…dₙ × 10^point.
fn significant_digits(mantissa: &[u8], exponent: i32, out: &mut [u8; 24]) -> (usize, i32) {
    let mut n = 0;
    // Digits seen before the '.', and leading zeros dropped (each moves the point left).
    let mut before_point = None;
    let mut dropped = 0i32;
    for &c in mantissa {
        match c {
            b'.' => before_point = Some(n as i32 + dropped),
            b'0' if n == 0 => dropped += 1,
            _ => {
                out[n] = c;
                n += 1;
            }
        }
    }
    let before_point = before_point.unwrap_or(n as i32 + dropped);
    while n > 0 && out[n - 1] == b'0' {
        n -= 1;
    }
    (n, before_point - dropped + exponent)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn floats_are_written_as_format_writes_them() {
        let mut shortest = Shortest::default();
        let mut check = |v: f64| {
            let want = format!("{v}");
            assert_eq!(
                std::str::from_utf8(shortest.format(v)).unwrap(),
                want,
                "bits {:#x}",
                v.to_bits()
            );
        };
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            10844.0,
            1e15,
            1e16,
            1e17,
            1.5e300,
            1e-5,
            1e-7,
            0.001,
            0.1 + 0.2,
            123.456,
            1e21,
            1e22,
            f64::from_bits(0xc31e_150b_5b76_8ef5), // −2116846956159933.25, a tie
            2f64.powi(60),
            2.5e25,
            0.125,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            // Twice: the second comes from the kept text of the first.
            check(v);
            check(v);
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(12);
        for _ in 0..1_000_000 {
            // Any bit pattern, and values in the ranges a replay writes.
            check(f64::from_bits(rng.r#gen()));
            check(rng.gen_range(-1e6..1e6));
            check(rng.gen_range(0.0..1.0) * 10f64.powi(rng.gen_range(-12..12)));
        }
    }

    #[test]
    fn significant_digits_drop_zeros_and_place_the_point() {
        let cases: [(&str, i32, &str, i32); 6] = [
            ("1.5", 0, "15", 1),
            ("0.001", 0, "1", -2),
            ("100.0", 0, "1", 3),
            ("1", 16, "1", 17),
            ("1.234", -7, "1234", -6),
            ("120.05", 0, "12005", 3),
        ];
        for (mantissa, exponent, want, point) in cases {
            let mut out = [0u8; 24];
            let (n, p) = significant_digits(mantissa.as_bytes(), exponent, &mut out);
            assert_eq!(
                (std::str::from_utf8(&out[..n]).unwrap(), p),
                (want, point),
                "{mantissa}e{exponent}"
            );
        }
    }
}
