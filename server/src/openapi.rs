//! The OpenAPI document, `openapi/mxjob.json`.
//!
//! Dropshot describes the operations, parameters and schemas from the
//! [`api`](crate::api) trait. A few things it cannot express are added
//! here, deterministically, so that `cargo xtask openapi check` can compare
//! the result with the committed file byte for byte:
//!
//! * the error codes each operation can really return, each answered with
//!   the `Status` schema (dropshot only knows "some 4xx, some 5xx"; the
//!   `5XX` range stays for internal errors);
//! * the seed's body as the example of the replace request and response.
//!
//! Patch declares only `application/json`: one media type per request body
//! is what the generated clients (progenitor among them) accept. The server
//! also takes `application/merge-patch+json` and
//! `application/json-patch+json`, as the operation's description says.

use serde_json::{json, Map, Value};

use crate::api::mxjob_api_mod;

/// The version of the API document (not of the Kubernetes API).
pub const DOCUMENT_VERSION: &str = "1.0.0";

/// `openapi/mxjob.json` as committed, which the server serves at
/// `/openapi.json` (`cargo xtask openapi check` keeps it equal to
/// [`document_text`]).
pub const COMMITTED_DOCUMENT: &str = include_str!("../../openapi/mxjob.json");

/// The seed: CCI's example body for "Replace MXJob".
pub const REPLACE_EXAMPLE: &str = include_str!("../examples/replace-mxjob.json");

/// Error codes by operation, with what they mean there.
const ERRORS: &[(&str, &[(u16, &str)])] = &[
    (
        "create_mxjob",
        &[
            (400, "BadRequest: the body is not JSON or not an MXJob, the namespace does not match the URL, or a field is unknown under fieldValidation=Strict"),
            (409, "AlreadyExists: an MXJob with this name exists"),
            (413, "RequestEntityTooLarge: the body is over 3 MiB"),
            (415, "UnsupportedMediaType: the body is not application/json"),
            (422, "Invalid: the object or the options failed validation; details.causes names each field"),
        ],
    ),
    (
        "read_mxjob_status",
        &[
            (400, "BadRequest: a query parameter is malformed"),
            (404, "NotFound: no MXJob with this name"),
        ],
    ),
    (
        "replace_mxjob_status",
        &[
            (400, "BadRequest: the body is not JSON or not an MXJob, or its name or namespace does not match the URL"),
            (404, "NotFound: no MXJob with this name"),
            (409, "Conflict: the resourceVersion is stale or the uid does not match"),
            (413, "RequestEntityTooLarge: the body is over 3 MiB"),
            (415, "UnsupportedMediaType: the body is not application/json"),
            (422, "Invalid: resourceVersion missing, or the status has unsupported values"),
        ],
    ),
    (
        "patch_mxjob_status",
        &[
            (400, "BadRequest: the patch is not valid JSON or not a valid patch"),
            (404, "NotFound: no MXJob with this name"),
            (409, "Conflict: the patch names a stale resourceVersion or another uid"),
            (413, "RequestEntityTooLarge: the body is over 3 MiB"),
            (415, "UnsupportedMediaType: the patch type is not supported"),
            (422, "Invalid: the patched status has unsupported values"),
        ],
    ),
    ("get_core_api_versions", &[]),
    ("get_core_api_resources", &[]),
    ("get_api_groups", &[]),
    ("get_kubeflow_api_group", &[]),
    ("get_kubeflow_api_resources", &[]),
    ("get_version", &[]),
    (
        "read_mxjob",
        &[
            (400, "BadRequest: a query parameter is malformed"),
            (404, "NotFound: no MXJob with this name"),
        ],
    ),
    (
        "list_mxjobs",
        &[
            (400, "BadRequest: a query parameter, selector or continue token is malformed"),
            (410, "Expired: the continue token or the exact resourceVersion has been compacted away"),
        ],
    ),
    (
        "watch_mxjobs",
        &[(400, "BadRequest: a query parameter or selector is malformed")],
    ),
    (
        "replace_mxjob",
        &[
            (400, "BadRequest: the body is not JSON or not an MXJob, its name or namespace does not match the URL, or a field is unknown under fieldValidation=Strict"),
            (404, "NotFound: no MXJob with this name (replace never creates)"),
            (409, "Conflict: the resourceVersion is stale or the uid does not match"),
            (413, "RequestEntityTooLarge: the body is over 3 MiB"),
            (415, "UnsupportedMediaType: the body is not application/json"),
            (422, "Invalid: resourceVersion missing, a field that may not change was changed, or the object failed validation; details.causes names each field"),
        ],
    ),
    (
        "patch_mxjob",
        &[
            (400, "BadRequest: the patch is not valid JSON, not a valid patch, or the result is not an MXJob"),
            (404, "NotFound: no MXJob with this name"),
            (409, "Conflict: the patch names a stale resourceVersion or another uid"),
            (413, "RequestEntityTooLarge: the body is over 3 MiB"),
            (415, "UnsupportedMediaType: the patch type is not supported"),
            (422, "Invalid: the patched object changes a field that may not change or fails validation"),
        ],
    ),
    (
        "delete_mxjob",
        &[
            (400, "BadRequest: a query parameter is malformed"),
            (404, "NotFound: no MXJob with this name"),
            (422, "Invalid: the delete options are invalid"),
        ],
    ),
    (
        "delete_mxjob_collection",
        &[
            (400, "BadRequest: a query parameter or selector is malformed"),
            (422, "Invalid: the delete options are invalid"),
        ],
    ),
];

