//! `meta.k8s.io/v1 Table` output, which `kubectl get` asks for.
//!
//! kubectl sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and
//! prints the rows it gets back, so a server that answers with tables looks
//! in kubectl as a real cluster does. The columns are those the MXJob CRD
//! declares as printer columns: Name, State (the type of the newest
//! condition) and Age. Each row carries the object's metadata
//! (`PartialObjectMetadata`), which kubectl uses for names and for
//! `--show-labels`.

use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde_json::{json, Value};

use mxjob_api::model::{MXJob, MXJobList};

/// The Table version a request asks for, if it asks for one.
pub fn requested(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(http::header::ACCEPT)?.to_str().ok()?;
    for range in accept.split(',') {
        let params: Vec<(&str, &str)> = range
            .split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let has = |key: &str, value: &str| params.iter().any(|(k, v)| *k == key && *v == value);
        if has("as", "Table") && has("g", "meta.k8s.io") {
            if has("v", "v1") {
                return Some("meta.k8s.io/v1");
            }
            if has("v", "v1beta1") {
                return Some("meta.k8s.io/v1beta1");
            }
        }
    }
    None
}

fn columns() -> Value {
    json!([
        {"name": "Name", "type": "string", "format": "name", "description": "Name of the MXJob.", "priority": 0},
        {"name": "State", "type": "string", "format": "", "description": "The type of the newest condition.", "priority": 0},
        {"name": "Age", "type": "string", "format": "", "description": "Time since the MXJob was created.", "priority": 0}
    ])
}

/// "5s", "3m", "2h", "4d" or "1y", as kubectl shows ages.
pub fn human_age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - since).num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 120 * 60 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 365 * 86400 => format!("{}d", s / 86400),
        s => format!("{}y", s / (365 * 86400)),
    }
}

fn row(job: &MXJob, now: DateTime<Utc>) -> Value {
    let state = job
        .status
        .conditions
        .last()
        .map(|c| c.type_.to_string())
        .unwrap_or_default();
    let age = job
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| human_age(t.0, now))
        .unwrap_or_else(|| "<unknown>".to_string());
    json!({
        "cells": [job.metadata.name.clone().unwrap_or_default(), state, age],
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": job.metadata,
        }
    })
}

/// A table of one object.
pub fn for_object(job: &MXJob, api_version: &str) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": {"resourceVersion": job.metadata.resource_version},
        "columnDefinitions": columns(),
        "rows": [row(job, Utc::now())],
    })
}

/// A table of a list.
pub fn for_list(list: &MXJobList, api_version: &str) -> Value {
    let now = Utc::now();
    let rows: Vec<Value> = list.items.iter().map(|job| row(job, now)).collect();
    json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": list.metadata,
        "columnDefinitions": columns(),
        "rows": rows,
    })
}

/// Namespaces as a Table, with the columns kubectl shows for them: Name,
/// Status and Age.
pub fn for_namespaces(
    namespaces: &[k8s_openapi::api::core::v1::Namespace],
    version: &str,
) -> Value {
    let now = Utc::now();
    let rows: Vec<Value> = namespaces
        .iter()
        .map(|namespace| {
            let metadata = &namespace.metadata;
            let status = namespace
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            let age = metadata
                .creation_timestamp
                .as_ref()
                .map(|t| human_age(t.0, now))
                .unwrap_or_else(|| "<unknown>".to_string());
            json!({
                "cells": [metadata.name.clone().unwrap_or_default(), status, age],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata,
                }
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": version,
        "metadata": {},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name of the namespace.", "priority": 0},
            {"name": "Status", "type": "string", "format": "", "description": "The phase of the namespace.", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "description": "Time since the namespace was created.", "priority": 0}
        ],
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_header_asks_for_a_v1_table() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .expect("header"),
        );
        assert_eq!(requested(&headers), Some("meta.k8s.io/v1"));
        headers.insert(
            http::header::ACCEPT,
            "application/json".parse().expect("header"),
        );
        assert_eq!(requested(&headers), None);
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let now = Utc::now();
        let ago = |s: i64| human_age(now - chrono::Duration::seconds(s), now);
        assert_eq!(ago(5), "5s");
        assert_eq!(ago(600), "10m");
        assert_eq!(ago(3 * 3600), "3h");
        assert_eq!(ago(3 * 86400), "3d");
    }
}
