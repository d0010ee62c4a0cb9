//! Reading a value through the schema: which parts are granular, what
//! identifies a list item, and the set of fields a value holds.
//!
//! Values that do not fit the schema are not errors here. A struct field
//! holding a string, or a list whose items cannot be keyed, is handled as
//! one atomic leaf by every walk (field sets, merge, comparison, removal),
//! so the walks always agree; validation rejects such objects elsewhere.
//! Only the applied configuration is checked strictly
//! ([`validate_config`]), because its items must be keyed to be merged.

use super::path::{Path, PathElement};
use super::schema::{Key, Type};
use super::set::FieldSet;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A value seen as a granular container; `None` fields stand for `null`,
/// which merges as an empty container.
pub(crate) enum Granular<'v> {
    Map(Option<&'v Map<String, Value>>),
    List(Option<Vec<(PathElement, &'v Value)>>),
}

impl Granular<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Granular::Map(m) => m.is_none_or(|m| m.is_empty()),
            Granular::List(l) => l.as_ref().is_none_or(|l| l.is_empty()),
        }
    }
}

/// How `v` is walked under `ty`: `None` for a leaf.
pub(crate) fn granular<'v>(ty: &Type, v: &'v Value) -> Option<Granular<'v>> {
    match (ty, v) {
        (Type::Struct(_) | Type::Map(_), Value::Object(m)) => Some(Granular::Map(Some(m))),
        (Type::Struct(_) | Type::Map(_), Value::Null) => Some(Granular::Map(None)),
        (Type::Associative { .. } | Type::Set, Value::Array(items)) => items
            .iter()
            .map(|item| item_element(ty, item).ok().map(|pe| (pe, item)))
            .collect::<Option<Vec<_>>>()
            .map(|items| Granular::List(Some(items))),
        (Type::Associative { .. } | Type::Set, Value::Null) => Some(Granular::List(None)),
        _ => None,
    }
}

/// The type of the items of a list type.
pub(crate) fn item_type(ty: &Type) -> &'static Type {
    match ty {
        Type::Associative { item, .. } => item,
        _ => &Type::Atomic,
    }
}

/// Why a list item has no path element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemProblem {
    /// A `null` item in a keyed list.
    NullInKeyedList,
    /// A non-object item in a keyed list.
    NotAnObject,
    /// An item with none of the key fields (and no defaults for them).
    NoKeyFields,
    /// An object item in a set.
    ObjectInSet,
    /// A list item in a set.
    ListInSet,
    /// A `null` item in a set.
    NullInSet,
}

fn key_element(keys: &[Key], item: &Value) -> Result<PathElement, ItemProblem> {
    let fields = match item {
        Value::Object(fields) => fields,
        Value::Null => return Err(ItemProblem::NullInKeyedList),
        _ => return Err(ItemProblem::NotAnObject),
    };
    let mut key: Vec<(String, Value)> = keys
        .iter()
        .filter_map(|k| {
            let v = fields
                .get(k.name)
                .cloned()
                .or_else(|| k.default.map(|d| Value::String(d.to_string())))?;
            Some((k.name.to_string(), v))
        })
        .collect();
    if key.is_empty() {
        return Err(ItemProblem::NoKeyFields);
    }
    key.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(PathElement::Key(key))
}

/// The element that names `item` in a list of type `ty`.
pub(crate) fn item_element(ty: &Type, item: &Value) -> Result<PathElement, ItemProblem> {
    match (ty, item) {
        (Type::Associative { keys, .. }, _) => key_element(keys, item),
        (_, Value::Object(_)) => Err(ItemProblem::ObjectInSet),
        (_, Value::Array(_)) => Err(ItemProblem::ListInSet),
        (_, Value::Null) => Err(ItemProblem::NullInSet),
        (_, scalar) => Ok(PathElement::Value(scalar.clone())),
    }
}

/// The fields `v` holds: every leaf, every map key that is not a named
/// struct field, every list item, and every `null` or empty object.
pub(crate) fn fields_of(ty: &Type, v: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    collect_fields(ty, v, &mut Vec::new(), &mut set);
    set
}

