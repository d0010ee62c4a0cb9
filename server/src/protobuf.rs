//! The protobuf bodies Kubernetes clients send for built-in kinds.
//!
//! client-go writes typed objects of the built-in groups as
//! `application/vnd.kubernetes.protobuf` and does not fall back to JSON
//! when refused: `kubectl create namespace` and `kubectl auth can-i` send
//! a `Namespace` and a `SelfSubjectAccessReview` that way. This module
//! reads those two kinds into the JSON objects the registry takes. MXJobs
//! are custom resources, which clients always send as JSON.
//!
//! The encoding is Kubernetes' `runtime.Unknown` envelope behind the
//! four-byte magic `k8s\0`: the object's `apiVersion` and `kind`, then
//! the object itself as its generated message (`k8s.io/api/core/v1` and
//! `k8s.io/api/authorization/v1` `generated.proto`). Only the fields this
//! server uses are declared; the decoder skips the rest.

use std::collections::BTreeMap;

use prost::Message;
use serde_json::{json, Map, Value};

/// The media type of the encoding.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The magic that starts every message.
const MAGIC: &[u8] = b"k8s\0";

/// The built-in kinds this server reads as protobuf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `v1 Namespace`.
    Namespace,
    /// `authorization.k8s.io/v1 SelfSubjectAccessReview`.
    SelfSubjectAccessReview,
}

impl Kind {
    fn api_version(self) -> &'static str {
        match self {
            Kind::Namespace => "v1",
            Kind::SelfSubjectAccessReview => "authorization.k8s.io/v1",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::SelfSubjectAccessReview => "SelfSubjectAccessReview",
        }
    }
}

/// Why a body is not the expected object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the body does not start with the Kubernetes protobuf magic")]
    NoMagic,
    #[error("the body is not a valid protobuf message: {0}")]
    Malformed(#[from] prost::DecodeError),
    #[error("the body is encoded as {0:?}; only unencoded objects are read")]
    Encoded(String),
    #[error("the body is a {found}, not a {expected}")]
    WrongKind { expected: String, found: String },
}

/// Reads `bytes` as a `kind`, into its JSON form.
pub fn decode(bytes: &[u8], kind: Kind) -> Result<Value, Error> {
    let envelope = bytes.strip_prefix(MAGIC).ok_or(Error::NoMagic)?;
    let unknown = Unknown::decode(envelope)?;
    if let Some(encoding) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(Error::Encoded(encoding));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let found_kind = type_meta.kind.unwrap_or_default();
    if api_version != kind.api_version() || found_kind != kind.name() {
        return Err(Error::WrongKind {
            expected: format!("{} {}", kind.api_version(), kind.name()),
            found: format!("{api_version} {found_kind}"),
        });
    }
    let raw = unknown.raw.unwrap_or_default();
    let mut object = match kind {
        Kind::Namespace => namespace(Namespace::decode(raw.as_slice())?),
        Kind::SelfSubjectAccessReview => {
            access_review(SelfSubjectAccessReview::decode(raw.as_slice())?)
        }
    };
    object.insert("apiVersion".to_string(), json!(api_version));
    object.insert("kind".to_string(), json!(found_kind));
    Ok(Value::Object(object))
}

fn namespace(namespace: Namespace) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert(
        "metadata".to_string(),
        metadata(namespace.metadata.unwrap_or_default()),
    );
    let finalizers = namespace.spec.map(|s| s.finalizers).unwrap_or_default();
    if !finalizers.is_empty() {
        object.insert("spec".to_string(), json!({ "finalizers": finalizers }));
    }
    object
}

fn access_review(review: SelfSubjectAccessReview) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert(
        "metadata".to_string(),
        metadata(review.metadata.unwrap_or_default()),
    );
    let spec = review.spec.unwrap_or_default();
    let mut out = Map::new();
    if let Some(a) = spec.resource_attributes {
        let mut attributes = Map::new();
        for (key, value) in [
            ("namespace", a.namespace),
            ("verb", a.verb),
            ("group", a.group),
            ("version", a.version),
            ("resource", a.resource),
            ("subresource", a.subresource),
            ("name", a.name),
        ] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                attributes.insert(key.to_string(), json!(value));
            }
        }
        out.insert("resourceAttributes".to_string(), Value::Object(attributes));
    }
    if let Some(a) = spec.non_resource_attributes {
        out.insert(
            "nonResourceAttributes".to_string(),
            json!({ "path": a.path.unwrap_or_default(), "verb": a.verb.unwrap_or_default() }),
        );
    }
    object.insert("spec".to_string(), Value::Object(out));
    object
}

fn metadata(meta: ObjectMeta) -> Value {
    let mut object = Map::new();
    for (key, value) in [
        ("name", meta.name),
        ("generateName", meta.generate_name),
        ("namespace", meta.namespace),
    ] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            object.insert(key.to_string(), json!(value));
        }
    }
    if !meta.labels.is_empty() {
        object.insert("labels".to_string(), json!(meta.labels));
    }
    if !meta.annotations.is_empty() {
        object.insert("annotations".to_string(), json!(meta.annotations));
    }
    if !meta.finalizers.is_empty() {
        object.insert("finalizers".to_string(), json!(meta.finalizers));
    }
    Value::Object(object)
}

