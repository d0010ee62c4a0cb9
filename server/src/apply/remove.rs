//! Removing fields from a value: how a manager's dropped fields leave the
//! object.
//!
//! A member of the set removes that field or item with everything below it;
//! children of the set are looked for inside. As in kube-apiserver, a
//! granular container left empty (or empty to begin with, when the set
//! reaches into it) becomes `null`, which the caller finally drops: the
//! typed object never holds empty maps that were only emptied by removal.

use super::path::PathElement;
use super::schema::Type;
use super::set::FieldSet;
use super::typed::{granular, item_type, Granular};
use serde_json::{Map, Value};

/// `v` without the fields of `set`; `Value::Null` when nothing is left.
pub(crate) fn remove(ty: &Type, v: &Value, set: &FieldSet) -> Value {
    match granular(ty, v) {
        // Leaves keep their value; the parent decides whether they stay.
        None => v.clone(),
        Some(Granular::Map(None) | Granular::List(None)) => Value::Null,
        Some(Granular::Map(Some(fields))) => {
            let mut out = Map::new();
            for (name, child) in fields {
                let pe = PathElement::Field(name.clone());
                if set.has_member(&pe) {
                    continue;
                }
                let kept = match set.child(&pe) {
                    Some(below) => remove(ty.child(name).0, child, below),
                    None => child.clone(),
                };
                out.insert(name.clone(), kept);
            }
            if out.is_empty() {
                Value::Null
            } else {
                Value::Object(out)
            }
        }
        Some(Granular::List(Some(items))) => {
            let item_ty = item_type(ty);
            let out: Vec<Value> = items
                .into_iter()
                .filter(|(pe, _)| !set.has_member(pe))
                .map(|(pe, item)| match set.child(&pe) {
                    Some(below) => remove(item_ty, item, below),
                    None => item.clone(),
                })
                // An item emptied by removal has lost its keys: drop it
                // rather than leave a `null` item.
                .filter(|item| !item.is_null())
                .collect();
            if out.is_empty() {
                Value::Null
            } else {
                Value::Array(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::path::Path;
    use super::super::schema::MXJOB;
    use super::*;
    use serde_json::json;

    fn set(paths: &[Vec<PathElement>]) -> FieldSet {
        paths.iter().map(|p| Path(p.clone())).collect()
    }

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    #[test]
    fn removes_fields_items_and_empties() {
        let job = json!({
            "metadata": {"labels": {"a": "1"}, "finalizers": ["x", "y"]},
            "spec": {"backoffLimit": 3, "cleanPodPolicy": "All"}
        });
        let gone = set(&[
            vec![f("metadata"), f("labels"), f("a")],
            vec![
                f("metadata"),
                f("finalizers"),
                PathElement::Value(json!("x")),
            ],
            vec![f("spec"), f("backoffLimit")],
        ]);
        assert_eq!(
            remove(&MXJOB, &job, &gone),
            json!({
                "metadata": {"labels": null, "finalizers": ["y"]},
                "spec": {"cleanPodPolicy": "All"}
            })
        );
    }

    #[test]
    fn a_member_takes_everything_below_it() {
        let job = json!({"spec": {"mxReplicaSpecs": {"Worker": {"replicas": 1}, "Server": {}}}});
        let gone = set(&[vec![f("spec"), f("mxReplicaSpecs"), f("Worker")]]);
        assert_eq!(
            remove(&MXJOB, &job, &gone),
            json!({"spec": {"mxReplicaSpecs": {"Server": {}}}})
        );
    }
}