/// Operations anyone may call, without credentials.
const DISCOVERY: &[&str] = &[
    "get_core_api_versions",
    "get_core_api_resources",
    "get_api_groups",
    "get_kubeflow_api_group",
    "get_kubeflow_api_resources",
    "get_version",
];

/// What every operation on MXJobs can answer when credentials are configured.
const AUTH_ERRORS: &[(u16, &str)] = &[
    (
        401,
        "Unauthorized: no token, or one the server does not know",
    ),
    (403, "Forbidden: the user may not do this in this namespace"),
];

/// What a watch (and a list with watch=true) can answer beyond a list.
const WATCH_ERRORS: &[(u16, &str)] = &[(
    429,
    "TooManyRequests: the user already holds the most watches allowed",
)];

/// Declares the two ways to present a token — `Authorization: Bearer`
/// (Kubernetes) and `X-Auth-Token` (CCI) — and requires one of them on
/// every MXJob operation; discovery needs none.
fn add_security(doc: &mut Value) -> Result<(), String> {
    for (id, operation) in operations(doc)? {
        let security = if DISCOVERY.contains(&id.as_str()) {
            json!([])
        } else {
            json!([{"BearerToken": []}, {"XAuthToken": []}])
        };
        operation
            .as_object_mut()
            .ok_or_else(|| format!("operation {id} is not an object"))?
            .insert("security".to_string(), security);
    }
    let components = doc
        .get_mut("components")
        .and_then(Value::as_object_mut)
        .ok_or("the document has no components")?;
    components.insert(
        "securitySchemes".to_string(),
        json!({
            "BearerToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from the server's --token-auth-file, as `Authorization: Bearer <token>`."
            },
            "XAuthToken": {
                "type": "apiKey",
                "in": "header",
                "name": "X-Auth-Token",
                "description": "The same token in CCI's `X-Auth-Token` header."
            }
        }),
    );
    Ok(())
}

/// The complete OpenAPI document.
pub fn document() -> Result<Value, String> {
    let api = mxjob_api_mod::stub_api_description().map_err(|e| e.to_string())?;
    let version = semver::Version::parse(DOCUMENT_VERSION).map_err(|e| e.to_string())?;
    let mut definition = api.openapi("MXJob API (kubeflow.org/v1)", version);
    definition.description(
        "The Kubeflow MXJob resource (group kubeflow.org, version v1, resource mxjobs) with \
         the semantics of the Kubernetes API server: resourceVersion for optimistic \
         concurrency, generation, dryRun, field validation, and a v1 Status object for \
         every error. Replace and patch may change only metadata.labels, \
         metadata.annotations, spec.activeDeadlineSeconds, spec.ttlSecondsAfterFinished \
         and spec.cleanPodPolicy.",
    );
    definition.license_name("Apache-2.0");
    let mut doc = definition.json().map_err(|e| e.to_string())?;
    let example: Value = serde_json::from_str(REPLACE_EXAMPLE).map_err(|e| e.to_string())?;
    add_error_responses(&mut doc)?;
    add_security(&mut doc)?;
    add_examples(&mut doc, &example)?;
    mark_watch_stream(&mut doc)?;
    Ok(doc)
}

