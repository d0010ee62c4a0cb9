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
//! [`scan`] is the same pass with nothing built: whether a document repeats
//! a key anywhere, and whether the members a [`Shape`] names are objects.
//! The body decoder reads an MXJob straight from the bytes when the scan
//! finds nothing, and only otherwise builds the `Value` to word the
//! findings (see [`crate::decode`]).
//!
//! **Sizes.** [`encoded_len_within`] counts the bytes of a value's compact
//! encoding, stopping as soon as they pass a limit: how the registry bounds
//! the work of a JSON patch and the size of an object before it holds (or
//! stores) one that is too large.

use std::borrow::Cow;
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

/// What [`scan`] found in a document, for the decoders that read it
/// straight into their types and want [`parse`]'s full pass only when it
/// matters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Some object names a key twice.
    pub repeated_keys: bool,
    /// Some member named by a [`Shape`] rule is not an object.
    pub not_objects: bool,
}

/// Members that must be objects, for [`scan`]: the root's member `key`, and
/// below it the rule `inner` (`Members`: every member of it must be an
/// object too).
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// No rule here.
    Any,
    /// The member `key` of this object must be an object, and `inner`
    /// applies inside it.
    Member {
        key: &'static str,
        inner: &'static Shape,
    },
    /// Every member of this object must be an object.
    Members,
}

/// One pass over `bytes` that builds nothing: whether some object repeats
/// a key, and whether the members `shape` names are objects. Keys are
/// compared as the bytes between their quotes when they have no escapes,
/// and decoded otherwise. An error is what [`parse`] would fail with too.
pub fn scan(bytes: &[u8], shape: &'static Shape) -> Result<Scanned, serde_json::Error> {
    let mut scanned = Scanned::default();
    let mut keys = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    ScanSeed {
        shape: Some(shape),
        must_be_object: false,
        keys: &mut keys,
        scanned: &mut scanned,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(scanned)
}

/// [`scan`] without serde: byte by byte, numbers and strings skipped
/// rather than parsed, keys compared as their bytes (decoded when they
/// have escapes). `None` for whatever it does not take on — nesting deeper
/// than serde_json allows, anything malformed — which [`scan`] then reads. It checks only what its answer needs, so it takes
/// some malformed documents (a number such as `1.2.3`, a control
/// character in a string); the caller's decode refuses those anyway.
pub fn scan_plain(bytes: &[u8], shape: &'static Shape) -> Option<Scanned> {
    scan_plain_marked::<0>(bytes, shape, &[], []).map(|(scanned, _)| scanned)
}

/// A member [`scan_plain_marked`] looks for: the member `key` of the object
/// it applies to, whose value is noted in `slot` when there is one, and
/// the marks that apply inside its value.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    pub key: &'static str,
    pub slot: Option<usize>,
    pub inner: &'static [Mark],
}

/// [`scan_plain`], noting where the values of the members `marks` give a
/// slot lie (the first member of each name; keys compared decoded) — and
/// skipping them: such a value is not scanned (whether it must be an
/// object is still checked), but passed over as the `expected` bytes of
/// its slot when it begins with them, else to its end as [`member_span`]
/// finds it. The caller scans whatever of them it needs.
pub fn scan_plain_marked<'a, const N: usize>(
    bytes: &'a [u8],
    shape: &'static Shape,
    marks: &'static [Mark],
    expected: [Option<&'a [u8]>; N],
) -> Option<(Scanned, [Option<std::ops::Range<usize>>; N])> {
    let mut plain = Plain {
        bytes,
        at: 0,
        depth: 0,
        keys: Vec::new(),
        scanned: Scanned::default(),
        spans: [const { None }; N],
        expected,
    };
    plain.value(Some(shape), marks, false)?;
    plain.space();
    (plain.at == bytes.len()).then_some((plain.scanned, plain.spans))
}

/// The state of [`scan_plain_marked`].
struct Plain<'a, const N: usize> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
    /// The keys of the objects being scanned, innermost last.
    keys: Vec<Cow<'a, [u8]>>,
    scanned: Scanned,
    spans: [Option<std::ops::Range<usize>>; N],
    expected: [Option<&'a [u8]>; N],
}

