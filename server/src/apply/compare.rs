//! Comparing two versions of an object: which fields were added, modified
//! or removed.
//!
//! This is what moves ownership. A leaf is modified when its values differ;
//! a granular container is compared child by child and is itself added or
//! removed when it appears or disappears, so the manager that creates
//! `spec.mxReplicaSpecs.Worker` owns that item as well as its fields. When
//! both sides of a granular container are empty (or `null`) it is compared
//! as a leaf, so `{}` against `null` is a modification.
//!
//! Stored lists may repeat a key. As in kube-apiserver, items repeated on
//! both sides are compared as whole lists of copies, and an item that is
//! repeated on one side only is added or removed as a whole.

use super::path::PathElement;
use super::schema::Type;
use super::set::FieldSet;
use super::typed::{granular, item_type, Granular};
use super::value;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The fields that differ between two versions of an object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    /// Leaves out `reset` and everything below it.
    pub(crate) fn without(self, reset: &FieldSet) -> Comparison {
        Comparison {
            added: self.added.recursive_difference(reset),
            modified: self.modified.recursive_difference(reset),
            removed: self.removed.recursive_difference(reset),
        }
    }

    /// Fields whose value the new version sets anew.
    pub(crate) fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// Compares `old` and `new` as values of `ty`.
pub(crate) fn compare(ty: &Type, old: &Value, new: &Value) -> Comparison {
    let mut out = Comparison::default();
    walk(ty, Some(old), Some(new), &mut Vec::new(), &mut out);
    out
}

enum Mode<'v> {
    Leaf,
    Map(
        Option<&'v Map<String, Value>>,
        Option<&'v Map<String, Value>>,
    ),
    List(Vec<(PathElement, &'v Value)>, Vec<(PathElement, &'v Value)>),
}

/// How the two sides are walked: as containers when both are (or one is
/// absent) and they are not both empty.
fn mode<'v>(ty: &Type, lhs: Option<&'v Value>, rhs: Option<&'v Value>) -> Mode<'v> {
    let l = lhs.map(|v| granular(ty, v));
    let r = rhs.map(|v| granular(ty, v));
    let empty = |side: &Option<Option<Granular<'_>>>| match side {
        None => true,
        Some(Some(g)) => g.is_empty(),
        Some(None) => false,
    };
    if empty(&l) && empty(&r) {
        return Mode::Leaf;
    }
    match (l, r) {
        (Some(Some(Granular::Map(l))), Some(Some(Granular::Map(r)))) => Mode::Map(l, r),
        (Some(Some(Granular::Map(l))), None) => Mode::Map(l, None),
        (None, Some(Some(Granular::Map(r)))) => Mode::Map(None, r),
        (Some(Some(Granular::List(l))), Some(Some(Granular::List(r)))) => {
            Mode::List(l.unwrap_or_default(), r.unwrap_or_default())
        }
        (Some(Some(Granular::List(l))), None) => Mode::List(l.unwrap_or_default(), Vec::new()),
        (None, Some(Some(Granular::List(r)))) => Mode::List(Vec::new(), r.unwrap_or_default()),
        _ => Mode::Leaf,
    }
}

fn walk(
    ty: &Type,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) {
    match mode(ty, lhs, rhs) {
        Mode::Leaf => match (lhs, rhs) {
            (None, None) => {}
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            (Some(l), Some(r)) => {
                if !value::equal(l, r) {
                    out.modified.insert(path);
                }
            }
        },
        Mode::Map(l, r) => {
            let empty = Map::new();
            let (lm, rm) = (l.unwrap_or(&empty), r.unwrap_or(&empty));
            let mut names: Vec<&String> = lm.keys().chain(rm.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                path.push(PathElement::Field(name.clone()));
                walk(ty.child(name).0, lm.get(name), rm.get(name), path, out);
                path.pop();
            }
            container_presence(lhs, rhs, path, out);
        }
        Mode::List(l, r) => {
            compare_items(item_type(ty), &l, &r, path, out);
            container_presence(lhs, rhs, path, out);
        }
    }
}