/// The document as the bytes of `openapi/mxjob.json`.
pub fn document_text() -> Result<String, String> {
    let mut text = serde_json::to_string_pretty(&document()?).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

/// Every operation object, by operationId.
fn operations(doc: &mut Value) -> Result<Vec<(String, &mut Value)>, String> {
    let paths = doc
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .ok_or("the document has no paths")?;
    let mut found = Vec::new();
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for operation in item.values_mut() {
            if let Some(id) = operation.get("operationId").and_then(Value::as_str) {
                found.push((id.to_string(), operation));
            }
        }
    }
    Ok(found)
}

fn add_error_responses(doc: &mut Value) -> Result<(), String> {
    for (id, operation) in operations(doc)? {
        let codes = ERRORS
            .iter()
            .find(|(op, _)| *op == id)
            .map(|(_, codes)| *codes)
            .ok_or_else(|| format!("no error codes listed for operation {id}"))?;
        let responses = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| format!("operation {id} has no responses"))?;
        let guarded = !DISCOVERY.contains(&id.as_str());
        let auth_codes: &[(u16, &str)] = if guarded { AUTH_ERRORS } else { &[] };
        let watch_codes: &[(u16, &str)] = if id == "list_mxjobs" || id == "watch_mxjobs" {
            WATCH_ERRORS
        } else {
            &[]
        };
        for (code, description) in codes.iter().chain(auth_codes).chain(watch_codes) {
            responses.insert(
                code.to_string(),
                json!({
                    "description": description,
                    "content": {
                        "application/json": {
                            "schema": { "$ref": "#/components/schemas/Status" }
                        }
                    }
                }),
            );
        }
        // Every 4xx an operation returns is listed, so the catch-all range
        // dropshot adds would only shadow them in generated clients.
        responses.remove("4XX");
        sort_responses(responses);
    }
    Ok(())
}

/// Status codes in numeric order, then the `5XX` range.
fn sort_responses(responses: &mut Map<String, Value>) {
    let mut entries: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    entries.sort_by(|(a, _), (b, _)| a.cmp(b));
    responses.extend(entries);
}

fn add_examples(doc: &mut Value, example: &Value) -> Result<(), String> {
    for (id, operation) in operations(doc)? {
        if id != "replace_mxjob" {
            continue;
        }
        let body = operation
            .pointer_mut("/requestBody/content/application~1json")
            .and_then(Value::as_object_mut)
            .ok_or("replace_mxjob has no JSON request body")?;
        body.insert("example".to_string(), example.clone());
        let ok = operation
            .pointer_mut("/responses/200/content/application~1json")
            .and_then(Value::as_object_mut)
            .ok_or("replace_mxjob has no JSON 200 response")?;
        ok.insert("example".to_string(), example.clone());
    }
    Ok(())
}

/// The watch operation answers a stream of `WatchEvent`s, not one JSON
/// document: its success response is declared as newline-delimited JSON,
/// so generated clients hand the stream over instead of decoding one object.
fn mark_watch_stream(doc: &mut Value) -> Result<(), String> {
    for (id, operation) in operations(doc)? {
        if id != "watch_mxjobs" {
            continue;
        }
        let content = operation
            .pointer_mut("/responses/200/content")
            .and_then(Value::as_object_mut)
            .ok_or("watch_mxjobs has no 200 response")?;
        let media = content
            .remove("application/json")
            .ok_or("watch_mxjobs has no JSON 200")?;
        content.insert(crate::wire::WATCH_CONTENT_TYPE.to_string(), media);
    }
    Ok(())
}
