//! `FieldsV1`: the JSON form of a field set in `metadata.managedFields`.
//!
//! Each level of the set is an object whose keys are serialized path
//! elements (`f:<name>`, `k:<json object of key fields>`, `v:<json value>`,
//! `i:<index>`) and whose values are the next level; an element that is a
//! member and also has members below it carries `".": {}`. An element with
//! nothing below it is a member even without `"."`.
//!
//! Reading is as lenient as kube-apiserver's: keys with an unknown prefix
//! are skipped (a later format may add kinds), and the value of `"."` is
//! ignored. Anything else malformed is an error, which the caller reports
//! as invalid managed fields.
//!
//! [`FieldSet::to_fields_v1`] gives a `serde_json::Value`, whose object keys
//! serialize sorted; [`FieldSet::to_fields_v1_string`] gives the exact bytes
//! kube-apiserver writes (keys in element order, `"."` first). Both read
//! back to the same set.

use super::path::PathElement;
use super::set::FieldSet;
use super::value;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Why a `fieldsV1` document could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldsV1Error {
    /// A level of the document (the document itself, or the value under
    /// `key`) is not a JSON object.
    NotAnObject {
        /// The key whose value is not an object; empty for the document.
        key: String,
    },
    /// A key is not a path element.
    InvalidElement {
        /// The offending key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for FieldsV1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldsV1Error::NotAnObject { key } if key.is_empty() => {
                f.write_str("fieldsV1 must be a JSON object")
            }
            FieldsV1Error::NotAnObject { key } => {
                write!(f, "the value of {key:?} in fieldsV1 must be a JSON object")
            }
            FieldsV1Error::InvalidElement { key, reason } => {
                write!(f, "invalid fieldsV1 key {key:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for FieldsV1Error {}

/// A path element as a `fieldsV1` key.
pub(crate) fn element_key(pe: &PathElement) -> String {
    let mut out = String::new();
    match pe {
        PathElement::Field(name) => {
            out.push_str("f:");
            out.push_str(name);
        }
        PathElement::Key(fields) => {
            out.push_str("k:{");
            for (i, (name, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value::json_string(name, &mut out);
                out.push(':');
                value::json(v, &mut out);
            }
            out.push('}');
        }
        PathElement::Value(v) => {
            out.push_str("v:");
            value::json(v, &mut out);
        }
        PathElement::Index(i) => {
            out.push_str("i:");
            out.push_str(&i.to_string());
        }
    }
    out
}

/// Whether `doc`, a `fieldsV1` document in the form
/// [`FieldSet::to_fields_v1`] writes, holds `path`; `None` when `doc` is not
/// in that form along the way.
pub(crate) fn holds(doc: &Value, path: &[PathElement]) -> Option<bool> {
    let Some((last, parents)) = path.split_last() else {
        return Some(false);
    };
    let mut level = doc.as_object()?;
    for pe in parents {
        match level.get(&element_key(pe)) {
            None => return Some(false),
            Some(Value::Object(below)) => level = below,
            Some(_) => return None,
        }
    }
    match level.get(&element_key(last)) {
        None => Some(false),
        // A member is a leaf (`{}`) or marked with `"."`.
        Some(Value::Object(below)) => Some(below.is_empty() || below.contains_key(".")),
        Some(_) => None,
    }
}

/// A `fieldsV1` key as a path element; `Ok(None)` for an unknown kind.
fn parse_element(key: &str) -> Result<Option<PathElement>, FieldsV1Error> {
    let invalid = |reason| FieldsV1Error::InvalidElement {
        key: key.to_string(),
        reason,
    };
    let bytes = key.as_bytes();
    if bytes.len() < 2 {
        return Err(invalid("shorter than two characters"));
    }
    if bytes[1] != b':' {
        return Err(invalid("missing colon"));
    }
    // The second byte is ASCII, so the third starts a character.
    let rest = &key[2..];
    match bytes[0] {
        b'f' => Ok(Some(PathElement::Field(rest.to_string()))),
        b'v' => serde_json::from_str(rest)
            .map(|v| Some(PathElement::Value(v)))
            .map_err(|_| invalid("the value is not JSON")),
        b'k' => match serde_json::from_str::<Value>(rest) {
            Ok(Value::Object(fields)) => {
                let mut fields: Vec<(String, Value)> = fields.into_iter().collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(Some(PathElement::Key(fields)))
            }
            _ => Err(invalid("the key is not a JSON object")),
        },
        b'i' => rest
            .parse()
            .map(|i| Some(PathElement::Index(i)))
            .map_err(|_| invalid("the index is not an integer")),
        _ => Ok(None),
    }
}

/// Reads one level: its set (`None` when nothing below was recognized) and
/// whether it was marked with `"."`.
fn read_level(doc: &Map<String, Value>) -> Result<(Option<FieldSet>, bool), FieldsV1Error> {
    let mut members = BTreeSet::new();
    let mut children = BTreeMap::new();
    let mut dot = false;
    let mut any = false;
    for (key, child) in doc {
        if key == "." {
            dot = true;
            continue;
        }
        let Some(pe) = parse_element(key)? else {
            continue;
        };
        let Value::Object(child) = child else {
            return Err(FieldsV1Error::NotAnObject { key: key.clone() });
        };
        let (below, marked) = read_level(child)?;
        // A level with nothing recognized below it is a leaf member.
        if marked || below.is_none() {
            members.insert(pe.clone());
        }
        if let Some(below) = below {
            children.insert(pe, below);
        }
        any = true;
    }
    let set = any.then(|| FieldSet::from_parts(members, children));
    Ok((set, dot))
}

fn write_value(set: &FieldSet) -> Map<String, Value> {
    let mut out = Map::new();
    for pe in set.members() {
        out.insert(element_key(pe), Value::Object(Map::new()));
    }
    for (pe, below) in set.children() {
        let mut level = write_value(below);
        if set.has_member(pe) {
            level.insert(".".to_string(), Value::Object(Map::new()));
        }
        out.insert(element_key(pe), Value::Object(level));
    }
    out
}

fn write_text(set: &FieldSet, with_dot: bool, out: &mut String) {
    out.push('{');
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
    };
    if with_dot {
        sep(out);
        out.push_str("\".\":{}");
    }
    let mut elements: Vec<(&PathElement, Option<&FieldSet>)> = set
        .members()
        .filter(|pe| set.child(pe).is_none())
        .map(|pe| (pe, None))
        .chain(set.children().map(|(pe, below)| (pe, Some(below))))
        .collect();
    elements.sort_by(|a, b| a.0.cmp(b.0));
    for (pe, below) in elements {
        sep(out);
        value::json_string(&element_key(pe), out);
        out.push(':');
        match below {
            Some(below) => write_text(below, set.has_member(pe), out),
            None => out.push_str("{}"),
        }
    }
    out.push('}');
}

impl FieldSet {
    /// Reads a `fieldsV1` document.
    pub fn from_fields_v1(doc: &Value) -> Result<FieldSet, FieldsV1Error> {
        let Value::Object(doc) = doc else {
            return Err(FieldsV1Error::NotAnObject { key: String::new() });
        };
        Ok(read_level(doc)?.0.unwrap_or_default())
    }

    /// The set as a `fieldsV1` document.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(write_value(self))
    }

    /// The set as the `fieldsV1` text kube-apiserver writes.
    pub fn to_fields_v1_string(&self) -> String {
        let mut out = String::new();
        write_text(self, false, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXAMPLE: &str = r#"{"f:metadata":{"f:labels":{"f:team":{}}},"f:spec":{"f:mxReplicaSpecs":{"f:Worker":{".":{},"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"mxnet\"}":{".":{},"f:image":{}}}}}}}}}"#;

    #[test]
    fn reads_and_writes_the_kubernetes_text() {
        let doc: Value = serde_json::from_str(EXAMPLE).unwrap();
        let set = FieldSet::from_fields_v1(&doc).unwrap();
        let text: Vec<String> = set.paths().iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                ".metadata.labels.team",
                ".spec.mxReplicaSpecs.Worker",
                ".spec.mxReplicaSpecs.Worker.replicas",
                ".spec.mxReplicaSpecs.Worker.template.spec.containers[name=\"mxnet\"]",
                ".spec.mxReplicaSpecs.Worker.template.spec.containers[name=\"mxnet\"].image",
            ]
        );
        assert_eq!(set.to_fields_v1_string(), EXAMPLE);
        assert_eq!(set.to_fields_v1(), doc);
    }

    #[test]
    fn text_orders_keys_as_elements_not_as_strings() {
        let port = |p: i64| {
            PathElement::Key(vec![
                ("containerPort".into(), json!(p)),
                ("protocol".into(), json!("TCP")),
            ])
        };
        let mut set = FieldSet::new();
        set.insert(&[PathElement::Field("ports".into()), port(10)]);
        set.insert(&[PathElement::Field("ports".into()), port(9)]);
        assert_eq!(
            set.to_fields_v1_string(),
            r#"{"f:ports":{"k:{\"containerPort\":9,\"protocol\":\"TCP\"}":{},"k:{\"containerPort\":10,\"protocol\":\"TCP\"}":{}}}"#
        );
    }

    #[test]
    fn unknown_kinds_are_skipped_and_bad_keys_refused() {
        let set = FieldSet::from_fields_v1(&json!({"x:y": {}, "f:a": {"z:q": {}}})).unwrap();
        assert_eq!(set.paths().len(), 1);
        assert_eq!(set.paths()[0].to_string(), ".a");
        assert!(matches!(
            FieldSet::from_fields_v1(&json!({"f": {}})),
            Err(FieldsV1Error::InvalidElement { .. })
        ));
        assert!(matches!(
            FieldSet::from_fields_v1(&json!({"fa": {}})),
            Err(FieldsV1Error::InvalidElement { .. })
        ));
        assert!(matches!(
            FieldSet::from_fields_v1(&json!({"k:[1]": {}})),
            Err(FieldsV1Error::InvalidElement { .. })
        ));
        assert!(matches!(
            FieldSet::from_fields_v1(&json!({"f:a": 1})),
            Err(FieldsV1Error::NotAnObject { .. })
        ));
        assert_eq!(
            FieldSet::from_fields_v1(&json!({})).unwrap(),
            FieldSet::new()
        );
    }

    #[test]
    fn set_items_and_indexes_round_trip() {
        let mut set = FieldSet::new();
        set.insert(&[
            PathElement::Field("finalizers".into()),
            PathElement::Value(json!("a<b")),
        ]);
        set.insert(&[PathElement::Field("l".into()), PathElement::Index(3)]);
        let text = set.to_fields_v1_string();
        assert_eq!(
            text,
            r#"{"f:finalizers":{"v:\"a\\u003cb\"":{}},"f:l":{"i:3":{}}}"#
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(FieldSet::from_fields_v1(&back).unwrap(), set);
        assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap(), set);
    }
}
