//! Field paths: how one field of an object is named.
//!
//! A path is a list of elements, each selecting a child of the value it is
//! applied to:
//!
//! * a struct field or map key (`f:labels` in `fieldsV1`, `.labels` in
//!   text),
//! * an item of an associative list by its key fields (`k:{"name":"mxnet"}`,
//!   `[name="mxnet"]`),
//! * an item of a set by its value (`v:"x"`, `[="x"]`),
//! * an item of a list by position (`i:0`, `[0]`): never produced here,
//!   since every list is either associative or atomic, but read and kept so
//!   that managed fields written elsewhere survive.
//!
//! Elements are totally ordered (fields, then keys, then values, then
//! indexes), which is the order of `fieldsV1` objects and of conflicts.

use super::value;
use serde_json::Value;
use std::cmp::Ordering;
use std::fmt;

/// One step of a field path.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A struct field or a map key.
    Field(String),
    /// An associative list item, by its key fields sorted by name.
    Key(Vec<(String, Value)>),
    /// A set item, by its value.
    Value(Value),
    /// A list item, by position.
    Index(i64),
}

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }
}

fn compare_keys(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for ((an, av), (bn, bv)) in a.iter().zip(b) {
        let c = an.cmp(bn).then_with(|| value::compare(av, bv));
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => compare_keys(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => value::compare(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(n, v)| format!("{n}={}", value::display(v)))
                    .collect();
                write!(f, "[{}]", fields.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", value::display(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A field path, printed as Kubernetes prints it in conflicts
/// (`.spec.mxReplicaSpecs.Worker.template.spec.containers[name="mxnet"].image`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Path(pub Vec<PathElement>);

impl Path {
    /// The path of a struct field or map key under `self`.
    pub fn field(mut self, name: &str) -> Path {
        self.0.push(PathElement::Field(name.to_string()));
        self
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|pe| write!(f, "{pe}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn elements_order_fields_keys_values_indexes() {
        let mut pes = [
            PathElement::Index(0),
            PathElement::Value(json!("a")),
            PathElement::Key(vec![("name".into(), json!("a"))]),
            PathElement::Field("b".into()),
            PathElement::Field("a".into()),
        ];
        pes.sort();
        let text: Vec<String> = pes.iter().map(ToString::to_string).collect();
        assert_eq!(text, [".a", ".b", "[name=\"a\"]", "[=\"a\"]", "[0]"]);
    }

    #[test]
    fn key_elements_compare_numbers_by_magnitude() {
        let port = |p: i64| {
            PathElement::Key(vec![
                ("containerPort".into(), json!(p)),
                ("protocol".into(), json!("TCP")),
            ])
        };
        assert!(port(9) < port(10));
        assert_eq!(port(80).to_string(), "[containerPort=80,protocol=\"TCP\"]");
    }

    #[test]
    fn paths_print_like_kubernetes() {
        let path = Path::default()
            .field("spec")
            .field("ttlSecondsAfterFinished");
        assert_eq!(path.to_string(), ".spec.ttlSecondsAfterFinished");
    }
}
