//! Reading request bodies as JSON, and measuring JSON without writing it.
//!
//! **Duplicate keys.** JSON allows an object to name a key twice; serde_json,
//! like Go's decoder, keeps the last value without a word. The Kubernetes API
//! server decodes with a strict decoder that also reports each duplicate, as
//! `duplicate field "metadata.name"`, and `fieldValidation` decides what the
//! report becomes (400, a warning, or nothing). [`parse`] builds the same
//! `serde_json::Value` serde_json would (last value wins) and notes the path of
//! every key seen twice on the way, in document order. It is one pass over
//! the bytes: the visitor below replaces serde_json's own `Value` visitor, and
//! the path of a value is a chain of borrowed keys on the stack, turned into a
//! string only when a duplicate is found, so a body without duplicates costs
//! what `serde_json::from_slice` costs.
//!
//! **Sizes.** [`encoded_len_within`] counts the bytes of a value's compact
//! encoding, stopping as soon as they pass a limit: how the registry bounds
//! the work of a JSON patch and the size of an object before it holds (or
//! stores) one that is too large.

use std::fmt;
use std::io;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Where a value sits in a document, as a chain of borrowed steps.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    /// The Kubernetes field path: `spec.mxReplicaSpecs.Worker.replicas`,
    /// `spec.template.spec.containers[0].name`, `[1].path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(Path::Root, key) => f.write_str(key),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Parses `bytes` as one JSON document. Returns the value (a key given twice
/// keeps its last value) and the field path of every repeated key, in the
/// order the repeats appear.
pub fn parse(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut duplicates = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = ValueSeed {
        path: Path::Root,
        duplicates: &mut duplicates,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok((value, duplicates))
}

/// Builds one value at `path`, noting repeated keys in `duplicates`.
struct ValueSeed<'p, 'd> {
    path: Path<'p>,
    duplicates: &'d mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(access.size_hint().unwrap_or(0).min(1024));
        loop {
            let seed = ValueSeed {
                path: Path::Index(&self.path, items.len()),
                duplicates: &mut *self.duplicates,
            };
            match access.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let path = Path::Key(&self.path, &key);
            // Noted at the key, as Go's decoder does, before what is inside.
            if object.contains_key(&key) {
                self.duplicates.push(path.to_string());
            }
            let value = access.next_value_seed(ValueSeed {
                path,
                duplicates: &mut *self.duplicates,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The length of `value`'s compact JSON encoding if it is at most `limit`
/// bytes; `None` as soon as it is longer (the encoding is counted, never
/// kept, and counting stops at the limit).
pub fn encoded_len_within(value: &impl serde::Serialize, limit: usize) -> Option<usize> {
    let mut counter = Counter { count: 0, limit };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.count)
}

/// A sink that counts bytes and fails once they pass `limit`.
struct Counter {
    count: usize,
    limit: usize,
}

impl io::Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.count = self.count.saturating_add(bytes.len());
        if self.count > self.limit {
            return Err(io::Error::other("over the limit"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_reported_with_their_paths_and_the_last_value_wins() {
        let body = br#"{"metadata": {"name": "a", "name": "b"},
            "spec": {"mxReplicaSpecs": {"Worker": {"replicas": 1, "replicas": 2}},
                     "list": [{"x": 1}, {"x": 1, "x": 3}]},
            "spec": {"again": true}}"#;
        let (value, duplicates) = parse(body).expect("valid JSON");
        assert_eq!(
            duplicates,
            [
                "metadata.name",
                "spec.mxReplicaSpecs.Worker.replicas",
                "spec.list[1].x",
                "spec",
            ]
        );
        assert_eq!(value["metadata"]["name"], "b");
        assert_eq!(value["spec"], serde_json::json!({"again": true}));
    }

    #[test]
    fn without_repeats_the_value_is_what_serde_json_reads() {
        let body =
            br#"[{"op": "add", "path": "/a", "value": [1, -2, 3.5, null, "s", {"k": false}]},
                        {"op": "copy", "from": "/a", "path": "/b", "path": "/c"}]"#;
        let (value, duplicates) = parse(body).expect("valid JSON");
        assert_eq!(duplicates, ["[1].path"]);
        let mut expected: Value = serde_json::from_slice(body).expect("valid JSON");
        expected[1]["path"] = Value::from("/c");
        assert_eq!(value, expected);
        let plain = br#"{"a": [1, 2, {"b": 18446744073709551615}], "c": 1e400}"#;
        assert!(parse(plain).is_err(), "serde_json refuses 1e400 too");
        let plain = br#"{"a": [1, 2, {"b": 18446744073709551615}], "c": 1.5e300}"#;
        let (value, duplicates) = parse(plain).expect("valid JSON");
        assert!(duplicates.is_empty());
        assert_eq!(
            value,
            serde_json::from_slice::<Value>(plain).expect("valid JSON")
        );
    }

    #[test]
    fn trailing_bytes_and_bad_json_are_errors() {
        assert!(parse(b"{} {}").is_err());
        assert!(parse(b"{\"a\": }").is_err());
        assert!(parse(b"").is_err());
    }

    #[test]
    fn encoded_lengths_are_exact_up_to_the_limit() {
        let value = serde_json::json!({"a": [1, "two", null], "b": {"c": "\"quoted\""}});
        let len = serde_json::to_vec(&value).expect("encodes").len();
        assert_eq!(encoded_len_within(&value, len), Some(len));
        assert_eq!(encoded_len_within(&value, len - 1), None);
        assert_eq!(encoded_len_within(&value, usize::MAX), Some(len));
    }
}
