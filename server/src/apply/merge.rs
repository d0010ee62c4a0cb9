//! Merging an applied configuration into the live object.
//!
//! The configuration wins on every leaf it sets; granular containers merge
//! child by child, so fields the configuration does not mention keep their
//! live values. Details that match kube-apiserver:
//!
//! * A `null` or empty configuration value on a granular container whose
//!   live value is non-empty changes nothing (the container merges with
//!   nothing); when both sides are empty the configuration's value is kept.
//! * Associative lists merge item by item. Items the configuration names
//!   appear in the configuration's order; live items it does not name stay
//!   where they were relative to the items around them. A live list holding
//!   one key twice keeps both copies unless the configuration names that
//!   key, which merges them into one item.

use super::path::PathElement;
use super::schema::Type;
use super::typed::{granular, item_type, Granular};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Merges `rhs` (the configuration) into `lhs` (the live value).
pub(crate) fn merge(ty: &Type, lhs: Option<&Value>, rhs: Option<&Value>) -> Option<Value> {
    let (lhs, rhs) = match (lhs, rhs) {
        (None, None) => return None,
        (Some(v), None) | (None, Some(v)) => return Some(v.clone()),
        (Some(l), Some(r)) => (l, r),
    };
    match (granular(ty, lhs), granular(ty, rhs)) {
        (Some(Granular::Map(l)), Some(Granular::Map(r))) if !(map_empty(&l) && map_empty(&r)) => {
            Some(Value::Object(merge_maps(ty, l, r)))
        }
        (Some(Granular::List(l)), Some(Granular::List(r)))
            if !(l.as_ref().is_none_or(Vec::is_empty) && r.as_ref().is_none_or(Vec::is_empty)) =>
        {
            Some(Value::Array(merge_lists(
                item_type(ty),
                l.unwrap_or_default(),
                r.unwrap_or_default(),
            )))
        }
        _ => Some(rhs.clone()),
    }
}

fn map_empty(m: &Option<&Map<String, Value>>) -> bool {
    m.is_none_or(|m| m.is_empty())
}