fn collect_fields(ty: &Type, v: &Value, path: &mut Vec<PathElement>, set: &mut FieldSet) {
    match granular(ty, v) {
        None => set.insert(path),
        Some(Granular::Map(None) | Granular::List(None)) => {}
        Some(Granular::Map(Some(fields))) => {
            for (name, child) in fields {
                let (child_ty, named) = ty.child(name);
                path.push(PathElement::Field(name.clone()));
                collect_fields(child_ty, child, path, set);
                let empty_object = child.as_object().is_some_and(Map::is_empty);
                if child.is_null() || empty_object || !named {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Some(Granular::List(Some(items))) => {
            // Items sharing a key (possible in stored objects) are owned as
            // one item, never looked into.
            let mut seen = BTreeSet::new();
            let mut repeated = BTreeSet::new();
            for (pe, _) in &items {
                if !seen.insert(pe) {
                    repeated.insert(pe);
                }
            }
            let elem_ty = item_type(ty);
            for (pe, item) in &items {
                path.push(pe.clone());
                if !repeated.contains(pe) {
                    collect_fields(elem_ty, item, path, set);
                }
                set.insert(path);
                path.pop();
            }
        }
    }
}

/// `set` plus, as members, every named struct field that has members below
/// it; used when removing fields, so that removing everything a manager
/// owned under `spec` can remove `spec.runPolicy` itself.
pub(crate) fn with_named_fields(ty: &Type, set: &FieldSet) -> FieldSet {
    let mut members: BTreeSet<PathElement> = set.members().cloned().collect();
    let mut children = BTreeMap::new();
    for (pe, below) in set.children() {
        let child_ty = match pe {
            PathElement::Field(name) => {
                let (child_ty, named) = ty.child(name);
                if named && matches!(ty, Type::Struct(_)) {
                    members.insert(pe.clone());
                }
                child_ty
            }
            PathElement::Key(_) => item_type(ty),
            _ => &Type::Atomic,
        };
        children.insert(pe.clone(), with_named_fields(child_ty, below));
    }
    FieldSet::from_parts(members, children)
}

/// Why an applied configuration cannot be merged.
#[derive(Clone, Debug, PartialEq)]
pub enum InvalidConfig {
    /// A list item has no path element.
    Item {
        /// The list.
        path: Path,
        /// The item's position.
        index: usize,
        problem: ItemProblem,
    },
    /// Two items of a list share a key.
    Duplicate {
        /// The list.
        path: Path,
        /// The shared key.
        key: PathElement,
    },
}

impl fmt::Display for ItemProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemProblem::NullInKeyedList => {
                "associative list with keys may not have a null element"
            }
            ItemProblem::NotAnObject => "associative list with keys may not have non-map elements",
            ItemProblem::NoKeyFields => {
                "associative list with keys has an element that omits all key fields"
            }
            ItemProblem::ObjectInSet => {
                "associative list without keys has an element that's a map type"
            }
            ItemProblem::ListInSet => "not supported: associative list with lists as elements",
            ItemProblem::NullInSet => {
                "associative list without keys has an element that's an explicit null"
            }
        })
    }
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidConfig::Item {
                path,
                index,
                problem,
            } => write!(f, "{path}: element {index}: {problem}"),
            InvalidConfig::Duplicate { path, key } => {
                write!(f, "{path}: duplicate entries for key {key}")
            }
        }
    }
}

impl std::error::Error for InvalidConfig {}

/// Checks that every list item of an applied configuration has a unique
/// path element (Kubernetes refuses duplicates in what is applied, while
/// tolerating them in stored objects).
pub(crate) fn validate_config(ty: &Type, v: &Value) -> Result<(), InvalidConfig> {
    validate(ty, v, &mut Vec::new())
}

