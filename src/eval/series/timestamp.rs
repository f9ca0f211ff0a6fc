//! Timestamp cells: [`parse_timestamp`], the one place offline code reads time, with its
//! hand-written fast path for the common `YYYY-MM-DD HH:MM[:SS[.f]]` layout and the
//! chrono fallbacks it must agree with.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Parses a timestamp cell, the one place offline code reads time:
///
/// - RFC 3339 (`2014-04-01T00:00:00Z`, `…+02:00`);
/// - `YYYY-MM-DD HH:MM[:SS[.f]]` with a space or a `T`, taken as UTC (NAB, SKAB);
/// - a unix epoch number: seconds, or milliseconds / microseconds / nanoseconds when it
///   is at least 10¹¹, 10¹⁴, 10¹⁷.
///
/// Returns unix seconds.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let t = text.trim();
    if let Some(secs) = parse_plain_datetime(t.as_bytes()) {
        return Some(secs);
    }
    if let Ok(n) = t.parse::<f64>() {
        if !n.is_finite() {
            return None;
        }
        return Some(crate::reading::EpochUnit::Auto.to_secs(n));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros() as f64 / 1e6);
    }
    parse_naive_with_chrono(t)
}

/// `YYYY-MM-DD HH:MM[:SS[.f]]` (space or `T`) as UTC, by chrono: what
/// [`parse_plain_datetime`] must match.
fn parse_naive_with_chrono(t: &str) -> Option<f64> {
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .into_iter()
    .find_map(|fmt| NaiveDateTime::parse_from_str(t, fmt).ok())
    .map(|dt| dt.and_utc().timestamp_micros() as f64 / 1e6)
}

/// The common layout `YYYY-MM-DD HH:MM[:SS[.f]]` (space or `T`, UTC; NAB and SKAB write
/// it) read by hand: chrono's format-string parser was half the time of reading a NAB
/// file. It returns exactly what [`parse_timestamp`]'s chrono path returns for the texts
/// it accepts (whole microseconds, as `timestamp_micros`), and `None` for anything else
/// (other layouts, out-of-range fields, a leap second, more than 9 fraction digits), which
/// then takes the general path.
fn parse_plain_datetime(b: &[u8]) -> Option<f64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let cells = b.get(range)?;
        (cells.iter()).try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let sep = |i: usize, want: &[u8]| b.get(i).is_some_and(|c| want.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b" T") && sep(13, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute) = (digits(11..13)?, digits(14..16)?);
    let (second, nanos) = match b.len() {
        16 => (0, 0),
        19 if sep(16, b":") => (digits(17..19)?, 0),
        21..=29 if sep(16, b":") && sep(19, b".") => {
            let fraction = &b[20..];
            let value = digits(20..b.len())?;
            (digits(17..19)?, value * 10i64.pow(9 - fraction.len() as u32))
        }
        _ => return None,
    };
    // chrono's calendar checks and arithmetic are cheap; its format-string parser is
    // what cost the time.
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        u32::try_from(month).ok()?,
        u32::try_from(day).ok()?,
    )?;
    let nanos = u32::try_from(nanos).ok()?;
    let time = date.and_hms_nano_opt(
        u32::try_from(hour).ok()?,
        u32::try_from(minute).ok()?,
        u32::try_from(second).ok()?,
        nanos,
    )?;
    Some(time.and_utc().timestamp_micros() as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_form_agree() {
        let a = parse_timestamp("2013-12-02 21:15:00").unwrap();
        assert_eq!(a, 1_386_018_900.0);
        for (name, text) in [
            ("NAB, fractional", "2013-12-02 21:15:00.000000"),
            ("T, no zone", "2013-12-02T21:15:00"),
            ("no seconds", "2013-12-02 21:15"),
            ("RFC 3339", "2013-12-02T21:15:00Z"),
            ("RFC 3339 offset", "2013-12-02T22:15:00+01:00"),
            ("unix seconds", "1386018900"),
            ("unix ms (Date.now())", "1386018900000"),
            ("unix µs", "1386018900000000"),
            ("unix ns", "1386018900000000000"),
            ("padded", "  2013-12-02 21:15:00 "),
        ] {
            assert_eq!(parse_timestamp(text), Some(a), "{name}: {text}");
        }
        assert_eq!(
            parse_timestamp("2020-03-09 10:14:33.5").map(|t| t.fract()),
            Some(0.5)
        );
        assert_eq!(parse_timestamp("12"), Some(12.0), "small numbers are seconds");
        for bad in ["yesterday", "", "NaN", "inf", "2013-13-02 21:15:00"] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    /// The hand-written reader of `YYYY-MM-DD HH:MM[:SS[.f]]` must agree with chrono
    /// bit for bit wherever it answers, and leave to chrono what it does not.
    #[test]
    fn plain_datetimes_read_by_hand_match_chrono() {
        use rand::{Rng, SeedableRng};
        let chrono_secs = parse_naive_with_chrono;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut answered = 0;
        for _ in 0..200_000 {
            let mut t = format!(
                "{:04}-{:02}-{:02}{}{:02}:{:02}",
                rng.gen_range(1..10_000),
                rng.gen_range(0..14),
                rng.gen_range(0..33),
                if rng.gen_bool(0.5) { ' ' } else { 'T' },
                rng.gen_range(0..25),
                rng.gen_range(0..61),
            );
            if rng.gen_bool(0.8) {
                t += &format!(":{:02}", rng.gen_range(0..61));
                let places = rng.gen_range(0..11);
                if places > 0 {
                    t += &format!(".{}", rng.gen_range(0..10u64.pow(places)));
                }
            }
            if let Some(got) = parse_plain_datetime(t.as_bytes()) {
                answered += 1;
                let want = chrono_secs(&t).unwrap_or_else(|| panic!("chrono rejects {t:?}"));
                assert_eq!(got.to_bits(), want.to_bits(), "{t:?}");
            }
            assert_eq!(
                parse_timestamp(&t).map(f64::to_bits),
                chrono_secs(&t).map(f64::to_bits),
                "{t:?}"
            );
        }
        assert!(
            answered > 100_000,
            "the fast path answers most valid texts: {answered}"
        );
        for (name, text) in [
            ("leap day", "2016-02-29 12:00:00"),
            ("epoch", "1970-01-01 00:00:00.000001"),
            ("before the epoch", "1969-12-31 23:59:59.5"),
        ] {
            let got = parse_plain_datetime(text.as_bytes()).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(Some(got), chrono_secs(text), "{name}");
        }
        for (name, text) in [
            ("not a leap year", "2015-02-29 12:00:00"),
            ("leap second", "2016-12-31 23:59:60"),
            ("offset", "2016-12-31 23:59:59+01:00"),
            ("one-digit month", "2016-1-31 23:59:59"),
            ("ten fraction digits", "2016-01-31 23:59:59.0123456789"),
        ] {
            assert_eq!(parse_plain_datetime(text.as_bytes()), None, "{name}");
        }
    }
}