/// `k8s.io.apimachinery.pkg.runtime.Unknown`.
#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    content_encoding: Option<String>,
}

/// `k8s.io.apimachinery.pkg.runtime.TypeMeta`.
#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

/// The fields of `ObjectMeta` a client sets on a new object.
#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
    #[prost(string, repeated, tag = "14")]
    finalizers: Vec<String>,
}

/// `k8s.io.api.core.v1.Namespace`.
#[derive(Clone, PartialEq, Message)]
struct Namespace {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<NamespaceSpec>,
}

/// `k8s.io.api.core.v1.NamespaceSpec`.
#[derive(Clone, PartialEq, Message)]
struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    finalizers: Vec<String>,
}

/// `k8s.io.api.authorization.v1.SelfSubjectAccessReview`.
#[derive(Clone, PartialEq, Message)]
struct SelfSubjectAccessReview {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<SelfSubjectAccessReviewSpec>,
}

/// `k8s.io.api.authorization.v1.SelfSubjectAccessReviewSpec`.
#[derive(Clone, PartialEq, Message)]
struct SelfSubjectAccessReviewSpec {
    #[prost(message, optional, tag = "1")]
    resource_attributes: Option<ResourceAttributes>,
    #[prost(message, optional, tag = "2")]
    non_resource_attributes: Option<NonResourceAttributes>,
}

/// `k8s.io.api.authorization.v1.ResourceAttributes`.
#[derive(Clone, PartialEq, Message)]
struct ResourceAttributes {
    #[prost(string, optional, tag = "1")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "2")]
    verb: Option<String>,
    #[prost(string, optional, tag = "3")]
    group: Option<String>,
    #[prost(string, optional, tag = "4")]
    version: Option<String>,
    #[prost(string, optional, tag = "5")]
    resource: Option<String>,
    #[prost(string, optional, tag = "6")]
    subresource: Option<String>,
    #[prost(string, optional, tag = "7")]
    name: Option<String>,
}

/// `k8s.io.api.authorization.v1.NonResourceAttributes`.
#[derive(Clone, PartialEq, Message)]
struct NonResourceAttributes {
    #[prost(string, optional, tag = "1")]
    path: Option<String>,
    #[prost(string, optional, tag = "2")]
    verb: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What kubectl 1.37 sent for `auth can-i create mxjobs -n a`.
    const CAN_I: &[u8] =
        b"k8s\0\x0a\x32\x0a\x17authorization.k8s.io/v1\x12\x17SelfSubjectAccessReview\
\x12\x47\x0a\x10\x0a\x00\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x29\x0a\x27\
\x0a\x01a\x12\x06create\x1a\x0ckubeflow.org\x22\x00\x2a\x06mxjobs\x32\x00\x3a\x00\x1a\x08\x08\x00\
\x12\x00\x1a\x00\x20\x00\x1a\x00\x22\x00";

    #[test]
    fn reads_the_access_review_kubectl_sends() {
        let review = decode(CAN_I, Kind::SelfSubjectAccessReview).expect("decodes");
        assert_eq!(review["kind"], "SelfSubjectAccessReview");
        assert_eq!(
            review["spec"]["resourceAttributes"],
            json!({"namespace": "a", "verb": "create", "group": "kubeflow.org", "resource": "mxjobs"})
        );
    }

    #[test]
    fn refuses_another_kind() {
        let error = decode(CAN_I, Kind::Namespace).expect_err("not a namespace");
        assert!(matches!(error, Error::WrongKind { .. }), "{error}");
    }

    #[test]
    fn refuses_a_body_without_the_magic() {
        assert!(matches!(
            decode(b"{\"kind\":\"Namespace\"}", Kind::Namespace),
            Err(Error::NoMagic)
        ));
    }

    #[test]
    fn refuses_a_truncated_message() {
        let error = decode(&CAN_I[..40], Kind::SelfSubjectAccessReview).expect_err("truncated");
        assert!(matches!(error, Error::Malformed(_)), "{error}");
    }

    #[test]
    fn reads_a_namespace_with_labels() {
        let namespace = Namespace {
            metadata: Some(ObjectMeta {
                name: Some("research".into()),
                labels: [("team".to_string(), "ml".to_string())].into(),
                ..Default::default()
            }),
            spec: None,
        };
        let envelope = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("Namespace".into()),
            }),
            raw: Some(namespace.encode_to_vec()),
            content_encoding: None,
        };
        let bytes = [MAGIC, &envelope.encode_to_vec()].concat();
        assert_eq!(
            decode(&bytes, Kind::Namespace).expect("decodes"),
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "research", "labels": {"team": "ml"}}})
        );
    }
}