fn validate(ty: &Type, v: &Value, path: &mut Vec<PathElement>) -> Result<(), InvalidConfig> {
    match (ty, v) {
        (Type::Struct(_) | Type::Map(_), Value::Object(fields)) => {
            for (name, child) in fields {
                path.push(PathElement::Field(name.clone()));
                validate(ty.child(name).0, child, path)?;
                path.pop();
            }
        }
        (Type::Associative { .. } | Type::Set, Value::Array(items)) => {
            let mut seen = BTreeSet::new();
            for (index, item) in items.iter().enumerate() {
                let pe = item_element(ty, item).map_err(|problem| InvalidConfig::Item {
                    path: Path(path.clone()),
                    index,
                    problem,
                })?;
                if seen.contains(&pe) {
                    return Err(InvalidConfig::Duplicate {
                        path: Path(path.clone()),
                        key: pe,
                    });
                }
                path.push(pe.clone());
                validate(item_type(ty), item, path)?;
                path.pop();
                seen.insert(pe);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Drops object members whose value is `null`, at any depth: what decoding
/// into the typed MXJob does, so the object returned is the one stored.
pub(crate) fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(fields) => {
            fields.retain(|_, child| !child.is_null());
            fields.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::MXJOB;
    use super::*;
    use serde_json::json;

    fn texts(set: &FieldSet) -> Vec<String> {
        set.paths().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn fields_of_marks_map_keys_and_items_but_not_struct_fields() {
        let job = json!({
            "metadata": {"labels": {"team": "a"}, "annotations": {}},
            "spec": {"mxReplicaSpecs": {"Worker": {"replicas": 2, "template": {"spec": {
                "containers": [{"name": "mxnet", "image": "x",
                    "ports": [{"containerPort": 80}]}],
                "tolerations": [{"key": "k"}]
            }}}}}
        });
        assert_eq!(
            texts(&fields_of(&MXJOB, &job)),
            [
                ".metadata.annotations",
                ".metadata.labels.team",
                ".spec.mxReplicaSpecs.Worker",
                ".spec.mxReplicaSpecs.Worker.replicas",
                ".spec.mxReplicaSpecs.Worker.template.spec.tolerations",
                ".spec.mxReplicaSpecs.Worker.template.spec.containers[name=\"mxnet\"]",
                ".spec.mxReplicaSpecs.Worker.template.spec.containers[name=\"mxnet\"].image",
                ".spec.mxReplicaSpecs.Worker.template.spec.containers[name=\"mxnet\"].name",
                ".spec.mxReplicaSpecs.Worker.template.spec.containers[name=\"mxnet\"].ports[containerPort=80,protocol=\"TCP\"]",
                ".spec.mxReplicaSpecs.Worker.template.spec.containers[name=\"mxnet\"].ports[containerPort=80,protocol=\"TCP\"].containerPort",
            ]
        );
    }

    #[test]
    fn unkeyable_lists_are_leaves() {
        let job = json!({"spec": {"mxReplicaSpecs": {"Worker": {"template": {"spec": {
            "containers": [{"image": "x"}]
        }}}}}});
        assert_eq!(
            texts(&fields_of(&MXJOB, &job)),
            [
                ".spec.mxReplicaSpecs.Worker",
                ".spec.mxReplicaSpecs.Worker.template.spec.containers"
            ]
        );
    }

    #[test]
    fn named_fields_become_members() {
        let job = json!({"metadata": {"labels": {"a": "b"}}});
        let set = with_named_fields(&MXJOB, &fields_of(&MXJOB, &job));
        assert_eq!(
            texts(&set),
            [".metadata", ".metadata.labels", ".metadata.labels.a"]
        );
    }

    #[test]
    fn config_validation_refuses_duplicates_and_unkeyed_items() {
        let dup = json!({"metadata": {"finalizers": ["a", "a"]}});
        assert_eq!(
            validate_config(&MXJOB, &dup).unwrap_err().to_string(),
            ".metadata.finalizers: duplicate entries for key [=\"a\"]"
        );
        let unkeyed = json!({"metadata": {"ownerReferences": [{"name": "x"}]}});
        assert_eq!(
            validate_config(&MXJOB, &unkeyed).unwrap_err(),
            InvalidConfig::Item {
                path: Path::default().field("metadata").field("ownerReferences"),
                index: 0,
                problem: ItemProblem::NoKeyFields
            }
        );
    }
}