/// serde_json's default recursion limit.
const MAX_DEPTH: usize = 128;

impl<'a, const N: usize> Plain<'a, N> {
    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        self.space();
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn literal(&mut self, rest: &[u8]) -> Option<()> {
        let end = self.at.checked_add(rest.len())?;
        (self.bytes.get(self.at..end)? == rest).then(|| self.at = end)
    }

    /// A string's bytes between its quotes, after its opening quote, and
    /// whether it has escapes.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.at;
        let mut escaped = false;
        loop {
            let length = memchr::memchr2(b'"', b'\\', self.bytes.get(self.at..)?)?;
            let end = self.at + length;
            if self.bytes[end] == b'"' {
                self.at = end + 1;
                return Some((&self.bytes[start..end], escaped));
            }
            // The escaped character is skipped; `\uXXXX`'s digits need not be.
            escaped = true;
            self.at = end + 2;
        }
    }

    /// An object's key, as its decoded bytes when it has escapes.
    fn key(&mut self) -> Option<Cow<'a, [u8]>> {
        let (raw, escaped) = self.string()?;
        if !escaped {
            return Some(Cow::Borrowed(raw));
        }
        let quoted = self.bytes.get(self.at - raw.len() - 2..self.at)?;
        let decoded: String = serde_json::from_slice(quoted).ok()?;
        Some(Cow::Owned(decoded.into_bytes()))
    }

    fn value(
        &mut self,
        shape: Option<&'static Shape>,
        marks: &'static [Mark],
        must_be_object: bool,
    ) -> Option<()> {
        let first = self.next()?;
        if first != b'{' && must_be_object {
            self.scanned.not_objects = true;
        }
        match first {
            b'{' => self.object(shape, marks),
            b'[' => self.array(),
            b'"' => self.string().map(drop),
            b't' => self.literal(b"rue"),
            b'f' => self.literal(b"alse"),
            b'n' => self.literal(b"ull"),
            b'-' | b'0'..=b'9' => {
                while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') =
                    self.bytes.get(self.at)
                {
                    self.at += 1;
                }
                Some(())
            }
            _ => None,
        }
    }

    /// Passes over the value of a marked member, noting it in `slot`.
    fn skip(&mut self, slot: usize, must_be_object: bool) -> Option<()> {
        self.space();
        let start = self.at;
        if must_be_object && self.bytes.get(start) != Some(&b'{') {
            self.scanned.not_objects = true;
        }
        let expected = self.expected.get(slot).copied().flatten();
        self.at = match expected {
            Some(expected) if self.bytes.get(start..)?.starts_with(expected) => {
                start + expected.len()
            }
            _ => value_end(self.bytes, start)?,
        };
        if let Some(span @ None) = self.spans.get_mut(slot) {
            *span = Some(start..self.at);
        }
        Some(())
    }

    fn nested(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn array(&mut self) -> Option<()> {
        self.nested()?;
        self.space();
        if self.bytes.get(self.at) == Some(&b']') {
            self.at += 1;
        } else {
            loop {
                self.value(None, &[], false)?;
                match self.next()? {
                    b',' => continue,
                    b']' => break,
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    fn object(&mut self, shape: Option<&'static Shape>, marks: &'static [Mark]) -> Option<()> {
        self.nested()?;
        let start = self.keys.len();
        self.space();
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
        } else {
            loop {
                if self.next()? != b'"' {
                    return None;
                }
                let key = self.key()?;
                if self.next()? != b':' {
                    return None;
                }
                let (inner, must_be_object) = match shape {
                    Some(Shape::Member { key: wanted, inner }) if wanted.as_bytes() == &*key => {
                        (Some(*inner), true)
                    }
                    Some(Shape::Members) => (None, true),
                    _ => (None, false),
                };
                let mark = marks.iter().find(|mark| mark.key.as_bytes() == &*key);
                self.keys.push(key);
                match mark.and_then(|mark| mark.slot) {
                    Some(slot) => self.skip(slot, must_be_object)?,
                    None => {
                        self.value(inner, mark.map_or(&[], |mark| mark.inner), must_be_object)?
                    }
                }
                match self.next()? {
                    b',' => continue,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        self.scanned.repeated_keys |= repeats(&mut self.keys[start..]);
        self.keys.truncate(start);
        self.depth -= 1;
        Some(())
    }
}

/// Where the value at `path` lies in `bytes`: `path` names a member of the
/// top-level object, then a member of that member's object, and so on; the
/// first member of each name is taken. It reads only as far as the value's
/// end, skipping the values before it without checking them (the caller
/// decodes the document anyway), and keys with escapes never match. `None`
/// when a member on the path is missing or not an object, or the bytes end
/// or break the syntax on the way.
pub fn member_span(bytes: &[u8], path: &[&str]) -> Option<std::ops::Range<usize>> {
    let mut at = 0;
    let mut rest = path;
    'objects: while let Some((wanted, deeper)) = rest.split_first() {
        at = after_space(bytes, at);
        if bytes.get(at) != Some(&b'{') {
            return None;
        }
        at += 1;
        loop {
            at = after_space(bytes, at);
            if bytes.get(at) != Some(&b'"') {
                return None;
            }
            let quote = closing_quote(bytes, at + 1)?;
            let key = &bytes[at + 1..quote];
            at = after_space(bytes, quote + 1);
            if bytes.get(at) != Some(&b':') {
                return None;
            }
            at = after_space(bytes, at + 1);
            if key == wanted.as_bytes() {
                if deeper.is_empty() {
                    return Some(at..value_end(bytes, at)?);
                }
                rest = deeper;
                continue 'objects;
            }
            at = after_space(bytes, value_end(bytes, at)?);
            if bytes.get(at) != Some(&b',') {
                return None;
            }
            at += 1;
        }
    }
    None
}

fn after_space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(at) {
        at += 1;
    }
    at
}

/// The index of the quote that closes the string whose content starts at
/// `at`.
fn closing_quote(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let end = at + memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
        if bytes[end] == b'"' {
            return Some(end);
        }
        at = end + 2;
    }
}

/// Just past the value that starts at `at`: a string, an object or an
/// array (to its matching close), or a scalar (to the next delimiter).
/// Strings are skipped with `memchr`; between them, a plain loop.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => Some(closing_quote(bytes, at + 1)? + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match bytes.get(i)? {
                    b'"' => i = closing_quote(bytes, i + 1)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let length = bytes[at..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(bytes.len() - at);
            Some(at + length)
        }
    }
}

/// Whether one object's `keys` name one key twice (reordering them).
fn repeats<K: Ord>(keys: &mut [K]) -> bool {
    if keys.len() <= 16 {
        keys.iter()
            .enumerate()
            .any(|(i, key)| keys[i + 1..].contains(key))
    } else {
        keys.sort_unstable();
        keys.windows(2).any(|pair| pair[0] == pair[1])
    }
}

/// Scans one value.
struct ScanSeed<'k, 'de> {
    /// The rule inside this value; `None` when no rule reaches it.
    shape: Option<&'static Shape>,
    /// This value must be an object.
    must_be_object: bool,
    /// The keys of the objects being scanned, innermost last.
    keys: &'k mut Vec<std::borrow::Cow<'de, str>>,
    scanned: &'k mut Scanned,
}

impl<'de> DeserializeSeed<'de> for ScanSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ScanSeed<'_, '_> {
    /// A value other than an object was found here.
    fn scalar<E>(self) -> Result<(), E> {
        if self.must_be_object {
            self.scanned.not_objects = true;
        }
        Ok(())
    }
}

/// A key, borrowed from the document when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(key.to_string()))
    }
}

