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
//! * the seed's body as the example of the replace request and response;
//! * that the `DeleteOptions` body of the deletes is optional (dropshot
//!   marks every body required).
//!
//! Patch declares only `application/json`: one media type per request body
//! is what the generated clients (progenitor among them) accept. The server
//! also takes `application/merge-patch+json` and
//! `application/json-patch+json`, as the operation's description says.

use serde_json::{json, Map, Value};

use crate::api::mxjob_api_mod;

/// Why the document could not be built, in words naming what failed: a
/// mistake in this crate's description of the API, never bad input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("building the OpenAPI document: {0}")]
pub struct DocumentError(String);

impl DocumentError {
    /// The error of one step, in its own words.
    pub fn of(error: impl std::fmt::Display) -> Self {
        DocumentError(error.to_string())
    }
}

impl From<&str> for DocumentError {
    fn from(message: &str) -> Self {
        DocumentError(message.to_string())
    }
}

impl From<String> for DocumentError {
    fn from(message: String) -> Self {
        DocumentError(message)
    }
}

/// The version of the API document (not of the Kubernetes API).
pub const DOCUMENT_VERSION: &str = "1.0.0";

/// `openapi/mxjob.json` as committed, which the server serves at
/// `/openapi.json` (`cargo xtask openapi check` keeps it equal to
/// [`document_text`]).
pub const COMMITTED_DOCUMENT: &str = include_str!("../mxjob.json");

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
            (422, "Invalid: the list options go against each other (for a list: resourceVersionMatch without resourceVersion, with continue, other than Exact or NotOlderThan, or Exact at resourceVersion 0; any sendInitialEvents. With watch=true: sendInitialEvents without resourceVersionMatch=NotOlderThan; resourceVersionMatch without sendInitialEvents, other than NotOlderThan, or with continue)"),
        ],
    ),
    (
        "watch_mxjobs",
        &[
            (400, "BadRequest: a query parameter or selector is malformed"),
            (422, "Invalid: the options go against each other (with watch=true: sendInitialEvents without resourceVersionMatch=NotOlderThan; resourceVersionMatch without sendInitialEvents, other than NotOlderThan, or with continue. Without it they are checked as a list's, as kube-apiserver does: resourceVersionMatch without resourceVersion, with continue, other than Exact or NotOlderThan, or Exact at resourceVersion 0; any sendInitialEvents)"),
        ],
    ),
    (
        "list_mxjobs_for_all_namespaces",
        &[
            (400, "BadRequest: a query parameter, selector or continue token is malformed"),
            (410, "Expired: the continue token or the exact resourceVersion has been compacted away"),
            (422, "Invalid: the list options go against each other (for a list: resourceVersionMatch without resourceVersion, with continue, other than Exact or NotOlderThan, or Exact at resourceVersion 0; any sendInitialEvents. With watch=true: sendInitialEvents without resourceVersionMatch=NotOlderThan; resourceVersionMatch without sendInitialEvents, other than NotOlderThan, or with continue)"),
        ],
    ),
    (
        "watch_mxjobs_for_all_namespaces",
        &[
            (400, "BadRequest: a query parameter or selector is malformed"),
            (422, "Invalid: the options go against each other (with watch=true: sendInitialEvents without resourceVersionMatch=NotOlderThan; resourceVersionMatch without sendInitialEvents, other than NotOlderThan, or with continue. Without it they are checked as a list's, as kube-apiserver does: resourceVersionMatch without resourceVersion, with continue, other than Exact or NotOlderThan, or Exact at resourceVersion 0; any sendInitialEvents)"),
        ],
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
            (400, "BadRequest: the patch is not valid JSON (or YAML, for an apply), not a valid patch, or the result is not an MXJob"),
            (404, "NotFound: no MXJob with this name"),
            (409, "Conflict: the patch names a stale resourceVersion or another uid, or an apply would change fields other managers own (details.causes names each)"),
            (413, "RequestEntityTooLarge: the body is over 3 MiB"),
            (415, "UnsupportedMediaType: the patch type is not supported"),
            (422, "Invalid: the patched object changes a field that may not change or fails validation, or an apply has no fieldManager"),
        ],
    ),
    (
        "delete_mxjob",
        &[
            (400, "BadRequest: a query parameter is malformed, the body is not DeleteOptions, or the body and the query disagree"),
            (404, "NotFound: no MXJob with this name"),
            (409, "Conflict: a precondition (uid or resourceVersion) does not match"),
            (413, "RequestEntityTooLarge: the body is over 3 MiB"),
            (415, "UnsupportedMediaType: the body is not application/json"),
            (422, "Invalid: the delete options are invalid"),
        ],
    ),
    (
        "delete_mxjob_collection",
        &[
            (400, "BadRequest: a query parameter or selector is malformed, the body is not DeleteOptions, or the body and the query disagree"),
            (409, "Conflict: a precondition (uid or resourceVersion) does not match a selected MXJob"),
            (413, "RequestEntityTooLarge: the body is over 3 MiB"),
            (415, "UnsupportedMediaType: the body is not application/json"),
            (422, "Invalid: the delete options are invalid"),
        ],
    ),
    (
        "read_mxjob_log",
        &[
            (400, "BadRequest: replicaType is missing or not a replica type, index is not a number, or the cluster has no log for the replica's Pod yet"),
            (404, "NotFound: no MXJob with this name, no such replica, or no log for it (not started yet, removed by cleanPodPolicy, or the server runs no replicas)"),
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

/// The operations that stream `WatchEvent`s.
const WATCHES: &[&str] = &["watch_mxjobs", "watch_mxjobs_for_all_namespaces"];

/// The operations that can watch (the lists, with `watch=true`, too).
const LISTS_AND_WATCHES: &[&str] = &[
    "list_mxjobs",
    "watch_mxjobs",
    "list_mxjobs_for_all_namespaces",
    "watch_mxjobs_for_all_namespaces",
];

/// What a watch (and a list with watch=true) can answer beyond a list.
const WATCH_ERRORS: &[(u16, &str)] = &[(
    429,
    "TooManyRequests: the user already holds the most watches allowed",
)];

/// Declares the two ways to present a token — `Authorization: Bearer`
/// (Kubernetes) and `X-Auth-Token` (CCI) — on every MXJob operation, and
/// no token (`{}`) as the third alternative: a server without a token file
/// serves anonymous callers (on loopback, or with `--allow-anonymous`), as
/// kube-apiserver serves `system:anonymous` when anonymous authentication
/// is on. With a token file it still answers 401 to a request without a
/// known token. Discovery needs none.
fn add_security(doc: &mut Value) -> Result<(), DocumentError> {
    for (id, operation) in operations(doc)? {
        let security = if DISCOVERY.contains(&id.as_str()) {
            json!([])
        } else {
            json!([{"BearerToken": []}, {"XAuthToken": []}, {}])
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
                "description": "A token from the server's --token-auth-file, as `Authorization: Bearer <token>`. Without a token file the server serves anonymous callers instead (only on a loopback address unless started with --allow-anonymous), which is why every operation also lists no token as an alternative; with one, a request without a known token is answered 401."
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
pub fn document() -> Result<Value, DocumentError> {
    let api = mxjob_api_mod::stub_api_description().map_err(DocumentError::of)?;
    let version = semver::Version::parse(DOCUMENT_VERSION).map_err(DocumentError::of)?;
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
    let mut doc = definition.json().map_err(DocumentError::of)?;
    let example: Value = serde_json::from_str(REPLACE_EXAMPLE).map_err(DocumentError::of)?;
    add_error_responses(&mut doc)?;
    add_security(&mut doc)?;
    add_examples(&mut doc, &example)?;
    drop_empty_defaults(&mut doc)?;
    mark_watch_stream(&mut doc)?;
    mark_plain_text(&mut doc)?;
    mark_optional_bodies(&mut doc)?;
    declare_apply(&mut doc)?;
    crate::constraints::add_constraints(&mut doc)?;
    add_tooling_metadata(&mut doc, &example)?;
    Ok(doc)
}

/// The patch operations, which also take a server-side apply.
const PATCHES: &[&str] = &["patch_mxjob", "patch_mxjob_status"];

/// The media type of a server-side apply.
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// Declares the server-side apply media type on the patch operations: the
/// body is an applied configuration, the parts of an MXJob its manager has
/// an opinion on (a whole MXJob is one). An apply that creates the object
/// answers 201.
fn declare_apply(doc: &mut Value) -> Result<(), DocumentError> {
    for (id, operation) in operations(doc)? {
        if !PATCHES.contains(&id.as_str()) {
            continue;
        }
        let content = operation
            .pointer_mut("/requestBody/content")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| format!("operation {id} has no request body"))?;
        content.insert(
            APPLY_PATCH.to_string(),
            json!({"schema": {"$ref": "#/components/schemas/MXJob"}}),
        );
        if id == "patch_mxjob" {
            let ok = operation
                .pointer("/responses/200")
                .cloned()
                .ok_or_else(|| format!("operation {id} has no 200 response"))?;
            let responses = operation
                .pointer_mut("/responses")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| format!("operation {id} has no responses"))?;
            let mut created = ok;
            created["description"] = json!("Created: a server-side apply created the MXJob");
            responses.insert("201".to_string(), created);
            sort_responses(responses);
        }
    }
    Ok(())
}

/// Operations whose request body may be left out.
const OPTIONAL_BODIES: &[&str] = &["delete_mxjob", "delete_mxjob_collection"];

fn mark_optional_bodies(doc: &mut Value) -> Result<(), DocumentError> {
    for (id, operation) in operations(doc)? {
        if OPTIONAL_BODIES.contains(&id.as_str()) {
            let body = operation
                .pointer_mut("/requestBody")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| format!("operation {id} has no request body"))?;
            body.insert("required".to_string(), Value::Bool(false));
        }
    }
    Ok(())
}

/// The document as the bytes of `openapi/mxjob.json`.
pub fn document_text() -> Result<String, DocumentError> {
    let mut text = serde_json::to_string_pretty(&document()?).map_err(DocumentError::of)?;
    text.push('\n');
    Ok(text)
}

/// Every operation object, by operationId.
fn operations(doc: &mut Value) -> Result<Vec<(String, &mut Value)>, DocumentError> {
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

fn add_error_responses(doc: &mut Value) -> Result<(), DocumentError> {
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
        let watch_codes: &[(u16, &str)] = if LISTS_AND_WATCHES.contains(&id.as_str()) {
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

fn add_examples(doc: &mut Value, example: &Value) -> Result<(), DocumentError> {
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
fn mark_watch_stream(doc: &mut Value) -> Result<(), DocumentError> {
    for (id, operation) in operations(doc)? {
        if !WATCHES.contains(&id.as_str()) {
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

/// A replica's log is plain text: its success response is declared as
/// `text/plain` (dropshot can only say JSON), so clients take the text as is.
fn mark_plain_text(doc: &mut Value) -> Result<(), DocumentError> {
    for (id, operation) in operations(doc)? {
        if id != "read_mxjob_log" {
            continue;
        }
        let content = operation
            .pointer_mut("/responses/200/content")
            .and_then(Value::as_object_mut)
            .ok_or("read_mxjob_log has no 200 response")?;
        let media = content
            .remove("application/json")
            .ok_or("read_mxjob_log has no JSON 200")?;
        content.insert("text/plain".to_string(), media);
    }
    Ok(())
}

// What the tools that read the document need (contract tests, linting, the
// API reference page): links between operations, an example for every
// request and success response, path parameter examples, tag descriptions,
// a server and a typed form of nullable references. Each step is a pure
// function of the document, so the output stays byte-for-byte stable.

/// Adds everything [`document`] needs for schemathesis, Redocly and the
/// generated clients in other languages beyond what dropshot writes.
fn add_tooling_metadata(doc: &mut Value, seed: &Value) -> Result<(), DocumentError> {
    add_links(doc)?;
    add_operation_examples(doc, seed)?;
    add_path_parameter_examples(doc)?;
    describe_document(doc)?;
    bound_integer_formats(doc);
    type_nullable_references(doc)
}

/// Where a link's target takes the object's name from: the object itself
/// (the namespace comes from the request's path).
const NAME_FROM_RESPONSE: &str = "$response.body#/metadata/name";

/// OpenAPI links: after an operation answers with an MXJob, these
/// operations can act on that same object. Schemathesis's stateful phase
/// follows them (create, then read, replace, patch, delete); Redoc shows
/// them. A link to a replace sends the object it got back unchanged, which
/// carries the `resourceVersion` a replace needs.
const LINKS: &[(&str, &str, &[&str])] = &[
    (
        "create_mxjob",
        "201",
        &[
            "read_mxjob",
            "replace_mxjob",
            "patch_mxjob",
            "delete_mxjob",
            "read_mxjob_status",
            "replace_mxjob_status",
            "patch_mxjob_status",
        ],
    ),
    (
        "read_mxjob",
        "200",
        &["replace_mxjob", "patch_mxjob", "delete_mxjob"],
    ),
    (
        "replace_mxjob",
        "200",
        &["read_mxjob", "patch_mxjob", "delete_mxjob"],
    ),
    (
        "patch_mxjob",
        "200",
        &["read_mxjob", "replace_mxjob", "delete_mxjob"],
    ),
    (
        "replace_mxjob_status",
        "200",
        &["read_mxjob_status", "patch_mxjob_status", "delete_mxjob"],
    ),
    (
        "patch_mxjob_status",
        "200",
        &["read_mxjob_status", "replace_mxjob_status", "delete_mxjob"],
    ),
];

fn add_links(doc: &mut Value) -> Result<(), DocumentError> {
    let known: Vec<String> = operations(doc)?.into_iter().map(|(id, _)| id).collect();
    for (source, code, targets) in LINKS {
        if let Some(missing) = targets.iter().find(|t| !known.iter().any(|k| k == *t)) {
            return Err(DocumentError::of(format!(
                "link from {source} to unknown operation {missing}"
            )));
        }
        let mut links = Map::new();
        for target in *targets {
            let mut link = json!({
                "operationId": target,
                "description": format!(
                    "{} the MXJob this response describes.",
                    link_verb(target)
                ),
                "parameters": {
                    "namespace": "$request.path.namespace",
                    "name": NAME_FROM_RESPONSE,
                },
            });
            if target.starts_with("replace_") {
                link["requestBody"] = json!("$response.body");
                // Schemathesis otherwise merges the object field by field
                // into a generated body, which is no longer the object.
                link["x-schemathesis"] = json!({ "merge_body": false });
            }
            links.insert((*target).to_string(), link);
        }
        let (_, operation) = operations(doc)?
            .into_iter()
            .find(|(id, _)| id == source)
            .ok_or_else(|| format!("no operation {source} to link from"))?;
        let response = operation
            .pointer_mut(&format!("/responses/{code}"))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| format!("{source} has no {code} response"))?;
        response.insert("links".to_string(), Value::Object(links));
    }
    Ok(())
}

/// The verb a link's description starts with.
fn link_verb(operation_id: &str) -> &'static str {
    match operation_id.split('_').next() {
        Some("read") => "Read",
        Some("replace") => "Replace",
        Some("patch") => "Patch",
        Some("delete") => "Delete",
        _ => "Use",
    }
}

/// The seed as a client would create it: a name, no server-owned metadata,
/// no status, and without the TTL that the README's walk-through then sets
/// with a replace. No namespace either: the URL's applies.
fn create_example(seed: &Value) -> Value {
    let mut job = seed.clone();
    job["metadata"] = json!({ "name": seed["metadata"]["name"].clone() });
    if let Some(object) = job.as_object_mut() {
        object.remove("status");
    }
    if let Some(spec) = job["spec"].as_object_mut() {
        spec.remove("ttlSecondsAfterFinished");
    }
    job
}

/// What create answers for [`create_example`]: the server's metadata
/// (generation 1) added, no status yet.
fn created_example(seed: &Value) -> Value {
    let mut job = create_example(seed);
    let mut metadata = seed["metadata"].clone();
    metadata["generation"] = json!(1);
    job["metadata"] = metadata;
    job
}

/// A merge patch that labels the job and shortens its TTL.
fn patch_example() -> Value {
    json!({
        "metadata": { "labels": { "team": "vision" } },
        "spec": { "ttlSecondsAfterFinished": 3600 }
    })
}

/// The seed after [`patch_example`]: a spec change, so generation moves.
fn patched_example(seed: &Value) -> Value {
    let mut job = seed.clone();
    job["metadata"]["labels"] = json!({ "team": "vision" });
    job["metadata"]["generation"] = json!(3);
    job["metadata"]["resourceVersion"] = json!("75615501");
    job["spec"]["ttlSecondsAfterFinished"] = json!(3600);
    job
}

/// A status patch as a job controller sends it when the job ends.
fn status_patch_example() -> Value {
    json!({ "status": { "completionTime": "2019-07-29T04:10:00Z" } })
}

/// The seed after [`status_patch_example`]: only status and
/// resourceVersion change.
fn status_patched_example(seed: &Value) -> Value {
    let mut job = seed.clone();
    job["status"]["completionTime"] = json!("2019-07-29T04:10:00Z");
    job["metadata"]["resourceVersion"] = json!("75615502");
    job
}

fn list_example(seed: &Value) -> Value {
    json!({
        "apiVersion": "kubeflow.org/v1",
        "kind": "MXJobList",
        "metadata": { "resourceVersion": seed["metadata"]["resourceVersion"].clone() },
        "items": [seed.clone()]
    })
}

/// What kubectl sends with a delete: the body's options, merged with the
/// query's.
fn delete_options_example() -> Value {
    json!({
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": "Background"
    })
}

fn deleted_example(seed: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": seed["metadata"]["name"].clone(),
            "group": crate::model::GROUP,
            "kind": crate::model::RESOURCE,
            "uid": seed["metadata"]["uid"].clone(),
        }
    })
}

/// `GET /version` as this build answers it, with the platform fixed so the
/// document does not depend on the machine that generated it.
fn version_example() -> Result<Value, DocumentError> {
    let mut info = serde_json::to_value(crate::discovery::version()).map_err(DocumentError::of)?;
    info["platform"] = json!("linux/x86_64");
    Ok(info)
}

fn to_value<T: serde::Serialize>(value: T) -> Result<Value, DocumentError> {
    serde_json::to_value(value).map_err(DocumentError::of)
}

/// Request and success-response examples of every operation but replace
/// (whose example is the seed itself, see [`add_examples`]). All are built
/// from the seed, so they describe one job through its life. Each is kept
/// once under `components/examples` and referenced by name, because the
/// same object answers several operations.
fn add_operation_examples(doc: &mut Value, seed: &Value) -> Result<(), DocumentError> {
    type Named = (&'static str, Value);
    let examples: Vec<(&str, Option<Named>, Named)> = vec![
        (
            "create_mxjob",
            Some(("NewMXJob", create_example(seed))),
            ("CreatedMXJob", created_example(seed)),
        ),
        ("read_mxjob", None, ("MXJob", seed.clone())),
        ("read_mxjob_status", None, ("MXJob", seed.clone())),
        ("list_mxjobs", None, ("MXJobList", list_example(seed))),
        (
            "list_mxjobs_for_all_namespaces",
            None,
            ("MXJobList", list_example(seed)),
        ),
        (
            "watch_mxjobs",
            None,
            (
                "AddedEvent",
                json!({ "type": "ADDED", "object": seed.clone() }),
            ),
        ),
        (
            "watch_mxjobs_for_all_namespaces",
            None,
            (
                "AddedEvent",
                json!({ "type": "ADDED", "object": seed.clone() }),
            ),
        ),
        (
            "patch_mxjob",
            Some(("MergePatch", patch_example())),
            ("PatchedMXJob", patched_example(seed)),
        ),
        (
            "replace_mxjob_status",
            Some(("MXJob", seed.clone())),
            ("MXJob", seed.clone()),
        ),
        (
            "patch_mxjob_status",
            Some(("StatusPatch", status_patch_example())),
            ("StatusPatchedMXJob", status_patched_example(seed)),
        ),
        (
            "delete_mxjob",
            Some(("DeleteOptions", delete_options_example())),
            ("Deleted", deleted_example(seed)),
        ),
        (
            "delete_mxjob_collection",
            Some(("DeleteOptions", delete_options_example())),
            ("MXJobList", list_example(seed)),
        ),
        (
            "read_mxjob_log",
            None,
            (
                "ReplicaLog",
                json!("[mxjob] 2019-07-29T03:34:40Z attempt 1 starting\nINFO:root:Epoch[0] Batch [0-20]\tSpeed: 1024.00 samples/sec\n[mxjob] 2019-07-29T03:52:07Z attempt 1 (pid 4242) exited with code 0\n"),
            ),
        ),
        (
            "get_core_api_versions",
            None,
            ("CoreAPIVersions", to_value(crate::discovery::core_versions())?),
        ),
        (
            "get_core_api_resources",
            None,
            (
                "CoreAPIResources",
                to_value(crate::discovery::core_resources())?,
            ),
        ),
        (
            "get_api_groups",
            None,
            ("APIGroups", to_value(crate::discovery::groups())?),
        ),
        (
            "get_kubeflow_api_group",
            None,
            ("KubeflowAPIGroup", to_value(crate::discovery::group())?),
        ),
        (
            "get_kubeflow_api_resources",
            None,
            (
                "KubeflowAPIResources",
                to_value(crate::discovery::resources())?,
            ),
        ),
        ("get_version", None, ("Version", version_example()?)),
    ];
    let mut shared = Map::new();
    for (id, operation) in operations(doc)? {
        if id == "replace_mxjob" {
            continue;
        }
        let (_, request, response) = examples
            .iter()
            .find(|(op, _, _)| *op == id)
            .ok_or_else(|| format!("no example written for operation {id}"))?;
        if let Some((name, value)) = request {
            set_examples(operation, "/requestBody/content", name, &id)?;
            shared.insert((*name).to_string(), json!({ "value": value }));
        }
        // An apply sends the fields its manager wants, not a patch.
        if let Some(apply) = operation.pointer_mut(&format!(
            "/requestBody/content/{}",
            APPLY_PATCH.replace('/', "~1")
        )) {
            apply["examples"] =
                json!({ "AppliedMXJob": { "$ref": "#/components/examples/AppliedMXJob" } });
            shared.insert(
                "AppliedMXJob".to_string(),
                json!({ "value": create_example(seed) }),
            );
        }
        let code = if id == "create_mxjob" { "201" } else { "200" };
        let (name, value) = response;
        set_examples(operation, &format!("/responses/{code}/content"), name, &id)?;
        shared.insert((*name).to_string(), json!({ "value": value }));
        // An apply that creates the object answers 201 with it.
        if code != "201" && operation.pointer("/responses/201/content").is_some() {
            set_examples(operation, "/responses/201/content", "CreatedMXJob", &id)?;
        }
    }
    doc.pointer_mut("/components")
        .and_then(Value::as_object_mut)
        .ok_or("the document has no components")?
        .insert("examples".to_string(), Value::Object(shared));
    Ok(())
}

/// Refers every media type under `pointer` to the shared example `name`.
fn set_examples(
    operation: &mut Value,
    pointer: &str,
    name: &str,
    id: &str,
) -> Result<(), DocumentError> {
    let content = operation
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("{id} has nothing at {pointer}"))?;
    for media in content.values_mut().filter_map(Value::as_object_mut) {
        media.insert(
            "examples".to_string(),
            json!({ name: { "$ref": format!("#/components/examples/{name}") } }),
        );
    }
    Ok(())
}

/// Examples of the path parameters: the seed's namespace and name, so that
/// the reference page and tools that send examples address one real job.
fn add_path_parameter_examples(doc: &mut Value) -> Result<(), DocumentError> {
    for (_, operation) in operations(doc)? {
        let Some(parameters) = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for parameter in parameters.iter_mut().filter_map(Value::as_object_mut) {
            if parameter.get("in").and_then(Value::as_str) != Some("path") {
                continue;
            }
            let example = match parameter.get("name").and_then(Value::as_str) {
                Some("namespace") => "kube-test",
                Some("name") => "mxnet-job",
                _ => continue,
            };
            parameter.insert("example".to_string(), json!(example));
        }
    }
    Ok(())
}

/// The tags' descriptions, the license's URL and the default server: what
/// the reference page shows around the operations, and the base URL that
/// generated clients start from (`mxjob-server`'s default `--listen`).
fn describe_document(doc: &mut Value) -> Result<(), DocumentError> {
    let root = doc.as_object_mut().ok_or("the document is not an object")?;
    root.insert(
        "servers".to_string(),
        json!([{
            "url": "http://127.0.0.1:8080",
            "description": "mxjob-server with its default --listen address"
        }]),
    );
    if let Some(license) = root
        .get_mut("info")
        .and_then(|info| info.get_mut("license"))
        .and_then(Value::as_object_mut)
    {
        license.insert(
            "url".to_string(),
            json!("https://www.apache.org/licenses/LICENSE-2.0"),
        );
    }
    let tags = root
        .get_mut("tags")
        .and_then(Value::as_array_mut)
        .ok_or("the document has no tags")?;
    for tag in tags.iter_mut().filter_map(Value::as_object_mut) {
        let description = match tag.get("name").and_then(Value::as_str) {
            Some("mxjobs") => {
                "MXJobs in a namespace: create, read, list, watch, replace, patch and delete, \
                 and the status subresource a job controller writes."
            }
            Some("discovery") => {
                "What Kubernetes clients ask before anything else: the API groups, versions \
                 and resources this server serves, and its version. No credentials needed."
            }
            Some(other) => {
                return Err(DocumentError::of(format!(
                    "tag {other} has no description here"
                )))
            }
            None => continue,
        };
        tag.insert("description".to_string(), json!(description));
    }
    Ok(())
}

/// schemars writes an optional reference as `nullable` beside an `allOf`
/// of the reference, without a `type`. OpenAPI 3.0.3 gives `nullable`
/// meaning only next to `type`, and JSON Schema validators that follow it
/// (Redocly's, which checks the examples) refuse such a schema. Each gets
/// the `type` of the schema it refers to; a typeless `nullable` (any JSON
/// value, null included) just loses the keyword, which changes nothing.
fn type_nullable_references(doc: &mut Value) -> Result<(), DocumentError> {
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .ok_or("the document has no schemas")?;
    let types: Map<String, Value> = schemas
        .iter()
        .filter_map(|(name, schema)| {
            let ty = schema.get("type")?;
            Some((format!("#/components/schemas/{name}"), ty.clone()))
        })
        .collect();
    type_nullable_in(doc, &types)
}

fn type_nullable_in(value: &mut Value, types: &Map<String, Value>) -> Result<(), DocumentError> {
    match value {
        Value::Object(object) => {
            let typeless_nullable =
                object.get("nullable") == Some(&Value::Bool(true)) && !object.contains_key("type");
            if typeless_nullable {
                let reference = object
                    .get("allOf")
                    .and_then(Value::as_array)
                    .filter(|all| all.len() == 1)
                    .and_then(|all| all[0].get("$ref"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                match reference {
                    Some(reference) => {
                        let ty = types
                            .get(&reference)
                            .ok_or_else(|| format!("{reference} has no type"))?;
                        object.insert("type".to_string(), ty.clone());
                    }
                    None => {
                        object.remove("nullable");
                    }
                }
            }
            object
                .values_mut()
                .try_for_each(|child| type_nullable_in(child, types))
        }
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|child| type_nullable_in(child, types)),
        _ => Ok(()),
    }
}

/// Removes the `default: {}` schemars writes for fields that decode as
/// empty when absent (`MXJob.status`, `Status.metadata`): generators read a
/// default as "always present" (TypeScript makes the field required) or
/// emit code for it that does not compile (Go), while the server never
/// needs the client to send it.
fn drop_empty_defaults(doc: &mut Value) -> Result<(), DocumentError> {
    let schemas = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
        .ok_or("the document has no schemas")?;
    for schema in schemas.values_mut() {
        if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            for property in properties.values_mut().filter_map(Value::as_object_mut) {
                if property.get("default") == Some(&json!({})) {
                    property.remove("default");
                }
            }
        }
    }
    Ok(())
}

/// The range of each integer `format` the schemas use.
const INTEGER_RANGES: &[(&str, i128, i128)] = &[
    ("int8", i8::MIN as i128, i8::MAX as i128),
    ("uint8", 0, u8::MAX as i128),
    ("int16", i16::MIN as i128, i16::MAX as i128),
    ("uint16", 0, u16::MAX as i128),
    ("int32", i32::MIN as i128, i32::MAX as i128),
    ("uint32", 0, u32::MAX as i128),
    ("int64", i64::MIN as i128, i64::MAX as i128),
    ("uint64", 0, u64::MAX as i128),
];

/// An integer's `format` names its range, but JSON Schema validation (and
/// so every tool that generates or checks values from the document) reads
/// only `minimum` and `maximum`. The server's decoder rejects a value
/// outside the format's range, so the document states the range wherever
/// it does not already say something narrower.
fn bound_integer_formats(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let range = object
                .get("format")
                .and_then(Value::as_str)
                .and_then(|format| INTEGER_RANGES.iter().find(|(f, _, _)| *f == format));
            if let (Some(Value::String(ty)), Some((_, min, max))) = (object.get("type"), range) {
                if ty == "integer" {
                    let (min, max) = (*min, *max);
                    for (key, bound) in [("minimum", min), ("maximum", max)] {
                        if !object.contains_key(key) {
                            let number = i64::try_from(bound)
                                .map(Value::from)
                                .or_else(|_| u64::try_from(bound).map(Value::from))
                                .unwrap_or(Value::Null);
                            object.insert(key.to_string(), number);
                        }
                    }
                }
            }
            object.values_mut().for_each(bound_integer_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integer_formats),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openapi/mxjob.json` is what this crate describes: a change to the
    /// API that was not written to the file fails here, under plain
    /// `cargo test`, and not only in `cargo xtask openapi check`.
    #[test]
    fn the_committed_document_is_the_one_the_code_describes() {
        let generated = document_text().expect("the document builds");
        assert!(
            generated == COMMITTED_DOCUMENT,
            "openapi/mxjob.json is out of date: run `cargo xtask openapi generate` and commit it \
             (`cargo xtask openapi check` shows the difference)"
        );
    }

    #[test]
    fn mxjob_operations_take_either_token_or_none_and_discovery_needs_none() {
        let mut doc = document().expect("the document builds");
        let mut mxjob_operations = 0;
        for (id, operation) in operations(&mut doc).expect("operations") {
            let security = &operation["security"];
            if DISCOVERY.contains(&id.as_str()) {
                assert_eq!(security, &json!([]), "{id}");
            } else {
                mxjob_operations += 1;
                assert_eq!(
                    security,
                    &json!([{"BearerToken": []}, {"XAuthToken": []}, {}]),
                    "{id}"
                );
            }
        }
        assert!(
            mxjob_operations >= 7,
            "the seven documented operations at least"
        );
    }
}
