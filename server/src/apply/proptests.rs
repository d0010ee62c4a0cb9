//! Properties of apply and update over generated partial MXJobs.

use super::path::{Path, PathElement};
use super::schema::{Type, MXJOB};
use super::tests::{apply_as, create, job, owned_by, stored, update_as, writer, Stored};
use super::typed::{granular, item_type, Granular};
use super::*;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct Container {
    image: Option<String>,
    env: BTreeMap<String, String>,
    /// containerPort → protocol (absent means the TCP default).
    ports: BTreeMap<i64, Option<&'static str>>,
}

#[derive(Clone, Debug, Default)]
struct Replica {
    replicas: Option<i64>,
    containers: BTreeMap<String, Container>,
}

/// A partial MXJob configuration.
#[derive(Clone, Debug, Default)]
struct Config {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    ttl: Option<i64>,
    deadline: Option<i64>,
    clean: Option<&'static str>,
    replicas: BTreeMap<&'static str, Replica>,
}

fn container() -> impl Strategy<Value = Container> {
    (
        proptest::option::of("mxnet:[0-9]"),
        proptest::collection::btree_map("[A-C]", "[0-9]", 0..3),
        proptest::collection::btree_map(
            prop::sample::select(vec![80_i64, 443, 8080]),
            proptest::option::of(prop::sample::select(vec!["TCP", "UDP"])),
            0..3,
        ),
    )
        .prop_map(|(image, env, ports)| Container { image, env, ports })
}

fn replica() -> impl Strategy<Value = Replica> {
    (
        proptest::option::of(1_i64..4),
        proptest::collection::btree_map("mxnet|side|init", container(), 0..3),
    )
        .prop_map(|(replicas, containers)| Replica {
            replicas,
            containers,
        })
}

fn config() -> impl Strategy<Value = Config> {
    (
        proptest::collection::btree_map("[a-d]", "[x-z]{1,2}", 0..3),
        proptest::collection::btree_map("note-[a-c]", "[x-z]", 0..2),
        proptest::option::of(0_i64..5),
        proptest::option::of(1_i64..5),
        proptest::option::of(prop::sample::select(vec!["All", "Running", "None"])),
        proptest::collection::btree_map(
            prop::sample::select(vec!["Scheduler", "Server", "Worker"]),
            replica(),
            0..3,
        ),
    )
        .prop_map(
            |(labels, annotations, ttl, deadline, clean, replicas)| Config {
                labels,
                annotations,
                ttl,
                deadline,
                clean,
                replicas,
            },
        )
}

fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

impl Container {
    fn to_json(&self, name: &str) -> Value {
        let mut c = Map::new();
        c.insert("name".into(), json!(name));
        if let Some(image) = &self.image {
            c.insert("image".into(), json!(image));
        }
        if !self.env.is_empty() {
            let env: Vec<Value> = self
                .env
                .iter()
                .map(|(n, v)| json!({"name": n, "value": v}))
                .collect();
            c.insert("env".into(), json!(env));
        }
        if !self.ports.is_empty() {
            let ports: Vec<Value> = self
                .ports
                .iter()
                .map(|(p, proto)| match proto {
                    Some(proto) => json!({"containerPort": p, "protocol": proto}),
                    None => json!({"containerPort": p}),
                })
                .collect();
            c.insert("ports".into(), json!(ports));
        }
        Value::Object(c)
    }
}

impl Replica {
    fn to_json(&self) -> Value {
        let mut r = Map::new();
        if let Some(n) = self.replicas {
            r.insert("replicas".into(), json!(n));
        }
        if !self.containers.is_empty() {
            let containers: Vec<Value> = self
                .containers
                .iter()
                .map(|(name, c)| c.to_json(name))
                .collect();
            r.insert(
                "template".into(),
                json!({"spec": {"containers": containers}}),
            );
        }
        Value::Object(r)
    }
}

