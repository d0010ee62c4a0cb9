//! Sets of field paths: what one manager owns.
//!
//! A set is a trie: at each level, the elements that are themselves in the
//! set (members) and the elements with members further down (children).
//! An element can be both: `spec.mxReplicaSpecs.Worker` is owned as an
//! item of the map (so removing it from a configuration removes the whole
//! replica spec) while fields inside it are owned too. That is the shape of
//! `fieldsV1`, where a member with children is written `".": {}`.
//!
//! Invariant: a child's set is never empty, so two sets holding the same
//! paths are equal as values, and a set is empty exactly when it has no
//! members at any depth.

use super::path::{Path, PathElement};
use std::collections::{BTreeMap, BTreeSet};

/// A set of field paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// The number of paths in the set.
    pub fn len(&self) -> usize {
        self.members.len() + self.children.values().map(FieldSet::len).sum::<usize>()
    }

    /// Adds a path; the empty path (the object itself) is never a member.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether the set holds `path`.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Whether `pe` is a member at this level.
    pub(crate) fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The paths below `pe`, relative to it.
    pub(crate) fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    pub(crate) fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    /// Builds a set from its parts, dropping empty children.
    pub(crate) fn from_parts(
        members: BTreeSet<PathElement>,
        children: BTreeMap<PathElement, FieldSet>,
    ) -> FieldSet {
        let children = children
            .into_iter()
            .filter(|(_, c)| !c.is_empty())
            .collect();
        FieldSet { members, children }
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.union(&other.members).cloned().collect();
        let mut children = self.children.clone();
        for (pe, set) in &other.children {
            let merged = match children.get(pe) {
                Some(mine) => mine.union(set),
                None => set.clone(),
            };
            children.insert(pe.clone(), merged);
        }
        FieldSet { members, children }
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, set)| {
                other
                    .children
                    .get(pe)
                    .map(|theirs| (pe.clone(), set.intersection(theirs)))
            })
            .collect();
        FieldSet::from_parts(members, children)
    }

    /// Paths of `self` that are not in `other`. Only exact paths go: a
    /// member of `other` does not take the paths below it.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .map(|(pe, set)| match other.children.get(pe) {
                Some(theirs) => (pe.clone(), set.difference(theirs)),
                None => (pe.clone(), set.clone()),
            })
            .collect();
        FieldSet::from_parts(members, children)
    }

    /// Paths of `self` that are neither in `other` nor below a member of
    /// `other`: removing `status` this way removes everything under it.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter(|(pe, _)| !other.members.contains(pe))
            .map(|(pe, set)| match other.children.get(pe) {
                Some(theirs) => (pe.clone(), set.recursive_difference(theirs)),
                None => (pe.clone(), set.clone()),
            })
            .collect();
        FieldSet::from_parts(members, children)
    }

    /// The paths with nothing below them in the set.
    pub fn leaves(&self) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|pe| !self.children.contains_key(pe))
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .map(|(pe, set)| (pe.clone(), set.leaves()))
            .collect();
        FieldSet::from_parts(members, children)
    }

    /// Every path, members of a level before the levels below it, each in
    /// element order (the order of conflicts in Kubernetes' messages).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::with_capacity(self.len());
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        for pe in &self.members {
            let mut path = prefix.clone();
            path.push(pe.clone());
            out.push(Path(path));
        }
        for (pe, set) in &self.children {
            prefix.push(pe.clone());
            set.collect_paths(prefix, out);
            prefix.pop();
        }
    }
}

impl FromIterator<Path> for FieldSet {
    fn from_iter<I: IntoIterator<Item = Path>>(paths: I) -> FieldSet {
        let mut set = FieldSet::new();
        for path in paths {
            set.insert(&path.0);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Path {
        Path(
            text.split('.')
                .filter(|s| !s.is_empty())
                .map(|s| PathElement::Field(s.to_string()))
                .collect(),
        )
    }

    fn set(paths: &[&str]) -> FieldSet {
        paths.iter().map(|p| path(p)).collect()
    }

    #[test]
    fn union_intersection_difference() {
        let a = set(&["a.b", "a.c", "d"]);
        let b = set(&["a.c", "e"]);
        assert_eq!(a.union(&b), set(&["a.b", "a.c", "d", "e"]));
        assert_eq!(a.intersection(&b), set(&["a.c"]));
        assert_eq!(a.difference(&b), set(&["a.b", "d"]));
        assert!(a.intersection(&set(&["x"])).is_empty());
        assert_eq!(a.difference(&a), FieldSet::new());
    }

    #[test]
    fn difference_keeps_what_is_below_a_removed_member() {
        let a = set(&["status", "status.x", "spec.y"]);
        let strip = set(&["status"]);
        assert_eq!(a.difference(&strip), set(&["status.x", "spec.y"]));
        assert_eq!(a.recursive_difference(&strip), set(&["spec.y"]));
    }

    #[test]
    fn leaves_drop_members_with_children() {
        let a = set(&["a", "a.b", "c"]);
        assert_eq!(a.leaves(), set(&["a.b", "c"]));
        assert_eq!(a.len(), 3);
        assert!(a.contains(&path("a").0));
        assert!(!a.contains(&path("a.c").0));
    }

    #[test]
    fn paths_list_members_before_deeper_levels() {
        let a = set(&["b.c", "a", "b"]);
        let text: Vec<String> = a.paths().iter().map(ToString::to_string).collect();
        assert_eq!(text, [".a", ".b", ".b.c"]);
    }
}
