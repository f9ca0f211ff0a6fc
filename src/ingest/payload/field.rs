//! Where a value sits in a JSON payload: a top-level key (`"temperature"`) or an RFC 6901
//! JSON pointer (`"/fields/temperature"`), and the readable name a pointer channel
//! carries in readings, alerts and snapshots (its last token).
//!
//! The one place a configured field text is interpreted: `check-config` validates with
//! [`Field::parse`], the parser reads with [`Field::get`].

use std::borrow::Cow;

use serde_json::Value;

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
    /// The readable name: the key itself, or the pointer's last token, unescaped.
    name: String,
    /// The top-level key the field lies under (the key itself, or the pointer's first
    /// token, unescaped): what automatic channel discovery must leave alone.
    top: String,
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
        // `split` always yields at least one token.
        let last = pointer.rsplit('/').next().unwrap_or_default();
        let first = pointer.split('/').next().unwrap_or_default();
        if last.is_empty() {
            return Err(FieldError::NoName(text.to_owned()));
        }
        Ok(Self {
            text: text.to_owned(),
            name: unescape(last).into_owned(),
            top: unescape(first).into_owned(),
            pointer: true,
        })
    }

    /// A top-level key, taken as it is (even one starting with `/` is a key here):
    /// the built-in defaults and tests.
    pub fn key(key: &str) -> Self {
        Self {
            text: key.to_owned(),
            name: key.to_owned(),
            top: key.to_owned(),
            pointer: false,
        }
    }

    /// The value at this field of `obj`, if any.
    pub fn get<'v>(&self, obj: &'v serde_json::Map<String, Value>) -> Option<&'v Value> {
        if self.is_pointer() {
            let (first, rest) = match self.text[1..].split_once('/') {
                Some((first, rest)) => (first, Some(rest)),
                None => (&self.text[1..], None),
            };
            let top = obj.get(unescape(first).as_ref())?;
            match rest {
                // `pointer` wants the leading `/` of the remaining tokens.
                Some(_) => top.pointer(&self.text[1 + first.len()..]),
                None => Some(top),
            }
        } else {
            obj.get(&self.text)
        }
    }

    /// Whether the field is a JSON pointer.
    pub fn is_pointer(&self) -> bool {
        self.pointer
    }

    /// The readable name: a key as it is, a pointer's last token.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The field as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The top-level key the field lies under.
    pub fn top_key(&self) -> &str {
        &self.top
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
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_and_pointers_find_their_values_and_names() {
        let doc = json!({"a/b": 1, "fields": {"temperature": 21.5, "x~y": 2, "deep": {"v": 3}}, "ts": 5});
        let obj = doc.as_object().expect("object");
        let cases = [
            ("ts", "ts", "ts", Some(json!(5))),
            ("a/b", "a/b", "a/b", Some(json!(1))),
            ("/fields/temperature", "temperature", "fields", Some(json!(21.5))),
            ("/fields/x~0y", "x~y", "fields", Some(json!(2))),
            ("/a~1b", "a/b", "a/b", Some(json!(1))),
            ("/fields/deep/v", "v", "fields", Some(json!(3))),
            ("/fields/missing", "missing", "fields", None),
            ("/nothing/here", "here", "nothing", None),
        ];
        for (text, name, top, want) in cases {
            let f = Field::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(f.name(), name, "{text}");
            assert_eq!(f.top_key(), top, "{text}");
            assert_eq!(f.get(obj), want.as_ref(), "{text}");
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
