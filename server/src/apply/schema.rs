//! How each part of an MXJob merges: the schema of the apply merge.
//!
//! Kubernetes derives this from OpenAPI extensions (`x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`, and for older
//! types the strategic-merge `patchMergeKey`). MXJob needs only a small
//! part of that, so it is written by hand here, following the markers of
//! the k8s.io/api v1.33 core types and of the Kubeflow MXJob types.
//!
//! Only what is *granular* needs describing: structs whose fields are owned
//! one by one, maps whose keys are, and associative lists whose items are.
//! Everything else (scalars, atomic lists, atomic structs and maps, and any
//! field the schema does not name) is [`Type::Atomic`]: one leaf, owned and
//! replaced whole. For a scalar that is exactly how Kubernetes treats it,
//! so scalar fields are not listed.

/// How a value merges.
#[derive(Debug)]
pub(crate) enum Type {
    /// One leaf: the value is owned, compared and replaced whole.
    Atomic,
    /// A struct: each named field is owned separately; fields not named
    /// here are atomic.
    Struct(&'static [(&'static str, &'static Type)]),
    /// A map: each key is owned separately, values of the given type.
    Map(&'static Type),
    /// A list whose object items are identified by key fields.
    Associative {
        keys: &'static [Key],
        item: &'static Type,
    },
    /// A list of scalars, each item identified by its value.
    Set,
}

/// A key field of an associative list.
#[derive(Debug)]
pub(crate) struct Key {
    pub name: &'static str,
    /// The value used when an item omits the field (OpenAPI `default`).
    pub default: Option<&'static str>,
}

impl Type {
    /// The type of a struct field or map value, and whether it is a field
    /// the schema names (which decides how the field set marks it).
    pub(crate) fn child(&self, name: &str) -> (&'static Type, bool) {
        match self {
            Type::Struct(fields) => fields
                .iter()
                .find(|(n, _)| *n == name)
                .map_or((&Type::Atomic, false), |(_, t)| (*t, true)),
            Type::Map(value) => (value, false),
            _ => (&Type::Atomic, false),
        }
    }
}

const fn key(name: &'static str) -> Key {
    Key {
        name,
        default: None,
    }
}

/// A struct whose fields are all leaves, owned one by one.
static LEAVES: Type = Type::Struct(&[]);

/// A map of scalars (`labels`, `limits`, …), owned key by key.
static SCALAR_MAP: Type = Type::Map(&Type::Atomic);

/// The MXJob: the root of every value the merge sees.
pub(crate) static MXJOB: Type = Type::Struct(&[
    ("metadata", &OBJECT_META),
    ("spec", &MXJOB_SPEC),
    ("status", &JOB_STATUS),
]);

static OBJECT_META: Type = Type::Struct(&[
    ("annotations", &SCALAR_MAP),
    ("finalizers", &Type::Set),
    ("labels", &SCALAR_MAP),
    // Keyed by uid; each reference is an atomic struct
    // (`+structType=atomic` on OwnerReference). `managedFields` is atomic.
    (
        "ownerReferences",
        &Type::Associative {
            keys: &[key("uid")],
            item: &Type::Atomic,
        },
    ),
]);

static MXJOB_SPEC: Type = Type::Struct(&[
    // A map keyed by replica type (`map[ReplicaType]*ReplicaSpec`
    // upstream): applying a Worker spec leaves the Server spec alone, and
    // dropping a replica type from a configuration removes it.
    ("mxReplicaSpecs", &Type::Map(&REPLICA_SPEC)),
]);

static REPLICA_SPEC: Type = Type::Struct(&[("template", &POD_TEMPLATE_SPEC)]);

static JOB_STATUS: Type = Type::Struct(&[
    // `conditions` has no list markers in the Kubeflow types: atomic.
    ("mxReplicaStatuses", &Type::Map(&LEAVES)),
]);

static POD_TEMPLATE_SPEC: Type = Type::Struct(&[("metadata", &OBJECT_META), ("spec", &POD_SPEC)]);

// PodSpec. Atomic despite appearances, per their v1.33 markers:
// `nodeSelector` (`+mapType=atomic`), `tolerations` and `readinessGates`
// (`+listType=atomic`).
static POD_SPEC: Type = Type::Struct(&[
    (
        "affinity",
        &Type::Struct(&[
            // Their selectors and term lists are atomic.
            ("nodeAffinity", &LEAVES),
            ("podAffinity", &LEAVES),
            ("podAntiAffinity", &LEAVES),
        ]),
    ),
    ("containers", &CONTAINERS),
    // Its nameservers, searches and options are atomic lists.
    ("dnsConfig", &LEAVES),
    // EphemeralContainer has Container's granular fields and a scalar more.
    ("ephemeralContainers", &CONTAINERS),
    (
        "hostAliases",
        &Type::Associative {
            keys: &[key("ip")],
            item: &LEAVES,
        },
    ),
    (
        "imagePullSecrets",
        // LocalObjectReference is an atomic struct whose name defaults to
        // "" (`+default=""`), so an item without a name has key name="".
        &Type::Associative {
            keys: &[Key {
                name: "name",
                default: Some(""),
            }],
            item: &Type::Atomic,
        },
    ),
    ("initContainers", &CONTAINERS),
    ("os", &LEAVES),
    ("overhead", &SCALAR_MAP),
    (
        "resourceClaims",
        &Type::Associative {
            keys: &[key("name")],
            item: &LEAVES,
        },
    ),
    ("resources", &RESOURCE_REQUIREMENTS),
    (
        "schedulingGates",
        &Type::Associative {
            keys: &[key("name")],
            item: &LEAVES,
        },
    ),
    (
        "securityContext",
        &Type::Struct(&[
            ("appArmorProfile", &LEAVES),
            ("seLinuxOptions", &LEAVES),
            ("seccompProfile", &LEAVES),
            ("windowsOptions", &LEAVES),
        ]),
    ),
    (
        "topologySpreadConstraints",
        &Type::Associative {
            keys: &[key("topologyKey"), key("whenUnsatisfiable")],
            item: &LEAVES,
        },
    ),
    (
        "volumes",
        &Type::Associative {
            keys: &[key("name")],
            item: &VOLUME,
        },
    ),
]);

static CONTAINERS: Type = Type::Associative {
    keys: &[key("name")],
    item: &CONTAINER,
};

// Container. Atomic: `command`, `args`, `envFrom`, `resizePolicy`.
static CONTAINER: Type = Type::Struct(&[
    (
        "env",
        &Type::Associative {
            keys: &[key("name")],
            // Its configMapKeyRef, secretKeyRef, fieldRef and
            // resourceFieldRef are atomic structs.
            item: &Type::Struct(&[("valueFrom", &LEAVES)]),
        },
    ),
    (
        "lifecycle",
        &Type::Struct(&[("postStart", &HANDLER), ("preStop", &HANDLER)]),
    ),
    ("livenessProbe", &PROBE),
    (
        "ports",
        // Two ports may share a number with different protocols; protocol
        // defaults to TCP (`+default="TCP"`), so an item without one is
        // keyed {containerPort, protocol: "TCP"}.
        &Type::Associative {
            keys: &[
                key("containerPort"),
                Key {
                    name: "protocol",
                    default: Some("TCP"),
                },
            ],
            item: &LEAVES,
        },
    ),
    ("readinessProbe", &PROBE),
    ("resources", &RESOURCE_REQUIREMENTS),
    (
        "securityContext",
        &Type::Struct(&[
            ("appArmorProfile", &LEAVES),
            // Its add and drop lists are atomic.
            ("capabilities", &LEAVES),
            ("seLinuxOptions", &LEAVES),
            ("seccompProfile", &LEAVES),
            ("windowsOptions", &LEAVES),
        ]),
    ),
    ("startupProbe", &PROBE),
    (
        "volumeDevices",
        &Type::Associative {
            keys: &[key("devicePath")],
            item: &LEAVES,
        },
    ),
    (
        "volumeMounts",
        // Keyed by mountPath, not name: one volume can be mounted twice.
        &Type::Associative {
            keys: &[key("mountPath")],
            item: &LEAVES,
        },
    ),
]);

static RESOURCE_REQUIREMENTS: Type = Type::Struct(&[
    (
        "claims",
        &Type::Associative {
            keys: &[key("name")],
            item: &LEAVES,
        },
    ),
    // ResourceList has no map-type marker: granular, one key per resource.
    ("limits", &SCALAR_MAP),
    ("requests", &SCALAR_MAP),
]);

// Probe; `httpGet.httpHeaders` and `exec.command` are atomic lists.
static PROBE: Type = Type::Struct(&[
    ("exec", &LEAVES),
    ("grpc", &LEAVES),
    ("httpGet", &LEAVES),
    ("tcpSocket", &LEAVES),
]);

static HANDLER: Type = Type::Struct(&[
    ("exec", &LEAVES),
    ("httpGet", &LEAVES),
    ("sleep", &LEAVES),
    ("tcpSocket", &LEAVES),
]);

// Volume. Every volume source is a struct of its own; their `items`,
// `sources`, `monitors` and similar lists are atomic, their secret
// references atomic structs.
static VOLUME: Type = Type::Struct(&[
    ("awsElasticBlockStore", &LEAVES),
    ("azureDisk", &LEAVES),
    ("azureFile", &LEAVES),
    ("cephfs", &LEAVES),
    ("cinder", &LEAVES),
    ("configMap", &LEAVES),
    ("csi", &Type::Struct(&[("volumeAttributes", &SCALAR_MAP)])),
    ("downwardAPI", &LEAVES),
    ("emptyDir", &LEAVES),
    (
        "ephemeral",
        &Type::Struct(&[(
            "volumeClaimTemplate",
            &Type::Struct(&[("metadata", &OBJECT_META), ("spec", &PVC_SPEC)]),
        )]),
    ),
    ("fc", &LEAVES),
    ("flexVolume", &Type::Struct(&[("options", &SCALAR_MAP)])),
    ("flocker", &LEAVES),
    ("gcePersistentDisk", &LEAVES),
    ("gitRepo", &LEAVES),
    ("glusterfs", &LEAVES),
    ("hostPath", &LEAVES),
    ("image", &LEAVES),
    ("iscsi", &LEAVES),
    ("nfs", &LEAVES),
    ("persistentVolumeClaim", &LEAVES),
    ("photonPersistentDisk", &LEAVES),
    ("portworxVolume", &LEAVES),
    ("projected", &LEAVES),
    ("quobyte", &LEAVES),
    ("rbd", &LEAVES),
    ("scaleIO", &LEAVES),
    ("secret", &LEAVES),
    ("storageos", &LEAVES),
    ("vsphereVolume", &LEAVES),
]);

// PersistentVolumeClaimSpec: `dataSource` (TypedLocalObjectReference) and
// `selector` (LabelSelector) are atomic structs, `dataSourceRef` is not.
static PVC_SPEC: Type = Type::Struct(&[
    ("dataSourceRef", &LEAVES),
    (
        "resources",
        &Type::Struct(&[("limits", &SCALAR_MAP), ("requests", &SCALAR_MAP)]),
    ),
]);

#[cfg(test)]
mod tests {
    use super::*;

    /// The type at a path of field names, for checking the table.
    fn at(path: &[&str]) -> &'static Type {
        let mut ty: &'static Type = &MXJOB;
        for name in path {
            ty = match ty {
                Type::Associative { item, .. } => item.child(name).0,
                _ => ty.child(name).0,
            };
        }
        ty
    }

    #[test]
    fn the_table_follows_the_core_markers() {
        let pod = ["spec", "mxReplicaSpecs", "Worker", "template", "spec"];
        let field = |rest: &[&str]| {
            let mut p = pod.to_vec();
            p.extend_from_slice(rest);
            at(&p)
        };
        assert!(
            matches!(field(&["containers"]), Type::Associative { keys, .. } if keys[0].name == "name")
        );
        assert!(matches!(field(&["tolerations"]), Type::Atomic));
        assert!(matches!(field(&["readinessGates"]), Type::Atomic));
        assert!(matches!(field(&["nodeSelector"]), Type::Atomic));
        assert!(matches!(field(&["containers", "args"]), Type::Atomic));
        assert!(
            matches!(field(&["containers", "volumeMounts"]), Type::Associative { keys, .. } if keys[0].name == "mountPath")
        );
        assert!(matches!(
            field(&["containers", "resources", "limits"]),
            Type::Map(_)
        ));
        assert!(matches!(at(&["metadata", "finalizers"]), Type::Set));
        assert!(matches!(at(&["spec", "mxReplicaSpecs"]), Type::Map(_)));
        assert!(matches!(at(&["status", "conditions"]), Type::Atomic));
        assert!(matches!(at(&["spec", "unknownField"]), Type::Atomic));
    }
}
