//! Values from the network made safe for where they end up: a log line
//! ([`Escaped`]), an MQTT topic level and a Prometheus label value
//! ([`encode_bounded`], injective percent-encoding).
//!
//! ## Logs
//!
//! Sensor ids, topics and payload text are chosen by whoever can publish to the
//! broker. Logged raw, a newline forges a whole log line and `ESC[2J` clears the
//! terminal of the operator reading it. [`Escaped`] writes them Debug-style instead:
//! ASCII printable characters as they are, a backslash doubled, control characters
//! and invisible Unicode (bidi overrides, zero-width characters) as `\n`, `\u{1b}` and
//! so on, so every logged value is one visible, unambiguous run of text. It is bounded
//! too: a long value is cut after [`MAX_LOGGED_CHARS`] characters and marked with `…`.
//!
//! Every log site that prints a value from the network wraps it:
//! `warn!(sensor = %Escaped(id.as_str()), "…")` or [`crate::reading::SensorId::escaped`].

use std::fmt::{self, Write};

/// Characters of one value written before it is cut.
pub const MAX_LOGGED_CHARS: usize = 256;

/// Displays the wrapped text escaped; see the module docs.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, ch) in self.0.chars().enumerate() {
            if i == MAX_LOGGED_CHARS {
                return f.write_char('…');
            }
            match ch {
                '\\' => f.write_str("\\\\")?,
                ' '..='~' => f.write_char(ch)?,
                // `escape_debug` keeps printable Unicode (é, ü, 温) and escapes control
                // and invisible characters; ASCII never gets here, so quotes stay as
                // they are.
                _ => write!(f, "{}", ch.escape_debug())?,
            }
        }
        Ok(())
    }
}

/// Escapes an owned message (e.g. an error's `to_string()` that quotes payload text).
pub fn escape(text: &str) -> String {
    Escaped(text).to_string()
}

/// Control characters, whitespace other than the space, and invisible characters that
/// would make two different ids look the same or reorder text: soft hyphen, zero-width
/// spaces, bidi embeddings, overrides and isolates, BOM, interlinear annotations and
/// non-characters.
pub fn is_invisible(ch: char) -> bool {
    ch.is_control()
        || (ch.is_whitespace() && ch != ' ')
        || matches!(ch,
            '\u{00AD}'                    // soft hyphen
            | '\u{200B}'..='\u{200F}'     // zero-width spaces, LRM/RLM
            | '\u{202A}'..='\u{202E}'     // bidi embeddings/overrides
            | '\u{2060}'..='\u{206F}'     // word joiner, invisible operators, bidi isolates
            | '\u{FEFF}'                  // BOM / zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}'     // interlinear annotation
            | '\u{FDD0}'..='\u{FDEF}')    // non-characters
        || (u32::from(ch) & 0xFFFE) == 0xFFFE // U+xxFFFE / U+xxFFFF non-characters
}

/// Bytes of the marker and hash that end a cut value: `%~` and 32 hex digits.
pub const CUT_SUFFIX_BYTES: usize = 2 + 32;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Encodes `s` injectively into at most `max_bytes` bytes (`max_bytes` >
/// [`CUT_SUFFIX_BYTES`]).
///
/// `%` and every character for which `reserved(index, ch)` holds are written as one
/// `%XX` per UTF-8 byte; everything else is kept. The empty string becomes `%`, which
/// nothing else produces. A longer result is cut (never inside a character or a `%XX`)
/// to `max_bytes - 34` bytes and ends with `%~` and 32 hex digits of the SHA-256 of the
/// whole of `s`: `%~` never occurs in an uncut result, and two long values collide
/// only if their SHA-256 share 128 bits.
pub fn encode_bounded(s: &str, max_bytes: usize, reserved: impl Fn(usize, char) -> bool) -> String {
    encode_bounded_with(s, max_bytes, Marks::PERCENT, reserved)
}

/// The escape character and cut marker of an injective encoding.
#[derive(Clone, Copy, Debug)]
pub struct Marks {
    /// Starts every `<escape>XX` (uppercase hex): `%` in topics and labels.
    pub escape: char,
    /// Follows `escape` to mark a cut value; must not be an uppercase hex digit, so no
    /// uncut result contains the pair.
    pub cut: char,
}

impl Marks {
    /// `%XX` and `%~`: topic levels and metric labels.
    pub const PERCENT: Marks = Marks {
        escape: '%',
        cut: '~',
    };
    /// `_XX` and `_x`: identifiers limited to `[a-zA-Z0-9_-]` (Home Assistant object ids).
    pub const UNDERSCORE: Marks = Marks {
        escape: '_',
        cut: 'x',
    };
}

/// [`encode_bounded`] with another escape character and cut marker: `marks.escape` and
/// every reserved character become `<escape>XX`, a cut value ends in `<escape><cut>`
/// and 32 hex digits, and the empty string becomes `<escape>` alone.
pub fn encode_bounded_with(
    s: &str,
    max_bytes: usize,
    marks: Marks,
    reserved: impl Fn(usize, char) -> bool,
) -> String {
    if s.is_empty() {
        return marks.escape.to_string();
    }
    let mut out = String::with_capacity(s.len().min(max_bytes));
    // Where the prefix of a cut result ends: the last boundary within the budget.
    let budget = max_bytes.saturating_sub(CUT_SUFFIX_BYTES);
    let mut cut_at = 0;
    for (i, ch) in s.chars().enumerate() {
        if ch == marks.escape || reserved(i, ch) {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                push_hex(&mut out, marks.escape, b);
            }
        } else {
            out.push(ch);
        }
        if out.len() <= budget {
            cut_at = out.len();
        }
    }
    if out.len() > max_bytes {
        let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
        out.truncate(cut_at);
        out.push(marks.escape);
        out.push(marks.cut);
        for &b in &digest.as_ref()[..16] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
    out
}

fn push_hex(out: &mut String, escape: char, b: u8) {
    out.push(escape);
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xF)]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_text_is_escaped_for_logs() {
        let cases = [
            ("plain id", "pump-7.temp", "pump-7.temp"),
            (
                "newline forges no line",
                "a\n2026 INFO forged",
                "a\\n2026 INFO forged",
            ),
            ("carriage return", "a\rb", "a\\rb"),
            ("escape sequence", "\u{1b}[2J", "\\u{1b}[2J"),
            ("nul and tab", "a\0\tb", "a\\0\\tb"),
            ("backslash doubled", "a\\nb", "a\\\\nb"),
            ("quotes kept", "\"q\" 'q'", "\"q\" 'q'"),
            ("printable unicode kept", "température 温", "température 温"),
            ("bidi override", "a\u{202E}b", "a\\u{202e}b"),
            ("zero-width space", "a\u{200B}b", "a\\u{200b}b"),
            ("c1 control", "a\u{9b}b", "a\\u{9b}b"),
        ];
        for (name, input, want) in cases {
            let got = escape(input);
            assert_eq!(got, want, "{name}");
            assert!(!got.chars().any(char::is_control), "{name}: {got:?}");
        }
    }

    #[test]
    fn long_values_are_cut_and_marked() {
        let long = "x".repeat(MAX_LOGGED_CHARS + 10);
        let got = escape(&long);
        assert_eq!(got.chars().count(), MAX_LOGGED_CHARS + 1);
        assert!(got.ends_with('…'));
        assert_eq!(escape(&long[..MAX_LOGGED_CHARS]), long[..MAX_LOGGED_CHARS]);
    }
}