fn merge_maps(
    ty: &Type,
    lhs: Option<&Map<String, Value>>,
    rhs: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let empty = Map::new();
    let (lhs, rhs) = (lhs.unwrap_or(&empty), rhs.unwrap_or(&empty));
    let mut out = Map::new();
    for name in lhs.keys().chain(rhs.keys()) {
        if out.contains_key(name) {
            continue;
        }
        if let Some(v) = merge(ty.child(name).0, lhs.get(name), rhs.get(name)) {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// Merges keyed list items, ordering them as described in the module docs.
fn merge_lists(
    item_ty: &Type,
    lhs: Vec<(PathElement, &Value)>,
    rhs: Vec<(PathElement, &Value)>,
) -> Vec<Value> {
    // Live items by key; a repeated key merges as `null` (no content).
    let mut live: BTreeMap<&PathElement, &Value> = BTreeMap::new();
    for (pe, item) in &lhs {
        live.entry(pe)
            .and_modify(|v| *v = &Value::Null)
            .or_insert(item);
    }
    let applied: BTreeMap<&PathElement, &Value> = rhs.iter().map(|(pe, v)| (pe, *v)).collect();
    // Keys in both lists, in the configuration's order.
    let mut shared: VecDeque<&PathElement> = rhs
        .iter()
        .map(|(pe, _)| pe)
        .filter(|pe| live.contains_key(pe))
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged: BTreeSet<&PathElement> = BTreeSet::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            let pe = &lhs[li].0;
            if *pe == rhs[ri].0 {
                merged.insert(pe);
                out.extend(merge(item_ty, live.get(pe).copied(), Some(rhs[ri].1)));
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            // A shared item waits for its turn in the configuration's order.
            if applied.contains_key(pe) && next_shared.is_some_and(|next| next != pe) {
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let (pe, item) = &lhs[li];
            if !applied.contains_key(pe) {
                out.extend(merge(item_ty, Some(item), None));
                li += 1;
                continue;
            }
            if merged.contains(pe) {
                li += 1;
            }
        }
        if ri < rhs.len() {
            let (pe, item) = &rhs[ri];
            merged.insert(pe);
            out.extend(merge(item_ty, live.get(pe).copied(), Some(item)));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::schema::MXJOB;
    use super::*;
    use serde_json::json;

    fn finalizers(live: &[&str], applied: &[&str]) -> Vec<String> {
        let wrap = |f: &[&str]| json!({"metadata": {"finalizers": f}});
        let out = merge(&MXJOB, Some(&wrap(live)), Some(&wrap(applied))).unwrap();
        serde_json::from_value(out["metadata"]["finalizers"].clone()).unwrap()
    }

    /// Orders of merged set items, as kube-apiserver orders them.
    #[test]
    fn set_items_keep_live_order_around_applied_order() {
        let cases: &[(&str, &str, &str)] = &[
            ("abc", "ab", "abc"),
            ("ab", "abc", "abc"),
            ("abc", "", "abc"),
            ("", "abc", "abc"),
            ("ab", "ba", "ba"),
            ("abc", "def", "abcdef"),
            ("abc", "cdef", "abcdef"),
            ("abcgf", "cdef", "abcgdef"),
            ("cdef", "ace", "acdef"),
            ("abcxyz", "def", "abcxyzdef"),
            ("abcxyz", "defxyz", "abcdefxyz"),
            ("cagf", "cfag", "cfag"),
            ("abcd", "defa", "bcdefa"),
            ("cdefghij", "2h3e4kl", "cdfg2hij3e4kl"),
            ("abcdefghij", "1b2h3e4kl", "a1bcdfg2hij3e4kl"),
            ("abb", "c", "abbc"),
            ("abb", "b", "ab"),
            ("abb", "a", "abb"),
            ("abcdec", "1b2ed", "a1bc2ecd"),
            ("abcdec", "1b2ced", "a1b2ced"),
            ("aabb", "bcd", "aabcd"),
        ];
        for (live, applied, want) in cases {
            let split = |s: &'static str| s.split("").filter(|c| !c.is_empty()).collect::<Vec<_>>();
            let got = finalizers(&split(live), &split(applied)).concat();
            assert_eq!(&got, want, "live {live}, applied {applied}");
        }
    }

    #[test]
    fn keyed_items_merge_field_by_field() {
        let live = json!({"spec": {"mxReplicaSpecs": {"Worker": {"replicas": 1, "template": {"spec": {
            "containers": [
                {"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]},
                {"name": "b", "image": "y"}
            ],
            "tolerations": [{"key": "t1"}, {"key": "t2"}]
        }}}}}});
        let applied = json!({"spec": {"mxReplicaSpecs": {"Worker": {"template": {"spec": {
            "containers": [{"name": "a", "env": [{"name": "F", "value": "2"}]}],
            "tolerations": [{"key": "t3"}]
        }}}}}});
        let out = merge(&MXJOB, Some(&live), Some(&applied)).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"mxReplicaSpecs": {"Worker": {"replicas": 1, "template": {"spec": {
                "containers": [
                    {"name": "a", "image": "x", "env": [
                        {"name": "E", "value": "1"}, {"name": "F", "value": "2"}
                    ]},
                    {"name": "b", "image": "y"}
                ],
                "tolerations": [{"key": "t3"}]
            }}}}}})
        );
    }

    #[test]
    fn null_does_not_clear_a_granular_map() {
        let live = json!({"metadata": {"labels": {"a": "1"}}});
        let applied = json!({"metadata": {"labels": null}});
        let out = merge(&MXJOB, Some(&live), Some(&applied)).unwrap();
        assert_eq!(out, live);
        let empty = json!({"metadata": {"labels": {}}});
        let out = merge(&MXJOB, Some(&json!({"metadata": {}})), Some(&empty)).unwrap();
        assert_eq!(out, empty);
    }
}
