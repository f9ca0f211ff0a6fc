//! A JSON payload read without copying it: a `json` payload's top-level object (or a
//! `senml` pack's array) as keys and scalars borrowed from the payload text, so a flat
//! message of numbers (the common case) costs no heap allocation. Keys or strings with escapes are unescaped into owned
//! text, nested objects and arrays are boxed; both are rare on the hot path.
//!
//! Owns how JSON maps to [`Val`] and [`Object`] with the semantics `serde_json::Value`
//! had here: keys sorted by name, a repeated key's last value wins, numbers as `f64`,
//! the same syntax errors (serde_json's tokenizer reads both).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;

use super::PayloadError;
use super::value::{Scalar, json_error, wrong_type};

/// Entries an object holds without allocating: a few channels, the timestamp and a
/// sensor id, with room to spare.
const INLINE_ENTRIES: usize = 8;

/// One JSON value, borrowing its text from the payload where it can.
#[derive(Debug, PartialEq)]
pub(super) enum Val<'a> {
    Null,
    Bool,
    Number(f64),
    String(Cow<'a, str>),
    Array(Vec<Val<'a>>),
    Object(Box<Object<'a>>),
}

impl Val<'_> {
    /// What the checks in [`super::value`] see of it.
    pub(super) fn scalar(&self) -> Scalar<'_> {
        match self {
            Self::Null => Scalar::Null,
            Self::Bool => Scalar::Bool,
            Self::Number(x) => Scalar::Number(*x),
            Self::String(s) => Scalar::String(s),
            Self::Array(_) => Scalar::Array,
            Self::Object(_) => Scalar::Object,
        }
    }
}

/// One key of an object, and its value.
type Entry<'a> = (Cow<'a, str>, Val<'a>);

/// A JSON object: its entries sorted by key, each key once (the last value given).
#[derive(Debug, PartialEq)]
pub(super) struct Object<'a> {
    entries: SmallVec<[Entry<'a>; INLINE_ENTRIES]>,
}

impl<'a> Object<'a> {
    /// The value under `key`.
    pub(super) fn get(&self, key: &str) -> Option<&Val<'a>> {
        let found = self.entries.binary_search_by(|(k, _)| k.as_ref().cmp(key));
        found.ok().map(|i| &self.entries[i].1)
    }

    /// The entries, sorted by key.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Cow<'a, str>, &Val<'a>)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// How many distinct keys it has.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Reads the entries of a JSON object; sorts them and keeps the last of a
    /// repeated key.
    fn read<A: MapAccess<'a>>(mut map: A) -> Result<Self, A::Error> {
        let mut entries: SmallVec<[Entry<'a>; INLINE_ENTRIES]> = SmallVec::new();
        while let Some(Key(key)) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        // Stable: among equal keys the payload's order stays, and the last one wins.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        Ok(Self { entries })
    }
}

/// Reads a payload that must be a JSON object. Errors as [`json_error`] maps them, and
/// any other value is [`PayloadError::WrongType`] named `<payload>`.
pub(super) fn object(text: &str) -> Result<Object<'_>, PayloadError> {
    let TopLevel(top) = serde_json::from_str(text).map_err(|e| json_error(text, &e))?;
    top
}

/// Reads a payload of any JSON value (a SenML pack is an array). Errors as
/// [`json_error`] maps them.
pub(super) fn value(text: &str) -> Result<Val<'_>, PayloadError> {
    serde_json::from_str(text).map_err(|e| json_error(text, &e))
}

/// A payload's top level: its object (not boxed: the common case), or why it has none.
struct TopLevel<'a>(Result<Object<'a>, PayloadError>);

impl<'a> TopLevel<'a> {
    fn not_object(other: Val<'a>) -> Self {
        Self(Err(wrong_type("<payload>", "a JSON object", other.scalar())))
    }
}

/// An object key, borrowed unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ValVisitor).and_then(|v| match v {
            Val::String(s) => Ok(Key(s)),
            _ => Err(de::Error::custom("object key is not a string")),
        })
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopLevelVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Val<'de>, E> {
        Ok(Val::Bool)
    }

    // As `serde_json::Number::as_f64` converts them.
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Val<'de>, E> {
        Ok(Val::Number(n as f64))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Val<'de>, E> {
        Ok(Val::Number(n as f64))
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Val<'de>, E> {
        Ok(Val::Number(x))
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::String(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Val<'de>, E> {
        Ok(Val::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Val<'de>, E> {
        Ok(Val::String(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Val::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Val<'de>, A::Error> {
        Object::read(map).map(|o| Val::Object(Box::new(o)))
    }
}

/// [`ValVisitor`], but a top-level object is kept unboxed and any other value read
/// (the whole payload must be valid JSON) only to be named in the error.
struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ValVisitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TopLevel<'de>, A::Error> {
        Object::read(map).map(|o| TopLevel(Ok(o)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TopLevel<'de>, E> {
        ValVisitor.visit_unit().map(TopLevel::not_object)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<TopLevel<'de>, E> {
        ValVisitor.visit_bool(b).map(TopLevel::not_object)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<TopLevel<'de>, E> {
        ValVisitor.visit_i64(n).map(TopLevel::not_object)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<TopLevel<'de>, E> {
        ValVisitor.visit_u64(n).map(TopLevel::not_object)
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<TopLevel<'de>, E> {
        ValVisitor.visit_f64(x).map(TopLevel::not_object)
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<TopLevel<'de>, E> {
        ValVisitor.visit_borrowed_str(s).map(TopLevel::not_object)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<TopLevel<'de>, E> {
        ValVisitor.visit_str(s).map(TopLevel::not_object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TopLevel<'de>, A::Error> {
        ValVisitor.visit_seq(seq).map(TopLevel::not_object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Object<'_> {
        object(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn keys_are_sorted_borrowed_unless_escaped_and_the_last_repeat_wins() {
        let o = read(r#"{"b": 1, "a\"q": "x", "a": 2, "b": {"c": [true, null]}}"#);
        let keys: Vec<&str> = o.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["a", "a\"q", "b"]);
        assert!(matches!(o.iter().next(), Some((Cow::Borrowed(_), _))));
        assert!(matches!(o.iter().nth(1), Some((Cow::Owned(_), _))));
        assert_eq!(o.get("a"), Some(&Val::Number(2.0)));
        let Some(Val::Object(b)) = o.get("b") else {
            panic!("{o:?}");
        };
        assert_eq!(b.get("c"), Some(&Val::Array(vec![Val::Bool, Val::Null])));
    }

    #[test]
    fn other_values_and_bad_json_are_told_apart() {
        let not_object = |got| PayloadError::WrongType {
            field: "<payload>".into(),
            expected: "a JSON object",
            got,
        };
        assert_eq!(object("[1]").unwrap_err(), not_object("an array"));
        assert_eq!(object(r#""s""#).unwrap_err(), not_object("a string"));
        assert_eq!(object("null").unwrap_err(), not_object("null"));
        assert!(matches!(object(r#"{"a": 1"#), Err(PayloadError::NotJson { .. })));
        assert!(matches!(object("[1] x"), Err(PayloadError::NotJson { .. })));
        assert_eq!(
            object(r#"{"a": [1e400]}"#).unwrap_err(),
            PayloadError::NotFinite { field: "a".into() }
        );
    }
}
