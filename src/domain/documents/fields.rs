//! How a stored document's fields are held: typed where the rules read them, and otherwise
//! kept exactly as stored, so that a document Kazoo, Monster UI or an older version of this
//! service wrote is written back unchanged.
//!
//! - `Slot<T>`: a field that is absent, holds a `T`, or holds something else (a `null`, another
//!   type), which is kept as it is and never read as a `T`.
//! - `List<T>`: a list whose entries are each a `T` or kept as they are.
//! - `Flag`: Kazoo's `kz_term:is_true` booleans (`true` or the string `"true"`).
//!
//! Every type here writes back exactly what it read, so a document's round trip is exact by
//! construction (`tests/fixtures/documents/` and the round-trip test prove it on real ones).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A field that could not be read as the rules need it: what it is called, and what is stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the stored {field} cannot be read: {stored}")]
pub struct Unreadable {
    /// The field's name as clients know it (`port_state`, `numbers`, ...).
    pub field: &'static str,
    pub stored: Value,
}

/// Declares stored document types. The fields in brackets are always there (`"_id" id:
/// String`); those in braces are `Slot`s, named by their stored key and left out when absent;
/// `rest` keeps every other key exactly as stored. A type without fields that are always there
/// has a default (every field absent). Several fields may share a line: the keys are what
/// matters, and the list reads as the document does.
macro_rules! stored {
    () => {};
    ($(#[$meta:meta])* pub struct $name:ident [] { $($slots:tt)* } $($more:tt)*) => {
        stored!(@one [$(#[$meta])* #[derive(Default)]] $name [] { $($slots)* });
        stored!($($more)*);
    };
    ($(#[$meta:meta])* pub struct $name:ident [ $($always:tt)+ ] { $($slots:tt)* } $($more:tt)*) => {
        stored!(@one [$(#[$meta])*] $name [ $($always)+ ] { $($slots)* });
        stored!($($more)*);
    };
    (@one [$($attrs:tt)*] $name:ident
        [ $( $(#[$rmeta:meta])* $rkey:literal $rfield:ident: $rty:ty ),* $(,)? ]
        { $( $(#[$smeta:meta])* $skey:literal $sfield:ident: $sty:ty ),* $(,)? }
    ) => {
        $($attrs)*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $( $(#[$rmeta])* #[serde(rename = $rkey)] pub $rfield: $rty, )*
            $(
                $(#[$smeta])*
                #[serde(rename = $skey, default, skip_serializing_if = "Slot::is_absent")]
                pub $sfield: $crate::domain::documents::fields::Slot<$sty>,
            )*
            /// Every other key, exactly as stored.
            #[serde(flatten)]
            pub rest: serde_json::Map<String, serde_json::Value>,
        }
    };
}
pub(crate) use stored;

/// A field of a stored document.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Slot<T> {
    #[default]
    Absent,
    Set(T),
    /// Stored, but not a `T`: written back as it is.
    Kept(Value),
}

impl<T> Slot<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Slot::Absent)
    }

    /// The value, when it is one the rules can read.
    pub fn get(&self) -> Option<&T> {
        match self {
            Slot::Set(v) => Some(v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self) -> Option<&mut T> {
        match self {
            Slot::Set(v) => Some(v),
            _ => None,
        }
    }

    /// The value, `None` when absent, and an error naming `field` when it is kept unread.
    pub fn read(&self, field: &'static str) -> Result<Option<&T>, Unreadable> {
        match self {
            Slot::Absent => Ok(None),
            Slot::Set(v) => Ok(Some(v)),
            Slot::Kept(stored) => Err(Unreadable { field, stored: stored.clone() }),
        }
    }

    pub fn set(&mut self, value: T) {
        *self = Slot::Set(value);
    }

    pub fn clear(&mut self) {
        *self = Slot::Absent;
    }

    pub fn take(&mut self) -> Slot<T> {
        std::mem::take(self)
    }

    /// `Set` for `Some`, `Absent` for `None`.
    pub fn from_option(value: Option<T>) -> Self {
        value.map_or(Slot::Absent, Slot::Set)
    }
}

impl<T: Default> Slot<T> {
    /// The value to change in place: absent becomes the default first; a kept value is replaced
    /// only by a caller that read it with `read` first (so this is for fields the change owns).
    pub fn get_or_default(&mut self) -> &mut T {
        if !matches!(self, Slot::Set(_)) {
            *self = Slot::Set(T::default());
        }
        match self {
            Slot::Set(v) => v,
            _ => unreachable!("just set"),
        }
    }
}

impl Slot<String> {
    pub fn as_deref(&self) -> Option<&str> {
        self.get().map(String::as_str)
    }

    /// The text, unless absent or blank.
    pub fn text(&self) -> Option<&str> {
        self.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
}

impl<T: Copy> Slot<T> {
    pub fn copied(&self) -> Option<T> {
        self.get().copied()
    }
}

impl<T: Serialize> Serialize for Slot<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // only reached where a field is not skipped when absent
            Slot::Absent => s.serialize_none(),
            Slot::Set(v) => v.serialize(s),
            Slot::Kept(v) => v.serialize(s),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Slot<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = Value::deserialize(d)?;
        Ok(match T::deserialize(&stored) {
            Ok(v) => Slot::Set(v),
            Err(_) => Slot::Kept(stored),
        })
    }
}

/// A stored list whose entries are each read as a `T` or kept as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<Slot<T>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<T> List<T> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The entries the rules can read, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.0.iter().filter_map(Slot::get)
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut T> {
        self.0.iter_mut().filter_map(Slot::get_mut)
    }

    /// The entries kept as they were stored.
    pub fn kept(&self) -> impl Iterator<Item = &Value> {
        self.0.iter().filter_map(|s| match s {
            Slot::Kept(v) => Some(v),
            _ => None,
        })
    }

    pub fn push(&mut self, entry: T) {
        self.0.push(Slot::Set(entry));
    }

    pub fn insert(&mut self, at: usize, entry: T) {
        self.0.insert(at.min(self.0.len()), Slot::Set(entry));
    }

    /// Keeps the last `n` entries.
    pub fn keep_last(&mut self, n: usize) {
        let excess = self.0.len().saturating_sub(n);
        self.0.drain(..excess);
    }

    /// Keeps the entries that are unreadable or pass `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.0.retain(|s| s.get().is_none_or(&mut keep));
    }
}

impl<T> FromIterator<T> for List<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        List(iter.into_iter().map(Slot::Set).collect())
    }
}

impl<T: Serialize> Serialize for List<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(List(Vec::<Slot<T>>::deserialize(d)?))
    }
}

/// A list field of a document: absent, a list, or something else kept as it is.
pub type ListSlot<T> = Slot<List<T>>;

impl<T> Slot<List<T>> {
    /// The readable entries (none when absent or kept).
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.get().into_iter().flat_map(List::iter)
    }
}

/// Kazoo's booleans, as `kz_term:is_true` reads them: `true`, or the string `"true"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    pub fn is_true(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Text(s) => s == "true",
        }
    }
}

impl From<bool> for Flag {
    fn from(b: bool) -> Self {
        Flag::Bool(b)
    }
}

impl Slot<Flag> {
    /// Set and true (`kz_term:is_true`); absent or anything else is false.
    pub fn is_true(&self) -> bool {
        self.get().is_some_and(Flag::is_true)
    }
}

impl Slot<bool> {
    pub fn is_true(&self) -> bool {
        self.get() == Some(&true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Serialize, Deserialize)]
    struct Doc {
        #[serde(default, skip_serializing_if = "Slot::is_absent")]
        n: Slot<i64>,
        #[serde(default, skip_serializing_if = "Slot::is_absent")]
        list: Slot<List<i64>>,
        #[serde(default, skip_serializing_if = "Slot::is_absent")]
        flag: Slot<Flag>,
        #[serde(flatten)]
        rest: serde_json::Map<String, Value>,
    }

    fn round_trip(v: Value) -> (Doc, Value) {
        let doc: Doc = serde_json::from_value(v).unwrap();
        let back = serde_json::to_value(&doc).unwrap();
        (doc, back)
    }

    #[test]
    fn every_value_comes_back_as_it_was_stored() {
        for v in [
            json!({}),
            json!({"n": 5, "list": [1, 2], "flag": true, "other": {"x": null}}),
            json!({"n": null, "list": [1, "two", null], "flag": "true"}),
            json!({"n": 1.5, "list": "not a list", "flag": 7}),
            json!({"n": "63630097779"}),
        ] {
            assert_eq!(round_trip(v.clone()).1, v);
        }
    }

    #[test]
    fn what_cannot_be_read_is_kept_and_never_read() {
        let (doc, _) = round_trip(json!({"n": "5", "list": [1, "two", 3], "flag": "yes"}));
        assert_eq!(doc.n.get(), None);
        assert_eq!(doc.n.read("n"), Err(Unreadable { field: "n", stored: json!("5") }));
        assert_eq!(doc.list.entries().copied().collect::<Vec<_>>(), [1, 3]);
        assert!(!doc.flag.is_true());
        let (doc, _) = round_trip(json!({"flag": "true"}));
        assert!(doc.flag.is_true());
        assert_eq!(doc.n.read("n"), Ok(None));
    }
}