fn container_presence(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &[PathElement],
    out: &mut Comparison,
) {
    if lhs.is_none() {
        out.added.insert(path);
    } else if rhs.is_none() {
        out.removed.insert(path);
    }
}

fn compare_items(
    item_ty: &Type,
    lhs: &[(PathElement, &Value)],
    rhs: &[(PathElement, &Value)],
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) {
    // Keys in order of first appearance, old side first.
    let mut order: Vec<&PathElement> = Vec::new();
    let mut old: BTreeMap<&PathElement, Vec<&Value>> = BTreeMap::new();
    let mut new: BTreeMap<&PathElement, Vec<&Value>> = BTreeMap::new();
    for (pe, v) in lhs {
        let copies = old.entry(pe).or_default();
        if copies.is_empty() {
            order.push(pe);
        }
        copies.push(v);
    }
    for (pe, v) in rhs {
        let copies = new.entry(pe).or_default();
        if copies.is_empty() && !old.contains_key(pe) {
            order.push(pe);
        }
        copies.push(v);
    }
    for pe in order {
        let l = old.get(pe).map_or(&[][..], Vec::as_slice);
        let r = new.get(pe).map_or(&[][..], Vec::as_slice);
        path.push(pe.clone());
        match (l.len(), r.len()) {
            (0..=1, 0..=1) => walk(item_ty, l.first().copied(), r.first().copied(), path, out),
            (2.., 2..) => {
                let same = l.len() == r.len() && l.iter().zip(r).all(|(a, b)| value::equal(a, b));
                if !same {
                    out.modified.insert(path);
                }
            }
            (2.., _) => {
                if let Some(first) = r.first() {
                    walk(item_ty, None, Some(first), path, out);
                }
                out.removed.insert(path);
            }
            (_, _) => {
                if let Some(first) = l.first() {
                    walk(item_ty, Some(first), None, path, out);
                }
                out.added.insert(path);
            }
        }
        path.pop();
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
    fn leaves_and_containers() {
        let old =
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"backoffLimit": 1}});
        let new = json!({
            "metadata": {"labels": {"a": "1", "c": "3"}},
            "spec": {"backoffLimit": 2, "mxReplicaSpecs": {"Worker": {"replicas": 1}}}
        });
        let c = compare(&MXJOB, &old, &new);
        assert_eq!(
            texts(&c.added),
            [
                ".metadata.labels.c",
                ".spec.mxReplicaSpecs",
                ".spec.mxReplicaSpecs.Worker",
                ".spec.mxReplicaSpecs.Worker.replicas"
            ]
        );
        assert_eq!(texts(&c.modified), [".spec.backoffLimit"]);
        assert_eq!(texts(&c.removed), [".metadata.labels.b"]);
    }

    #[test]
    fn empty_against_null_is_a_modification() {
        let c = compare(
            &MXJOB,
            &json!({"metadata": {"labels": {}}}),
            &json!({"metadata": {"labels": null}}),
        );
        assert_eq!(texts(&c.modified), [".metadata.labels"]);
        assert!(c.added.is_empty() && c.removed.is_empty());
    }

    #[test]
    fn keyed_items_compare_by_key_not_position() {
        let old = json!({"metadata": {"finalizers": ["a", "b"]}});
        let new = json!({"metadata": {"finalizers": ["b", "a", "c"]}});
        let c = compare(&MXJOB, &old, &new);
        assert_eq!(texts(&c.added), [".metadata.finalizers[=\"c\"]"]);
        assert!(c.modified.is_empty() && c.removed.is_empty());
    }

    #[test]
    fn repeated_keys_change_as_a_whole() {
        let old = json!({"metadata": {"finalizers": ["a", "a"]}});
        let new = json!({"metadata": {"finalizers": ["a"]}});
        let c = compare(&MXJOB, &old, &new);
        assert_eq!(texts(&c.removed), [".metadata.finalizers[=\"a\"]"]);
        assert_eq!(texts(&c.added), [".metadata.finalizers[=\"a\"]"]);
    }
}
