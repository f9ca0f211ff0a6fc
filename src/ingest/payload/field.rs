//! Where a value sits in a JSON payload: a top-level key (`"temperature"`) or an RFC 6901
//! JSON pointer (`"/fields/temperature"`), and the readable name a pointer channel
//! carries in readings, alerts and snapshots (its last token).
//!
//! The one place a configured field text is interpreted: `check-config` validates with
//! [`Field::parse`], the parser reads with [`Field::get`].

use std::borrow::Cow;

use super::object::{Object, Val};

/// Why a configured field is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The field text is empty.
    #[error("must name a field, got \"\"")]
    Empty,
    /// A `~` not followed by `0` or `1` (RFC 6901 §3).
    #[error("is not a JSON pointer: `~` must be followed by 0 or 1 (RFC 6901), got {0:?}")]
    BadEscape(String),
    /// A pointer whose last token is empty (`"/"`, `"/fields/"`): no readable name.
    #[error("must end with a field name, got {0:?}")]
    NoName(String),
}

/// A configured field: a top-level key, or a JSON pointer when it starts with `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// As configured.
    text: String,
    /// The path from the top level, unescaped: the key itself, or the pointer's
    /// tokens. Never empty. The first is the top-level key the field lies under (what
    /// automatic channel discovery must leave alone), the last its readable name.
    tokens: Vec<String>,
    /// Whether `text` is a JSON pointer.
    pointer: bool,
}

impl Field {
    /// Reads a configured field text.
    ///
    /// # Errors
    ///
    /// [`FieldError`] for an empty text, a bad `~` escape or a pointer ending in `/`.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let Some(pointer) = text.strip_prefix('/') else {
            return if text.is_empty() {
                Err(FieldError::Empty)
            } else {
                Ok(Self::key(text))
            };
        };
        let bad = |token: &str| {
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                    return true;
                }
            }
            false
        };
        if pointer.split('/').any(bad) {
            return Err(FieldError::BadEscape(text.to_owned()));
        }
        if pointer.ends_with('/') || pointer.is_empty() {
            return Err(FieldError::NoName(text.to_owned()));
        }
        Ok(Self {
            text: text.to_owned(),
            tokens: pointer.split('/').map(|t| unescape(t).into_owned()).collect(),
            pointer: true,
        })
    }

    /// A top-level key, taken as it is (even one starting with `/` is a key here):
    /// the built-in defaults and tests.
    pub fn key(key: &str) -> Self {
        Self {
            text: key.to_owned(),
            tokens: vec![key.to_owned()],
            pointer: false,
        }
    }

    /// The value at this field of `obj`, if any: the pointer's tokens followed through
    /// objects and arrays (RFC 6901), without allocating.
    pub(super) fn get<'o, 'a>(&self, obj: &'o Object<'a>) -> Option<&'o Val<'a>> {
        let (first, rest) = self.tokens.split_first()?;
        let mut at = obj.get(first)?;
        for token in rest {
            at = match at {
                Val::Object(inner) => inner.get(token)?,
                Val::Array(items) => items.get(array_index(token)?)?,
                _ => return None,
            };
        }
        Some(at)
    }

    /// Whether the field is a JSON pointer.
    pub fn is_pointer(&self) -> bool {
        self.pointer
    }

    /// The readable name: a key as it is, a pointer's last token.
    pub fn name(&self) -> &str {
        self.tokens.last().map_or("", String::as_str)
    }

    /// The field as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The top-level key the field lies under.
    pub fn top_key(&self) -> &str {
        self.tokens.first().map_or("", String::as_str)
    }
}

/// An array index token (RFC 6901 §4): decimal digits, no leading zero but `0` itself.
fn array_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = token.len() > 1 && token.starts_with('0');
    if digits && !leading_zero {
        token.parse().ok()
    } else {
        None
    }
}

/// RFC 6901 §4: `~1` is `/`, then `~0` is `~`.
fn unescape(token: &str) -> Cow<'_, str> {
    if token.contains('~') {
        Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(token)
    }
}

#[cfg(test)]
mod tests {
    use super::super::object::object;
    use super::*;

    #[test]
    fn keys_and_pointers_find_their_values_and_names() {
        let text = r#"{"a/b": 1, "fields": {"temperature": 21.5, "x~y": 2, "deep": {"v": 3}},
                       "list": [4, 5], "ts": 5}"#;
        let obj = object(text).expect("an object");
        let cases = [
            ("ts", "ts", "ts", Some(5.0)),
            ("a/b", "a/b", "a/b", Some(1.0)),
            ("/fields/temperature", "temperature", "fields", Some(21.5)),
            ("/fields/x~0y", "x~y", "fields", Some(2.0)),
            ("/a~1b", "a/b", "a/b", Some(1.0)),
            ("/fields/deep/v", "v", "fields", Some(3.0)),
            ("/list/1", "1", "list", Some(5.0)),
            ("/list/01", "01", "list", None),
            ("/list/2", "2", "list", None),
            ("/ts/x", "x", "ts", None),
            ("/fields/missing", "missing", "fields", None),
            ("/nothing/here", "here", "nothing", None),
        ];
        for (text, name, top, want) in cases {
            let f = Field::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(f.name(), name, "{text}");
            assert_eq!(f.top_key(), top, "{text}");
            assert_eq!(f.get(&obj), want.map(Val::Number).as_ref(), "{text}");
        }
    }

    #[test]
    fn unusable_fields_are_refused_with_the_reason() {
        assert_eq!(Field::parse(""), Err(FieldError::Empty));
        assert_eq!(Field::parse("/"), Err(FieldError::NoName("/".into())));
        assert_eq!(
            Field::parse("/fields/"),
            Err(FieldError::NoName("/fields/".into()))
        );
        assert_eq!(Field::parse("/a~2"), Err(FieldError::BadEscape("/a~2".into())));
        assert_eq!(Field::parse("/a~"), Err(FieldError::BadEscape("/a~".into())));
    }
}
