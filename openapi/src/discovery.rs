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

/// `GET /api`: the core group's versions — none, since this server has no
/// core resources. (Listing `v1` with no resources makes client-go report
/// discovery as incomplete.)
pub fn core_versions() -> APIVersions {
    APIVersions {
        versions: Vec::new(),
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".to_string(),
            server_address: String::new(),
        }],
    }
}

/// `GET /api/v1`: no core resources; answered for clients that ask anyway.
pub fn core_resources() -> APIResourceList {
    APIResourceList {
        group_version: "v1".to_string(),
        resources: Vec::new(),
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

/// `GET /apis`: the one API group.
pub fn groups() -> APIGroupList {
    APIGroupList {
        groups: vec![group()],
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
