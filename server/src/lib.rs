//! mxjob: the Kubeflow MXJob API (`kubeflow.org/v1`, `mxjobs`) as a
//! standalone server with Kubernetes semantics.
//!
//! * [`api`] — the HTTP contract, a dropshot API trait.
//! * [`apply`] — server-side apply: managed fields and the apply merge.
//! * [`model`] — the MXJob wire types.
//! * [`auth`] — authentication, authorization and per-user limits.
//! * [`controller`] — the job controller: status, deadlines, TTL, and the
//!   local executor that runs replicas as processes.
//! * [`registry`] — Kubernetes object semantics: create, replace, patch,
//!   delete with resourceVersion, generation, dryRun and field validation.
//! * [`validation`] — admission rules.
//! * [`selectors`] — label and field selectors.
//! * [`pagination`] — continue tokens of paged lists.
//! * [`table`] — `meta.k8s.io Table` output for kubectl.
//! * [`discovery`] — the documents clients read first (`/apis`, `/version`).
//! * [`edge`] — the checks every request passes first (Host, Origin).
//! * [`fallback`] — 405 answers as a `Status`.
//! * [`store`] — revisioned key-value storage backends.
//! * [`status`] — `v1 Status`, the body of every error.
//! * [`json`] — request bodies as JSON (with their duplicate keys) and JSON sizes.
//! * [`wire`] — request body and response encoding.
//! * [`openapi`] — the OpenAPI document the clients are generated from.
//! * [`openapi_v2`] — the same as Swagger 2.0 (JSON and protobuf) for kubectl.
//! * [`server`] — the implementation of the API trait and server startup.

pub mod api;
pub mod apply;
pub mod auth;
pub mod controller;
pub mod discovery;
pub mod edge;
pub mod fallback;
pub mod json;
pub mod model;
pub mod openapi;
pub mod openapi_v2;
pub mod pagination;
pub mod registry;
pub mod selectors;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod validation;
pub mod wire;
