//! mxjob-server: the Kubeflow MXJob API (`kubeflow.org/v1`, `mxjobs`) as a
//! standalone server with Kubernetes semantics — the implementation of
//! the contract in `mxjob-api`.
//!
//! Data flows one way, and so do the imports: HTTP → [`handlers`] →
//! [`registry`] → [`store`]. The [`controller`] sits beside the handlers
//! as a second client of the registry. Everything may use `mxjob-api`.
//!
//! * [`server`] — startup and shutdown, settings, what handlers share.
//! * [`handlers`] — the implementation of the API trait: extract,
//!   authorize, call the registry, respond.
//! * [`edge`] — the checks every request passes first (Host, Origin).
//! * [`auth`] — authentication, authorization and per-user limits.
//! * [`fallback`] — 405 answers as a `Status`.
//! * [`decode`] — request bodies into an MXJob or a patch.
//! * [`json`] — JSON with its duplicate keys, and JSON sizes.
//! * [`logging`] — log lines, formatted where they are logged and written
//!   in batches by one thread.
//! * [`registry`] — Kubernetes object semantics: create, replace, patch,
//!   delete with resourceVersion, generation, dryRun; lists and watches.
//! * [`apply`] — server-side apply: managed fields, and the apply and
//!   update merges by the MXJob schema.
//! * [`validation`] — admission rules.
//! * [`names`] — Kubernetes' rules for names, label keys and values.
//! * [`selectors`] — label and field selectors.
//! * [`pagination`] — continue tokens of paged lists.
//! * [`table`] — `meta.k8s.io Table` output for kubectl.
//! * [`store`] — revisioned key-value storage backends.
//! * [`controller`] — the job controller: status, deadlines, TTL, and the
//!   local executor that runs replicas as processes.
//! * [`metrics`] — `/metrics`; [`health`] — `/livez` and `/readyz`;
//!   [`backup`] — `/backup` and `mxjob-server restore`.

pub mod apply;
pub mod auth;
pub mod backup;
pub mod controller;
pub mod decode;
pub mod edge;
pub mod fallback;
pub mod handlers;
pub mod health;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod pagination;
pub mod protobuf;
pub mod registry;
pub mod selectors;
pub mod server;
pub mod store;
pub mod table;
pub mod validation;
