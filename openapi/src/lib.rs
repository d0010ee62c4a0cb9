//! The MXJob API (`kubeflow.org/v1`, resource `mxjobs`) as a contract, and
//! nothing else: what a server implements and what every client is
//! generated from.
//!
//! * [`api`] — the HTTP operations, a dropshot API trait, with their path
//!   and query parameters and how those are validated.
//! * [`params`] — path and query parameters, validated into options.
//! * [`model`] — the MXJob wire types.
//! * [`constraints`] — the admission rules a schema can state, in the document.
//! * [`error`] — `v1 Status`, the body of every error.
//! * [`wire`] — how bodies come in and responses go out.
//! * [`discovery`] — the discovery documents (`/apis`, `/version`).
//! * [`openapi`] — `openapi/mxjob.json`, built from the trait, and the seed.
//! * [`docs`] — `openapi/mxjob.html`, the reference page built from it, and
//!   how its freshness is checked.
//! * [`openapi_v2`] — the same as Swagger 2.0 (JSON and protobuf) for kubectl.
//! * [`openapi_v3`] — the OpenAPI v3 discovery documents kubectl reads.
//!
//! The implementation is the `mxjob-server` crate; `cargo xtask openapi
//! check` and this crate's own test keep the committed document equal to
//! what this crate describes.

pub mod api;
pub mod constraints;
pub mod discovery;
pub mod docs;
pub mod error;
pub mod model;
pub mod openapi;
pub mod openapi_v2;
pub mod openapi_v3;
pub mod params;
pub mod wire;
