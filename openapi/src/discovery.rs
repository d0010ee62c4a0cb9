//! Discovery: the documents Kubernetes clients read before they talk to a
//! resource.
//!
//! kubectl and client libraries start by asking `/api` and `/apis` which
//! groups exist, then `/apis/kubeflow.org/v1` which resources a group
//! version serves, under which names, with which verbs — and refuse to
//! touch `mxjobs` otherwise. These answers are fixed by what this server
//! implements, so they are built from constants. Only the legacy form is
//! served: clients that prefer aggregated discovery fall back to it when
//! the answer is plain `application/json`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};
use k8s_openapi::apimachinery::pkg::version::Info;

use crate::model::{API_VERSION, GROUP, KIND, RESOURCE, VERSION};

/// The Kubernetes minor version whose API machinery this server follows.
const KUBERNETES_MINOR: &str = "33";

fn group_version() -> GroupVersionForDiscovery {
    GroupVersionForDiscovery {
        group_version: API_VERSION.to_string(),
        version: VERSION.to_string(),
    }
}

/// `GET /api`: the core group's versions: `v1`, for namespaces.
pub fn core_versions() -> APIVersions {
    APIVersions {
        versions: vec!["v1".to_string()],
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".to_string(),
            server_address: String::new(),
        }],
    }
}

/// `GET /api/v1`: the one core resource served, namespaces (what
/// `kubectl create namespace` and `get namespaces` need).
pub fn core_resources() -> APIResourceList {
    let verbs = ["create", "delete", "get", "list"];
    APIResourceList {
        group_version: "v1".to_string(),
        resources: vec![APIResource {
            name: "namespaces".to_string(),
            singular_name: "namespace".to_string(),
            namespaced: false,
            kind: "Namespace".to_string(),
            short_names: Some(vec!["ns".to_string()]),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        }],
    }
}

/// `GET /apis/kubeflow.org`.
pub fn group() -> APIGroup {
    APIGroup {
        name: GROUP.to_string(),
        preferred_version: Some(group_version()),
        server_address_by_client_cidrs: None,
        versions: vec![group_version()],
    }
}

/// `GET /apis`: the API groups — `kubeflow.org`, and
/// `authorization.k8s.io` for `kubectl auth can-i`.
pub fn groups() -> APIGroupList {
    APIGroupList {
        groups: vec![group(), authorization_group()],
    }
}

/// `GET /apis/authorization.k8s.io`.
pub fn authorization_group() -> APIGroup {
    let version = GroupVersionForDiscovery {
        group_version: "authorization.k8s.io/v1".to_string(),
        version: "v1".to_string(),
    };
    APIGroup {
        name: "authorization.k8s.io".to_string(),
        preferred_version: Some(version.clone()),
        server_address_by_client_cidrs: None,
        versions: vec![version],
    }
}

/// `GET /apis/authorization.k8s.io/v1`: self subject access reviews.
pub fn authorization_resources() -> APIResourceList {
    APIResourceList {
        group_version: "authorization.k8s.io/v1".to_string(),
        resources: vec![APIResource {
            name: "selfsubjectaccessreviews".to_string(),
            singular_name: "selfsubjectaccessreview".to_string(),
            namespaced: false,
            kind: "SelfSubjectAccessReview".to_string(),
            verbs: vec!["create".to_string()],
            ..Default::default()
        }],
    }
}

/// `GET /apis/kubeflow.org/v1`: the resources and what can be done with them.
pub fn resources() -> APIResourceList {
    let verbs = |verbs: &[&str]| verbs.iter().map(|v| v.to_string()).collect();
    APIResourceList {
        group_version: API_VERSION.to_string(),
        resources: vec![
            APIResource {
                name: RESOURCE.to_string(),
                singular_name: "mxjob".to_string(),
                namespaced: true,
                kind: KIND.to_string(),
                verbs: verbs(&[
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ]),
                categories: Some(vec!["all".to_string(), "kubeflow".to_string()]),
                ..Default::default()
            },
            APIResource {
                name: format!("{RESOURCE}/status"),
                singular_name: String::new(),
                namespaced: true,
                kind: KIND.to_string(),
                verbs: verbs(&["get", "patch", "update"]),
                ..Default::default()
            },
        ],
    }
}

/// `GET /version`.
pub fn version() -> Info {
    let own = env!("CARGO_PKG_VERSION");
    Info {
        major: "1".to_string(),
        minor: KUBERNETES_MINOR.to_string(),
        git_version: format!("v1.{KUBERNETES_MINOR}.0+mxjob-{own}"),
        git_commit: String::new(),
        git_tree_state: "clean".to_string(),
        build_date: String::new(),
        go_version: String::new(),
        compiler: "rustc".to_string(),
        platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        ..Default::default()
    }
}