impl<'de> Visitor<'de> for ScanSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_none<E>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        if self.must_be_object {
            self.scanned.not_objects = true;
        }
        while access
            .next_element_seed(ScanSeed {
                shape: None,
                must_be_object: false,
                keys: &mut *self.keys,
                scanned: &mut *self.scanned,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        let start = self.keys.len();
        while let Some(key) = access.next_key_seed(KeySeed)? {
            let (shape, must_be_object) = match self.shape {
                Some(Shape::Member { key: wanted, inner }) if *wanted == key => {
                    (Some(*inner), true)
                }
                Some(Shape::Members) => (None, true),
                _ => (None, false),
            };
            self.keys.push(key);
            access.next_value_seed(ScanSeed {
                shape,
                must_be_object,
                keys: &mut *self.keys,
                scanned: &mut *self.scanned,
            })?;
        }
        self.scanned.repeated_keys |= repeats(&mut self.keys[start..]);
        self.keys.truncate(start);
        Ok(())
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

    static COUNTS: Shape = Shape::Members;
    static STATUS: Shape = Shape::Member {
        key: "mxReplicaStatuses",
        inner: &COUNTS,
    };
    static SHAPE: Shape = Shape::Member {
        key: "status",
        inner: &STATUS,
    };

    /// JSON text with keys drawn from a few names, so that objects repeat
    /// them and the shape's members appear at every depth.
    fn document() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            (-1000_i64..1000).prop_map(|n| n.to_string()),
            (-4000_i32..4000).prop_map(|n| format!("{:e}", f64::from(n) / 8.0)),
            r#"([a-z ]|\\"|\\u0061|\\\\){0,3}"#.prop_map(|s| format!("\"{s}\"")),
        ];
        leaf.prop_recursive(5, 48, 4, |inner| {
            let names = prop::sample::select(vec![
                "a",
                "\\u0061",
                "b\\\"",
                "status",
                "st\\u0061tus",
                "mxReplicaStatuses",
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(", "))),
                prop::collection::vec((names, inner), 0..5).prop_map(|members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(k, v)| format!("\"{k}\" : {v}"))
                        .collect();
                    format!("{{ {} }}", members.join(",\n"))
                }),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn the_plain_scan_finds_what_the_full_scan_finds(text in document()) {
            let full = scan(text.as_bytes(), &SHAPE).expect("valid JSON");
            proptest::prop_assert_eq!(scan_plain(text.as_bytes(), &SHAPE), Some(full));
        }
    }

    proptest::proptest! {
        /// The span found is a whole JSON value; in a document without
        /// escapes or repeated keys it is the member the path names, and it
        /// is found whenever that member exists inside objects.
        #[test]
        fn a_member_span_is_the_member_the_path_names(text in document()) {
            let path = ["status", "mxReplicaStatuses"];
            let found = member_span(text.as_bytes(), &path);
            if let Some(range) = &found {
                let value: Result<Value, _> = serde_json::from_str(&text[range.clone()]);
                proptest::prop_assert!(value.is_ok(), "{:?}", &text[range.clone()]);
            }
            let plain = !text.contains('\\')
                && !scan(text.as_bytes(), &SHAPE).expect("valid JSON").repeated_keys;
            if plain {
                let value: Value = serde_json::from_str(&text).expect("valid JSON");
                let expected = value
                    .get("status")
                    .filter(|status| status.is_object())
                    .and_then(|status| status.get("mxReplicaStatuses"));
                let at = found.map(|range| {
                    serde_json::from_str::<Value>(&text[range]).expect("a value")
                });
                proptest::prop_assert_eq!(at.as_ref(), expected);
            }
        }
    }

    static MARKS: &[Mark] = &[
        Mark {
            key: "status",
            slot: Some(0),
            inner: &[Mark {
                key: "mxReplicaStatuses",
                slot: Some(1),
                inner: &[],
            }],
        },
        Mark {
            key: "a",
            slot: None,
            inner: &[Mark {
                key: "a",
                slot: Some(2),
                inner: &[],
            }],
        },
    ];

    proptest::proptest! {
        /// The marked scan finds no more than the plain scan (it passes over
        /// marked values); in a document without escapes or repeated keys
        /// it notes each marked member where `member_span` finds it, with or
        /// without its bytes expected.
        #[test]
        fn marked_members_are_where_member_span_finds_them(text in document()) {
            let bytes = text.as_bytes();
            let full = scan_plain(bytes, &SHAPE).expect("plain");
            let paths: [&[&str]; 3] =
                [&["status"], &["status", "mxReplicaStatuses"], &["a", "a"]];
            let found = paths.map(|path| member_span(bytes, path));
            let (scanned, spans) =
                scan_plain_marked::<3>(bytes, &SHAPE, MARKS, [None; 3]).expect("plain");
            proptest::prop_assert!(full.repeated_keys || !scanned.repeated_keys);
            proptest::prop_assert!(full.not_objects || !scanned.not_objects);
            proptest::prop_assert_eq!(&spans[1], &None, "passed over");
            if !text.contains('\\') && !full.repeated_keys {
                proptest::prop_assert_eq!([&spans[0], &spans[2]], [&found[0], &found[2]]);
                let expected = spans.clone().map(|span| span.map(|span| &bytes[span]));
                let again = scan_plain_marked::<3>(bytes, &SHAPE, MARKS, expected);
                proptest::prop_assert_eq!(again, Some((scanned, spans)));
            }
        }
    }

    #[test]
    fn marked_members_are_passed_over_and_noted() {
        let text =
            br#"{"a": {"b": [1], "a": {"a": 1, "a": 2}}, "status": [{"mxReplicaStatuses": 1}]}"#;
        let (scanned, spans) =
            scan_plain_marked::<3>(text, &SHAPE, MARKS, [None; 3]).expect("plain");
        let at = |s: &Option<std::ops::Range<usize>>| s.clone().map(|s| &text[s]);
        assert_eq!(at(&spans[0]), Some(&br#"[{"mxReplicaStatuses": 1}]"#[..]));
        assert_eq!(at(&spans[1]), None, "inside a passed-over value");
        assert_eq!(at(&spans[2]), Some(&br#"{"a": 1, "a": 2}"#[..]));
        assert!(!scanned.repeated_keys, "not scanned inside");
        assert!(scanned.not_objects, "status must still be an object");
        let full = scan_plain(text, &SHAPE).expect("plain");
        assert!(full.repeated_keys);
        // Expected bytes are passed over as such; others to the value's end.
        let expected = [
            Some(&br#"[{"mxReplicaStatuses": 1}]"#[..]),
            None,
            Some(&b"{}"[..]),
        ];
        let (_, again) = scan_plain_marked::<3>(text, &SHAPE, MARKS, expected).expect("plain");
        assert_eq!(again, spans);
        let prefix = [Some(&br#"[{"mxReplicaStatuses": 1}"#[..]), None, None];
        assert_eq!(scan_plain_marked::<3>(text, &SHAPE, MARKS, prefix), None);
    }

    #[test]
    fn member_spans_skip_strings_and_nesting_before_the_member() {
        let text =
            br#"{"a": "}\"{", "b": [{"c": 1}, "]"], "m" : {"x": true, "k": [1, {"y": "z"}] }}"#;
        let range = member_span(text, &["m", "k"]).expect("found");
        assert_eq!(&text[range], br#"[1, {"y": "z"}]"#);
        assert_eq!(member_span(text, &["m", "missing"]), None);
        assert_eq!(member_span(text, &["a", "k"]), None, "not an object");
        assert_eq!(member_span(br#"{"m": {"k": [1, 2"#, &["m", "k"]), None);
    }

    #[test]
    fn the_plain_scan_reads_escapes_and_leaves_depth_and_malformed_text_to_the_full_scan() {
        let escaped = br#"{"a": 1, "\u0061": 2, "k:{\"name\"}": "\\"}"#;
        let plain = scan_plain(escaped, &SHAPE).expect("plain");
        assert!(plain.repeated_keys, "the escaped key is the same key");
        assert_eq!(Some(plain), scan(escaped, &SHAPE).ok());
        assert_eq!(scan_plain(br#"{"a\"#, &SHAPE), None);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(scan_plain(deep.as_bytes(), &SHAPE), None);
        for malformed in [
            &b"{\"a\": 1,}"[..],
            b"{\"a\" 1}",
            b"[1 2]",
            b"{} x",
            b"tru",
            b"",
        ] {
            assert_eq!(scan_plain(malformed, &SHAPE), None, "{malformed:?}");
        }
        let shaped = br#"{"status": {"mxReplicaStatuses": {"Worker": [], "PS": {}}}}"#;
        let found = scan_plain(shaped, &SHAPE).expect("plain");
        assert!(found.not_objects && !found.repeated_keys);
    }
}