impl Config {
    fn to_json(&self) -> Value {
        let mut spec = Map::new();
        if let Some(v) = self.ttl {
            spec.insert("ttlSecondsAfterFinished".into(), json!(v));
        }
        if let Some(v) = self.deadline {
            spec.insert("activeDeadlineSeconds".into(), json!(v));
        }
        if let Some(v) = self.clean {
            spec.insert("cleanPodPolicy".into(), json!(v));
        }
        if !self.replicas.is_empty() {
            let replicas: Map<String, Value> = self
                .replicas
                .iter()
                .map(|(t, r)| ((*t).to_string(), r.to_json()))
                .collect();
            spec.insert("mxReplicaSpecs".into(), Value::Object(replicas));
        }
        let mut out = job(Value::Object(spec));
        if !self.labels.is_empty() {
            out["metadata"]["labels"] = string_map(&self.labels);
        }
        if !self.annotations.is_empty() {
            out["metadata"]["annotations"] = string_map(&self.annotations);
        }
        if out["spec"].as_object().is_some_and(Map::is_empty) {
            if let Some(o) = out.as_object_mut() {
                o.remove("spec");
            }
        }
        out
    }

    /// Splits the configuration into two with no field in common: each
    /// label, annotation, spec field, replica count and container goes to
    /// one side, picked by the next bit of `mask`.
    fn split(&self, mask: u64) -> (Config, Config) {
        let mut bits = (0..64).cycle().map(|i| usize::from(mask >> i & 1 == 1));
        let mut pick = || bits.next().unwrap_or(0);
        let mut both = [Config::default(), Config::default()];
        for (k, v) in &self.labels {
            both[pick()].labels.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.annotations {
            both[pick()].annotations.insert(k.clone(), v.clone());
        }
        both[pick()].ttl = self.ttl;
        both[pick()].deadline = self.deadline;
        both[pick()].clean = self.clean;
        for (t, r) in &self.replicas {
            if r.replicas.is_none() && r.containers.is_empty() {
                both[pick()].replicas.insert(t, Replica::default());
                continue;
            }
            if let Some(n) = r.replicas {
                both[pick()].replicas.entry(t).or_default().replicas = Some(n);
            }
            for (name, c) in &r.containers {
                both[pick()]
                    .replicas
                    .entry(t)
                    .or_default()
                    .containers
                    .insert(name.clone(), c.clone());
            }
        }
        let [a, b] = both;
        (a, b)
    }
}

/// The value at `path` in `v`, found through the schema.
fn value_at<'v>(mut ty: &'static Type, mut v: &'v Value, path: &Path) -> Option<&'v Value> {
    for pe in &path.0 {
        match pe {
            PathElement::Field(name) => {
                v = v.get(name)?;
                ty = ty.child(name).0;
            }
            _ => {
                let Some(Granular::List(Some(items))) = granular(ty, v) else {
                    return None;
                };
                v = items.into_iter().find(|(item, _)| item == pe)?.1;
                ty = item_type(ty);
            }
        }
    }
    Some(v)
}

/// Whether `object` holds the value `config` applies at `path`. An empty
/// granular map applied over a non-empty one leaves it as it was (the
/// merge of `{}` into a map changes nothing), so there only presence counts.
fn reads_back(object: &Value, config: &Value, path: &Path) -> bool {
    let (got, want) = (
        value_at(&MXJOB, object, path),
        value_at(&MXJOB, config, path),
    );
    match want {
        Some(Value::Object(m)) if m.is_empty() => got.is_some_and(Value::is_object),
        _ => got == want,
    }
}

fn fresh() -> Stored {
    Stored {
        value: Value::Null,
        entries: Vec::new(),
    }
}

/// What an applier owns once identity fields are taken out.
fn expected_ownership(config: &Value) -> FieldSet {
    let mut identity = FieldSet::new();
    for p in [
        vec!["apiVersion"],
        vec!["kind"],
        vec!["metadata"],
        vec!["metadata", "name"],
        vec!["metadata", "namespace"],
    ] {
        let path: Vec<PathElement> = p.iter().map(|n| PathElement::Field((*n).into())).collect();
        identity.insert(&path);
    }
    fields_of(config).difference(&identity)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn applying_twice_changes_nothing_the_second_time(base in config(), cfg in config()) {
        let live = create(base.to_json(), "creator");
        let cfg = cfg.to_json();
        let first = apply_as(&live, &cfg, "applier", 1, true).unwrap();
        let again = apply(&first.value, &cfg, &first.entries, &writer("applier", 2), false).unwrap();
        prop_assert!(!again.changed);
        prop_assert_eq!(&again.object, &first.value);
        prop_assert_eq!(&again.managed_fields, &first.entries);
    }

    #[test]
    fn applied_fields_read_back_with_their_values(base in config(), cfg in config()) {
        let live = create(base.to_json(), "creator");
        let cfg = cfg.to_json();
        let after = apply_as(&live, &cfg, "applier", 1, true).unwrap();
        for path in fields_of(&cfg).leaves().paths() {
            prop_assert!(reads_back(&after.value, &cfg, &path), "{}", path);
        }
        prop_assert_eq!(owned_by(&after.entries, "applier", Operation::Apply), expected_ownership(&cfg));
    }

    #[test]
    fn appliers_of_disjoint_fields_never_conflict(cfg in config(), mask in any::<u64>()) {
        let (a, b) = cfg.split(mask);
        let (a, b) = (a.to_json(), b.to_json());
        let live = apply_as(&fresh(), &a, "a", 0, false).unwrap();
        let live = apply_as(&live, &b, "b", 1, false).unwrap();
        prop_assert_eq!(owned_by(&live.entries, "a", Operation::Apply), expected_ownership(&a));
        prop_assert_eq!(owned_by(&live.entries, "b", Operation::Apply), expected_ownership(&b));
        for side in [&a, &b] {
            for path in fields_of(side).leaves().paths() {
                prop_assert!(reads_back(&live.value, side, &path), "{}", path);
            }
        }
    }

    #[test]
    fn a_dropped_label_goes_unless_shared(cfg in config(), key in "[e-f]", value in "[x-z]", share in any::<bool>()) {
        let mut with = cfg.clone();
        with.labels.insert(key.clone(), value.clone());
        let live = apply_as(&fresh(), &with.to_json(), "a", 0, false).unwrap();
        let live = if share {
            let mut other = Config::default();
            other.labels.insert(key.clone(), value.clone());
            apply_as(&live, &other.to_json(), "b", 1, false).unwrap()
        } else {
            live
        };
        let after = apply_as(&live, &cfg.to_json(), "a", 2, false).unwrap();
        let label = after.value.pointer(&format!("/metadata/labels/{key}"));
        if share {
            prop_assert_eq!(label, Some(&json!(value)));
        } else {
            prop_assert_eq!(label, None);
        }
        let path: Vec<PathElement> = ["metadata", "labels", key.as_str()]
            .iter()
            .map(|n| PathElement::Field((*n).into()))
            .collect();
        prop_assert!(!owned_by(&after.entries, "a", Operation::Apply).contains(&path));
        prop_assert_eq!(owned_by(&after.entries, "b", Operation::Apply).contains(&path), share);
    }

    #[test]
    fn a_dropped_container_goes_unless_shared(cfg in config(), extra in container(), share in any::<bool>()) {
        let name = "extra";
        let mut with = cfg.clone();
        with.replicas.entry("Worker").or_default().containers.insert(name.to_string(), extra.clone());
        let live = apply_as(&fresh(), &with.to_json(), "a", 0, false).unwrap();
        let live = if share {
            let mut other = Config::default();
            other.replicas.entry("Worker").or_default().containers.insert(name.to_string(), extra.clone());
            apply_as(&live, &other.to_json(), "b", 1, false).unwrap()
        } else {
            live
        };
        let after = apply_as(&live, &cfg.to_json(), "a", 2, false).unwrap();
        let containers = after
            .value
            .pointer("/spec/mxReplicaSpecs/Worker/template/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let kept = containers.iter().find(|c| c["name"] == json!(name));
        if share {
            prop_assert_eq!(kept, Some(&extra.to_json(name)));
        } else {
            prop_assert!(kept.is_none());
        }
    }

    #[test]
    fn updates_never_give_a_field_two_owners(
        steps in proptest::collection::vec((0_usize..4, config()), 1..6)
    ) {
        let managers = ["kubectl-create", "kubectl-edit", "controller", "helm"];
        let mut live: Option<Stored> = None;
        for (t, (who, cfg)) in steps.iter().enumerate() {
            let new = cfg.to_json();
            let w = writer(managers[*who], t as i64);
            let next = match &live {
                None => stored(new.clone(), update(Value::Null, new.clone(), Start::Sent(&[]), &w)),
                Some(old) => {
                    let mut new = new.clone();
                    new["metadata"]["uid"] = old.value["metadata"]["uid"].clone();
                    update_as(old, new, &w)
                }
            };
            let sets: Vec<FieldSet> = next
                .entries
                .iter()
                .map(|e| FieldSet::from_fields_v1(&e.fields_v1.as_ref().unwrap().0).unwrap())
                .collect();
            for (i, a) in sets.iter().enumerate() {
                prop_assert!(!a.is_empty());
                for b in &sets[i + 1..] {
                    prop_assert!(a.intersection(b).is_empty(), "{:?} and {:?}", a.paths(), b.paths());
                }
            }
            live = Some(next);
        }
    }

    #[test]
    fn writers_changing_what_they_own_keep_the_sets(
        first in config(),
        second in config(),
        ttls in proptest::collection::vec(0_i64..100, 1..4),
        label in "[x-z]{1,2}",
    ) {
        // Whatever two managers wrote, a writer changing a field it holds
        // (the ttl it set, a label the creator set) gives through stored
        // entries what the full walk gives (update_as checks that).
        let w = |m, t| writer(m, t);
        let mut live = create(first.to_json(), "a");
        let mut next = second.to_json();
        next["metadata"]["uid"] = live.value["metadata"]["uid"].clone();
        live = update_as(&live, next, &w("b", 1));
        for (t, ttl) in ttls.iter().enumerate() {
            let mut next = live.value.clone();
            next["spec"]["ttlSecondsAfterFinished"] = json!(ttl);
            live = update_as(&live, next, &w("b", 2 + t as i64));
            let mut next = live.value.clone();
            if let Some(labels) = next["metadata"]["labels"].as_object_mut() {
                if let Some((_, v)) = labels.iter_mut().next() {
                    *v = json!(label.clone());
                }
            }
            live = update_as(&live, next, &w("a", 3 + t as i64));
        }
    }

    #[test]
    fn fields_v1_round_trips(paths in proptest::collection::vec(path(), 0..12)) {
        let set: FieldSet = paths.into_iter().collect();
        prop_assert_eq!(&FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap(), &set);
        let text: Value = serde_json::from_str(&set.to_fields_v1_string()).unwrap();
        prop_assert_eq!(&FieldSet::from_fields_v1(&text).unwrap(), &set);
    }
}

fn element() -> impl Strategy<Value = PathElement> {
    let scalar = prop_oneof![
        any::<i32>().prop_map(|i| json!(i)),
        "[a-c<&\"\\\\é]{0,3}".prop_map(|s| json!(s)),
        any::<bool>().prop_map(|b| json!(b)),
        // Quarters: exact in binary, so they survive serde_json's float
        // parsing, which is not correctly rounded in every case.
        (-4000_i32..4000).prop_map(|i| json!(f64::from(i) / 4.0)),
    ];
    prop_oneof![
        "[a-c.:{}\"]{0,3}".prop_map(PathElement::Field),
        proptest::collection::btree_map("[a-c]{1,2}", scalar.clone(), 1..3)
            .prop_map(|m| PathElement::Key(m.into_iter().collect())),
        scalar.prop_map(PathElement::Value),
        (-5_i64..100).prop_map(PathElement::Index),
    ]
}

fn path() -> impl Strategy<Value = Path> {
    proptest::collection::vec(element(), 1..4).prop_map(Path)
}
