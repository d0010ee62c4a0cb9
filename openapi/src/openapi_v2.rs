//! The API document in Swagger 2.0 form, for `GET /openapi/v2`.
//!
//! kubectl validates the objects of `kubectl create -f` and `kubectl
//! replace -f` before sending them. It downloads `/openapi/v2` as the
//! protobuf message `openapi.v2.Document` of google/gnostic
//! (`openapiv2/OpenAPIv2.proto`; kubectl 1.20 asks for nothing else),
//! looks up the definition whose `x-kubernetes-group-version-kind` names
//! the object's kind and checks the object against it. Without a decodable
//! document it refuses with "error validating data … turn validation off
//! with --validate=false".
//!
//! The document is converted from the OpenAPI 3.0 document of
//! [`openapi`](crate::openapi):
//!
//! * `components.schemas` become `definitions`; every `$ref` to
//!   `#/components/schemas/X` becomes `#/definitions/X`.
//! * `allOf` with one member (how OAS3 gives a reference a description)
//!   becomes that member: a `$ref` keeps only its description beside it, as
//!   in Kubernetes' own document, since kubectl ignores everything else
//!   next to a `$ref`. Other siblings (`default`, `nullable`) are dropped.
//! * `nullable` is dropped, and `null` removed from `enum`s.
//! * `oneOf` and `anyOf` have no Swagger 2 form: such a schema loses its
//!   type and structure and so accepts anything.
//! * Other keywords Swagger 2 lacks (`not`, `writeOnly`, `deprecated`) are
//!   dropped; a `discriminator` keeps its property name.
//! * Parameters carry their type inline (a `$ref` to an enum schema is
//!   resolved); request bodies become a `body` parameter and the
//!   operation's `consumes`; response media types become `produces`.
//! * Examples stay on responses (`examples` by media type) and schemas,
//!   and are dropped from request bodies, where Swagger 2 has no place.
//! * A response range (`5XX`) becomes `default`: every 4xx is listed, so
//!   what remains are the server errors. Response `$ref`s are inlined.
//! * `MXJob` and `MXJobList` get the `x-kubernetes-group-version-kind`
//!   extension; the `io.k8s.*` types are only ever embedded and need none.
//! * The MXJob operations get `x-kubernetes-action` and the object's
//!   `x-kubernetes-group-version-kind`, as in Kubernetes' own document:
//!   kubectl 1.20 allows `--dry-run=server` (and `kubectl diff`) only for a
//!   kind whose `patch` operation is so marked and takes `dryRun`.
//!
//! The protobuf is written by a small encoder of its own, from the JSON
//! form, so both always agree. Field numbers are those of gnostic's
//! `OpenAPIv2.proto`. YAML-valued fields (`Any.yaml`: enums, defaults,
//! examples, vendor extensions) hold JSON, which is valid YAML.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::model::{API_VERSION, GROUP, KIND, LIST_KIND, RESOURCE, VERSION};
use crate::openapi::DocumentError;

/// The media type kubectl asks for.
pub const PROTOBUF_MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The `Content-Type` to answer the protobuf with. Not
/// [`PROTOBUF_MEDIA_TYPE`]: client-go parses a response's content type
/// with Go's `mime.ParseMediaType`, which rejects the `@` in it, and kubectl
/// then fails with "mime: unexpected content after media subtype". The
/// Kubernetes API server answers `application/octet-stream` too.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/octet-stream";

const SCHEMA_PREFIX: &str = "#/components/schemas/";
const RESPONSE_PREFIX: &str = "#/components/responses/";
const DEFINITION_PREFIX: &str = "#/definitions/";
const GVK_EXTENSION: &str = "x-kubernetes-group-version-kind";

/// The Swagger 2.0 form of the document, as JSON.
pub fn document_json() -> Result<Value, DocumentError> {
    static DOCUMENT: OnceLock<Result<Value, DocumentError>> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| crate::openapi::document().and_then(|doc| convert(&doc)))
        .clone()
}

/// The same document encoded as gnostic's `openapi.v2.Document` protobuf message.
pub fn document_protobuf() -> Result<Vec<u8>, DocumentError> {
    static DOCUMENT: OnceLock<Result<Vec<u8>, DocumentError>> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| document_json().and_then(|doc| encode_document(&doc)))
        .clone()
}

// ---------------------------------------------------------------------------
// OpenAPI 3.0 → Swagger 2.0

fn convert(oas3: &Value) -> Result<Value, DocumentError> {
    let schemas = oas3
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .ok_or("the document has no components.schemas")?;
    let mut definitions = Map::new();
    for (name, schema) in schemas {
        let schema = convert_schema(schema).map_err(|e| format!("schema {name}: {e}"))?;
        definitions.insert(name.clone(), schema);
    }
    for kind in [KIND, LIST_KIND] {
        let definition = definitions
            .get_mut(kind)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| format!("the document has no {kind} schema"))?;
        definition.insert(
            GVK_EXTENSION.to_string(),
            json!([{ "group": GROUP, "version": VERSION, "kind": kind }]),
        );
    }

    let mut paths = Map::new();
    for (path, item) in oas3
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("the document has no paths")?
    {
        let item = convert_path_item(oas3, path, item).map_err(|e| format!("path {path}: {e}"))?;
        paths.insert(path.clone(), item);
    }

    let mut info = Map::new();
    if let Some(source) = oas3.get("info").and_then(Value::as_object) {
        copy_keys(
            source,
            &mut info,
            &[
                "title",
                "version",
                "description",
                "termsOfService",
                "contact",
                "license",
            ],
        );
    }
    let mut doc = Map::new();
    doc.insert("swagger".into(), json!("2.0"));
    doc.insert("info".into(), Value::Object(info));
    doc.insert("consumes".into(), json!(["application/json"]));
    doc.insert("produces".into(), json!(["application/json"]));
    doc.insert("paths".into(), Value::Object(paths));
    doc.insert("definitions".into(), Value::Object(definitions));
    if let Some(tags) = oas3.get("tags") {
        doc.insert("tags".into(), tags.clone());
    }
    Ok(Value::Object(doc))
}

fn copy_keys(from: &Map<String, Value>, to: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        if let Some(value) = from.get(*key) {
            to.insert((*key).to_string(), value.clone());
        }
    }
}

fn definition_ref(value: &Value) -> Result<Value, DocumentError> {
    let reference = value.as_str().ok_or("$ref is not a string")?;
    let name = reference
        .strip_prefix(SCHEMA_PREFIX)
        .ok_or_else(|| format!("unsupported reference {reference}"))?;
    Ok(Value::String(format!("{DEFINITION_PREFIX}{name}")))
}

/// Keywords a Swagger 2.0 schema shares with OAS3 unchanged.
const SCHEMA_KEYWORDS: &[&str] = &[
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "readOnly",
    "xml",
    "externalDocs",
    "example",
];

/// Keywords that give a schema its structure, dropped from `oneOf`/`anyOf`.
const STRUCTURE_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "enum",
    "items",
    "properties",
    "additionalProperties",
    "required",
    "allOf",
];

fn convert_schema(schema: &Value) -> Result<Value, DocumentError> {
    let object = schema.as_object().ok_or("a schema is not an object")?;

    if let Some(reference) = object.get("$ref") {
        let mut out = Map::new();
        out.insert("$ref".into(), definition_ref(reference)?);
        copy_keys(object, &mut out, &["description"]);
        return Ok(Value::Object(out));
    }

    if let Some([only]) = object
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        let inner = convert_schema(only)?;
        let Value::Object(mut inner) = inner else {
            return Err("allOf member did not convert to an object".into());
        };
        if inner.contains_key("$ref") {
            copy_keys(object, &mut inner, &["description"]);
            return Ok(Value::Object(inner));
        }
        let mut outer = object.clone();
        outer.remove("allOf");
        if let Value::Object(outer) = convert_schema(&Value::Object(outer))? {
            inner.extend(outer);
        }
        return Ok(Value::Object(inner));
    }

    let arbitrary = object.contains_key("oneOf") || object.contains_key("anyOf");
    let mut out = Map::new();
    for (key, value) in object {
        if arbitrary && STRUCTURE_KEYWORDS.contains(&key.as_str()) {
            continue;
        }
        let converted = match key.as_str() {
            "type" | "format" => value.clone(),
            "required" => match value.as_array() {
                Some(names) if names.is_empty() => continue,
                _ => value.clone(),
            },
            "enum" => Value::Array(
                value
                    .as_array()
                    .ok_or("enum is not an array")?
                    .iter()
                    .filter(|v| !v.is_null())
                    .cloned()
                    .collect(),
            ),
            "items" => convert_schema(value)?,
            "additionalProperties" => match value {
                Value::Bool(_) => value.clone(),
                _ => convert_schema(value)?,
            },
            "properties" => {
                let mut properties = Map::new();
                for (name, property) in value.as_object().ok_or("properties is not an object")? {
                    let property =
                        convert_schema(property).map_err(|e| format!("property {name}: {e}"))?;
                    properties.insert(name.clone(), property);
                }
                Value::Object(properties)
            }
            "allOf" => Value::Array(
                value
                    .as_array()
                    .ok_or("allOf is not an array")?
                    .iter()
                    .map(convert_schema)
                    .collect::<Result<_, _>>()?,
            ),
            "discriminator" => match value.get("propertyName") {
                Some(name) => name.clone(),
                None => continue,
            },
            k if SCHEMA_KEYWORDS.contains(&k) || k.starts_with("x-") => value.clone(),
            // nullable, oneOf, anyOf, not, writeOnly, deprecated
            _ => continue,
        };
        out.insert(key.clone(), converted);
    }
    Ok(Value::Object(out))
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

fn convert_path_item(oas3: &Value, path: &str, item: &Value) -> Result<Value, DocumentError> {
    let item = item.as_object().ok_or("a path item is not an object")?;
    let mut out = Map::new();
    for method in METHODS {
        if let Some(operation) = item.get(*method) {
            let mut operation =
                convert_operation(oas3, operation).map_err(|e| format!("{method}: {e}"))?;
            if let (Some(action), Some(operation)) =
                (kubernetes_action(path, method), operation.as_object_mut())
            {
                operation.insert("x-kubernetes-action".into(), json!(action));
                operation.insert(
                    GVK_EXTENSION.into(),
                    json!({ "group": GROUP, "version": VERSION, "kind": KIND }),
                );
            }
            out.insert((*method).to_string(), operation);
        }
    }
    if let Some(parameters) = item.get("parameters").and_then(Value::as_array) {
        let parameters = parameters
            .iter()
            .map(|p| convert_parameter(oas3, p))
            .collect::<Result<_, _>>()?;
        out.insert("parameters".into(), Value::Array(parameters));
    }
    Ok(Value::Object(out))
}

/// The `x-kubernetes-action` of an operation on MXJobs, from its method and
/// path; `None` for other operations (discovery).
fn kubernetes_action(path: &str, method: &str) -> Option<&'static str> {
    let rest = path.strip_prefix(&format!("/apis/{API_VERSION}/"))?;
    let collection = rest.ends_with(&format!("/{RESOURCE}"));
    if !collection && !rest.contains(&format!("/{RESOURCE}/")) {
        return None;
    }
    let watch = rest.starts_with("watch/");
    Some(match (method, collection, watch) {
        ("get", true, true) => "watchlist",
        ("get", false, true) => "watch",
        ("get", true, false) => "list",
        ("get", false, false) => "get",
        ("post", _, _) => "post",
        ("put", _, _) => "put",
        ("patch", _, _) => "patch",
        ("delete", true, _) => "deletecollection",
        ("delete", false, _) => "delete",
        _ => return None,
    })
}

fn convert_operation(oas3: &Value, operation: &Value) -> Result<Value, DocumentError> {
    let operation = operation
        .as_object()
        .ok_or("an operation is not an object")?;
    let mut out = Map::new();
    copy_keys(
        operation,
        &mut out,
        &[
            "tags",
            "summary",
            "description",
            "externalDocs",
            "operationId",
            "deprecated",
        ],
    );

    let mut parameters = Vec::new();
    for parameter in operation
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        parameters.push(convert_parameter(oas3, parameter)?);
    }
    if let Some(body) = operation.get("requestBody") {
        let (parameter, consumes) = convert_request_body(body)?;
        parameters.push(parameter);
        out.insert("consumes".into(), json!(consumes));
    }
    if !parameters.is_empty() {
        out.insert("parameters".into(), Value::Array(parameters));
    }

    let (responses, produces) = convert_responses(
        oas3,
        operation
            .get("responses")
            .and_then(Value::as_object)
            .ok_or("an operation has no responses")?,
    )?;
    if !produces.is_empty() {
        out.insert("produces".into(), json!(produces));
    }
    out.insert("responses".into(), Value::Object(responses));
    Ok(Value::Object(out))
}

/// Keywords a non-body parameter takes from its schema.
const PARAMETER_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
];

fn convert_parameter(oas3: &Value, parameter: &Value) -> Result<Value, DocumentError> {
    let parameter = parameter
        .as_object()
        .ok_or("a parameter is not an object")?;
    let name = parameter
        .get("name")
        .and_then(Value::as_str)
        .ok_or("a parameter has no name (or is a $ref)")?;
    let location = parameter
        .get("in")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("parameter {name} has no location"))?;
    if !matches!(location, "path" | "query" | "header") {
        return Err(DocumentError::of(format!(
            "parameter {name}: unsupported location {location}"
        )));
    }
    let mut schema = parameter
        .get("schema")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|n| oas3.pointer("/components/schemas")?.get(n))
            .ok_or_else(|| format!("parameter {name}: unresolved reference {reference}"))?;
        schema = target.clone();
    }
    let schema = convert_schema(&schema)?;
    let primitive = primitive_schema(&schema).map_err(|e| format!("parameter {name}: {e}"))?;

    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    out.insert("in".into(), json!(location));
    if let Some(description) = parameter.get("description").or(schema.get("description")) {
        out.insert("description".into(), description.clone());
    }
    let required = location == "path"
        || parameter
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    if required {
        out.insert("required".into(), json!(true));
    }
    out.extend(primitive);
    Ok(Value::Object(out))
}

/// A converted schema as the inline type of a non-body parameter (or of
/// its array items).
fn primitive_schema(schema: &Value) -> Result<Map<String, Value>, DocumentError> {
    let object = schema.as_object().ok_or("a schema is not an object")?;
    match object.get("type").and_then(Value::as_str) {
        Some("string" | "integer" | "number" | "boolean") => {}
        Some("array") => {}
        other => {
            return Err(DocumentError::of(format!(
                "type {other:?} cannot be a parameter's"
            )))
        }
    }
    let mut out = Map::new();
    copy_keys(object, &mut out, PARAMETER_KEYWORDS);
    if let Some(items) = object.get("items") {
        out.insert("items".into(), Value::Object(primitive_schema(items)?));
        out.insert("collectionFormat".into(), json!("multi"));
    }
    for (key, value) in object.iter().filter(|(k, _)| k.starts_with("x-")) {
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

/// The media type whose schema represents a content map.
fn preferred_media(content: &Map<String, Value>) -> Option<&Value> {
    content
        .get("application/json")
        .or_else(|| content.values().next())
}

fn convert_request_body(body: &Value) -> Result<(Value, Vec<String>), DocumentError> {
    if body.get("$ref").is_some() {
        return Err("request body references are not supported".into());
    }
    let content = body
        .get("content")
        .and_then(Value::as_object)
        .ok_or("a request body has no content")?;
    let schema = match preferred_media(content).and_then(|m| m.get("schema")) {
        Some(schema) => convert_schema(schema)?,
        None => json!({}),
    };
    let mut parameter = Map::new();
    parameter.insert("name".into(), json!("body"));
    parameter.insert("in".into(), json!("body"));
    if let Some(description) = body.get("description") {
        parameter.insert("description".into(), description.clone());
    }
    if body.get("required").and_then(Value::as_bool) == Some(true) {
        parameter.insert("required".into(), json!(true));
    }
    parameter.insert("schema".into(), schema);
    Ok((Value::Object(parameter), content.keys().cloned().collect()))
}

fn is_status_range(code: &str) -> bool {
    let bytes = code.as_bytes();
    bytes.len() == 3 && bytes[0].is_ascii_digit() && code[1..].eq_ignore_ascii_case("xx")
}

fn convert_responses(
    oas3: &Value,
    responses: &Map<String, Value>,
) -> Result<(Map<String, Value>, Vec<String>), DocumentError> {
    let mut out = Map::new();
    let mut produces: Vec<String> = Vec::new();
    // Explicit codes (and `default`) first, so that a range never shadows them.
    let ordered = responses
        .iter()
        .filter(|(code, _)| !is_status_range(code))
        .chain(responses.iter().filter(|(code, _)| is_status_range(code)));
    for (code, response) in ordered {
        let key = if is_status_range(code) {
            "default"
        } else {
            code.as_str()
        };
        if out.contains_key(key) {
            continue;
        }
        let response = match response.get("$ref").and_then(Value::as_str) {
            Some(reference) => reference
                .strip_prefix(RESPONSE_PREFIX)
                .and_then(|n| oas3.pointer("/components/responses")?.get(n))
                .ok_or_else(|| format!("unresolved response reference {reference}"))?,
            None => response,
        };
        let mut converted = Map::new();
        let description = response
            .get("description")
            .cloned()
            .unwrap_or_else(|| json!(""));
        converted.insert("description".into(), description);
        if let Some(content) = response.get("content").and_then(Value::as_object) {
            if let Some(schema) = preferred_media(content).and_then(|m| m.get("schema")) {
                converted.insert("schema".into(), convert_schema(schema)?);
            }
            let mut examples = Map::new();
            for (media, body) in content {
                if !produces.contains(media) {
                    produces.push(media.clone());
                }
                if let Some(example) = body.get("example") {
                    examples.insert(media.clone(), example.clone());
                }
            }
            if !examples.is_empty() {
                converted.insert("examples".into(), Value::Object(examples));
            }
        }
        out.insert(key.to_string(), Value::Object(converted));
    }
    produces.sort();
    Ok((out, produces))
}

// ---------------------------------------------------------------------------
// Protobuf encoding (gnostic `openapi.v2`)

/// A protobuf message under construction.
#[derive(Default)]
struct Message(Vec<u8>);

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

impl Message {
    fn key(&mut self, field: u32, wire_type: u8) {
        put_varint(&mut self.0, (u64::from(field) << 3) | u64::from(wire_type));
    }

    fn bytes(&mut self, field: u32, data: &[u8]) {
        self.key(field, 2);
        put_varint(&mut self.0, data.len() as u64);
        self.0.extend_from_slice(data);
    }

    fn message(&mut self, field: u32, message: Message) {
        self.bytes(field, &message.0);
    }

    /// A `oneof` member or a presence-carrying bool: written even if false.
    fn bool_always(&mut self, field: u32, value: bool) {
        self.key(field, 0);
        put_varint(&mut self.0, u64::from(value));
    }

    /// `string field = n` from `object[key]`, if it is a non-empty string.
    fn string(&mut self, field: u32, object: &Value, key: &str) {
        if let Some(s) = object
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            self.bytes(field, s.as_bytes());
        }
    }

    /// `repeated string field = n` from `object[key]`.
    fn strings(&mut self, field: u32, object: &Value, key: &str) {
        for s in object
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            self.bytes(field, s.as_bytes());
        }
    }

    fn boolean(&mut self, field: u32, object: &Value, key: &str) {
        if object.get(key).and_then(Value::as_bool) == Some(true) {
            self.bool_always(field, true);
        }
    }

    fn int64(&mut self, field: u32, object: &Value, key: &str) {
        if let Some(n) = object.get(key).and_then(Value::as_i64).filter(|n| *n != 0) {
            self.key(field, 0);
            put_varint(&mut self.0, n as u64);
        }
    }

    fn double(&mut self, field: u32, object: &Value, key: &str) {
        if let Some(n) = object.get(key).and_then(Value::as_f64) {
            self.key(field, 1);
            self.0.extend_from_slice(&n.to_le_bytes());
        }
    }

    /// `Any field = n` (as YAML) from `object[key]`.
    fn any(&mut self, field: u32, object: &Value, key: &str) -> Result<(), DocumentError> {
        if let Some(value) = object.get(key) {
            self.message(field, any(value)?);
        }
        Ok(())
    }

    /// `repeated Any field = n` from the array `object[key]`.
    fn anys(&mut self, field: u32, object: &Value, key: &str) -> Result<(), DocumentError> {
        for value in object
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.message(field, any(value)?);
        }
        Ok(())
    }

    /// `repeated NamedAny vendor_extension = n` from the `x-` keys.
    fn vendor_extensions(&mut self, field: u32, object: &Value) -> Result<(), DocumentError> {
        for (name, value) in object
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("x-"))
        {
            self.message(field, named(name, any(value)?));
        }
        Ok(())
    }
}

/// `Any { string yaml = 2 }`; JSON is YAML.
fn any(value: &Value) -> Result<Message, DocumentError> {
    let mut m = Message::default();
    let text = serde_json::to_string(value).map_err(DocumentError::of)?;
    m.bytes(2, text.as_bytes());
    Ok(m)
}

/// Any `Named*` message: `{ string name = 1; value = 2 }`.
fn named(name: &str, value: Message) -> Message {
    let mut m = Message::default();
    m.bytes(1, name.as_bytes());
    m.message(2, value);
    m
}

fn entries(object: &Value) -> impl Iterator<Item = (&String, &Value)> {
    object.as_object().into_iter().flatten()
}

/// `Document`.
fn encode_document(doc: &Value) -> Result<Vec<u8>, DocumentError> {
    let mut m = Message::default();
    m.string(1, doc, "swagger");
    if let Some(info) = doc.get("info") {
        m.message(2, encode_info(info)?);
    }
    m.strings(6, doc, "consumes");
    m.strings(7, doc, "produces");
    if let Some(paths) = doc.get("paths") {
        m.message(8, encode_paths(paths)?);
    }
    if let Some(definitions) = doc.get("definitions") {
        // Definitions { repeated NamedSchema additional_properties = 1 }
        let mut d = Message::default();
        for (name, schema) in entries(definitions) {
            d.message(1, named(name, encode_schema(schema)?));
        }
        m.message(9, d);
    }
    for tag in doc
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // Tag { name = 1, description = 2, external_docs = 3, vendor_extension = 4 }
        let mut t = Message::default();
        t.string(1, tag, "name");
        t.string(2, tag, "description");
        if let Some(docs) = tag.get("externalDocs") {
            t.message(3, encode_external_docs(docs)?);
        }
        t.vendor_extensions(4, tag)?;
        m.message(14, t);
    }
    m.vendor_extensions(16, doc)?;
    Ok(m.0)
}

/// `Info`, with `Contact` and `License`.
fn encode_info(info: &Value) -> Result<Message, DocumentError> {
    let mut m = Message::default();
    m.string(1, info, "title");
    m.string(2, info, "version");
    m.string(3, info, "description");
    m.string(4, info, "termsOfService");
    if let Some(contact) = info.get("contact") {
        let mut c = Message::default();
        c.string(1, contact, "name");
        c.string(2, contact, "url");
        c.string(3, contact, "email");
        c.vendor_extensions(4, contact)?;
        m.message(5, c);
    }
    if let Some(license) = info.get("license") {
        let mut l = Message::default();
        l.string(1, license, "name");
        l.string(2, license, "url");
        l.vendor_extensions(3, license)?;
        m.message(6, l);
    }
    m.vendor_extensions(7, info)?;
    Ok(m)
}

/// `ExternalDocs`.
fn encode_external_docs(docs: &Value) -> Result<Message, DocumentError> {
    let mut m = Message::default();
    m.string(1, docs, "description");
    m.string(2, docs, "url");
    m.vendor_extensions(3, docs)?;
    Ok(m)
}

/// `Paths { vendor_extension = 1; repeated NamedPathItem path = 2 }`.
fn encode_paths(paths: &Value) -> Result<Message, DocumentError> {
    let mut m = Message::default();
    m.vendor_extensions(1, paths)?;
    for (path, item) in entries(paths).filter(|(k, _)| k.starts_with('/')) {
        m.message(2, named(path, encode_path_item(item)?));
    }
    Ok(m)
}

/// `PathItem`: get = 2, put = 3, post = 4, delete = 5, options = 6,
/// head = 7, patch = 8, parameters = 9.
fn encode_path_item(item: &Value) -> Result<Message, DocumentError> {
    let mut m = Message::default();
    for (field, method) in (2..).zip(METHODS) {
        if let Some(operation) = item.get(*method) {
            m.message(field, encode_operation(operation)?);
        }
    }
    for parameter in item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(9, encode_parameters_item(parameter)?);
    }
    m.vendor_extensions(10, item)?;
    Ok(m)
}

/// `Operation`.
fn encode_operation(operation: &Value) -> Result<Message, DocumentError> {
    let mut m = Message::default();
    m.strings(1, operation, "tags");
    m.string(2, operation, "summary");
    m.string(3, operation, "description");
    if let Some(docs) = operation.get("externalDocs") {
        m.message(4, encode_external_docs(docs)?);
    }
    m.string(5, operation, "operationId");
    m.strings(6, operation, "produces");
    m.strings(7, operation, "consumes");
    for parameter in operation
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(8, encode_parameters_item(parameter)?);
    }
    if let Some(responses) = operation.get("responses") {
        m.message(9, encode_responses(responses)?);
    }
    m.boolean(11, operation, "deprecated");
    m.vendor_extensions(13, operation)?;
    Ok(m)
}

/// `ParametersItem { oneof { Parameter parameter = 1; JsonReference json_reference = 2 } }`
/// with `Parameter { oneof { BodyParameter body_parameter = 1;
/// NonBodyParameter non_body_parameter = 2 } }`.
fn encode_parameters_item(parameter: &Value) -> Result<Message, DocumentError> {
    let mut item = Message::default();
    if parameter.get("$ref").is_some() {
        let mut reference = Message::default();
        reference.string(1, parameter, "$ref");
        reference.string(2, parameter, "description");
        item.message(2, reference);
        return Ok(item);
    }
    let location = parameter.get("in").and_then(Value::as_str).unwrap_or("");
    let mut p = Message::default();
    if location == "body" {
        // BodyParameter
        let mut b = Message::default();
        b.string(1, parameter, "description");
        b.string(2, parameter, "name");
        b.string(3, parameter, "in");
        b.boolean(4, parameter, "required");
        if let Some(schema) = parameter.get("schema") {
            b.message(5, encode_schema(schema)?);
        }
        b.vendor_extensions(6, parameter)?;
        p.message(1, b);
    } else {
        // NonBodyParameter: header = 1, formData = 2, query = 3, path = 4.
        // All four start with required = 1, in = 2, description = 3,
        // name = 4; query and formData add allow_empty_value = 5, so
        // their primitive fields start at 6 instead of 5.
        let (variant, first) = match location {
            "header" => (1, 5),
            "formData" => (2, 6),
            "query" => (3, 6),
            "path" => (4, 5),
            other => {
                return Err(DocumentError::of(format!(
                    "unsupported parameter location {other:?}"
                )))
            }
        };
        let mut s = Message::default();
        s.boolean(1, parameter, "required");
        s.string(2, parameter, "in");
        s.string(3, parameter, "description");
        s.string(4, parameter, "name");
        if first == 6 {
            s.boolean(5, parameter, "allowEmptyValue");
        }
        encode_primitive(&mut s, parameter, first)?;
        let mut non_body = Message::default();
        non_body.message(variant, s);
        p.message(2, non_body);
    }
    item.message(1, p);
    Ok(item)
}

/// The fields a non-body parameter, a `Header` and `PrimitivesItems` share,
/// in the same order: `type` at `first`, `format` at `first + 1`, …,
/// `vendor_extension` at `first + 17`.
fn encode_primitive(m: &mut Message, object: &Value, first: u32) -> Result<(), DocumentError> {
    m.string(first, object, "type");
    m.string(first + 1, object, "format");
    if let Some(items) = object.get("items") {
        // PrimitivesItems starts with type = 1.
        let mut i = Message::default();
        encode_primitive(&mut i, items, 1)?;
        m.message(first + 2, i);
    }
    m.string(first + 3, object, "collectionFormat");
    m.any(first + 4, object, "default")?;
    m.double(first + 5, object, "maximum");
    m.boolean(first + 6, object, "exclusiveMaximum");
    m.double(first + 7, object, "minimum");
    m.boolean(first + 8, object, "exclusiveMinimum");
    m.int64(first + 9, object, "maxLength");
    m.int64(first + 10, object, "minLength");
    m.string(first + 11, object, "pattern");
    m.int64(first + 12, object, "maxItems");
    m.int64(first + 13, object, "minItems");
    m.boolean(first + 14, object, "uniqueItems");
    m.anys(first + 15, object, "enum")?;
    m.double(first + 16, object, "multipleOf");
    m.vendor_extensions(first + 17, object)?;
    Ok(())
}

/// `Responses { repeated NamedResponseValue response_code = 1 }` with
/// `ResponseValue { oneof { Response response = 1; JsonReference json_reference = 2 } }`.
fn encode_responses(responses: &Value) -> Result<Message, DocumentError> {
    let mut m = Message::default();
    for (code, response) in entries(responses).filter(|(k, _)| !k.starts_with("x-")) {
        // Response { description = 1, SchemaItem schema = 2, Examples examples = 4 }
        let mut r = Message::default();
        r.string(1, response, "description");
        if let Some(schema) = response.get("schema") {
            // SchemaItem { oneof { Schema schema = 1; FileSchema file_schema = 2 } }
            let mut item = Message::default();
            item.message(1, encode_schema(schema)?);
            r.message(2, item);
        }
        if let Some(examples) = response.get("examples") {
            // Examples { repeated NamedAny additional_properties = 1 }
            let mut e = Message::default();
            for (media, example) in entries(examples) {
                e.message(1, named(media, any(example)?));
            }
            r.message(4, e);
        }
        r.vendor_extensions(5, response)?;
        let mut value = Message::default();
        value.message(1, r);
        m.message(1, named(code, value));
    }
    m.vendor_extensions(2, responses)?;
    Ok(m)
}

/// `Schema`.
fn encode_schema(schema: &Value) -> Result<Message, DocumentError> {
    let mut m = Message::default();
    m.string(1, schema, "$ref");
    m.string(2, schema, "format");
    m.string(3, schema, "title");
    m.string(4, schema, "description");
    m.any(5, schema, "default")?;
    m.double(6, schema, "multipleOf");
    m.double(7, schema, "maximum");
    m.boolean(8, schema, "exclusiveMaximum");
    m.double(9, schema, "minimum");
    m.boolean(10, schema, "exclusiveMinimum");
    m.int64(11, schema, "maxLength");
    m.int64(12, schema, "minLength");
    m.string(13, schema, "pattern");
    m.int64(14, schema, "maxItems");
    m.int64(15, schema, "minItems");
    m.boolean(16, schema, "uniqueItems");
    m.int64(17, schema, "maxProperties");
    m.int64(18, schema, "minProperties");
    m.strings(19, schema, "required");
    m.anys(20, schema, "enum")?;
    if let Some(additional) = schema.get("additionalProperties") {
        // AdditionalPropertiesItem { oneof { Schema schema = 1; bool boolean = 2 } }
        let mut a = Message::default();
        match additional {
            Value::Bool(b) => a.bool_always(2, *b),
            _ => a.message(1, encode_schema(additional)?),
        }
        m.message(21, a);
    }
    if let Some(types) = schema.get("type") {
        // TypeItem { repeated string value = 1 }
        let mut t = Message::default();
        match types {
            Value::String(s) => t.bytes(1, s.as_bytes()),
            Value::Array(list) => {
                for s in list.iter().filter_map(Value::as_str) {
                    t.bytes(1, s.as_bytes());
                }
            }
            _ => return Err("type is neither a string nor a list".into()),
        }
        m.message(22, t);
    }
    if let Some(items) = schema.get("items") {
        // ItemsItem { repeated Schema schema = 1 }
        let mut i = Message::default();
        match items {
            Value::Array(list) => {
                for item in list {
                    i.message(1, encode_schema(item)?);
                }
            }
            _ => i.message(1, encode_schema(items)?),
        }
        m.message(23, i);
    }
    for member in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, encode_schema(member)?);
    }
    if let Some(properties) = schema.get("properties") {
        // Properties { repeated NamedSchema additional_properties = 1 }
        let mut p = Message::default();
        for (name, property) in entries(properties) {
            p.message(1, named(name, encode_schema(property)?));
        }
        m.message(25, p);
    }
    m.string(26, schema, "discriminator");
    m.boolean(27, schema, "readOnly");
    if let Some(xml) = schema.get("xml") {
        let mut x = Message::default();
        x.string(1, xml, "name");
        x.string(2, xml, "namespace");
        x.string(3, xml, "prefix");
        x.boolean(4, xml, "attribute");
        x.boolean(5, xml, "wrapped");
        x.vendor_extensions(6, xml)?;
        m.message(28, x);
    }
    if let Some(docs) = schema.get("externalDocs") {
        m.message(29, encode_external_docs(docs)?);
    }
    m.any(30, schema, "example")?;
    m.vendor_extensions(31, schema)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        document_json().unwrap()
    }

    /// Calls `f` on every schema in `schema`, itself included.
    fn walk_schema(schema: &Value, f: &mut dyn FnMut(&Value)) {
        f(schema);
        for (_, property) in entries(schema.get("properties").unwrap_or(&Value::Null)) {
            walk_schema(property, f);
        }
        if let Some(items) = schema.get("items") {
            walk_schema(items, f);
        }
        if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            walk_schema(additional, f);
        }
        for member in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk_schema(member, f);
        }
    }

    /// Every schema of the document: definitions, bodies and responses.
    fn all_schemas(doc: &Value) -> Vec<Value> {
        let mut roots: Vec<&Value> = entries(&doc["definitions"]).map(|(_, s)| s).collect();
        for (_, item) in entries(&doc["paths"]) {
            for (_, operation) in entries(item) {
                for p in operation["parameters"].as_array().into_iter().flatten() {
                    roots.extend(p.get("schema"));
                }
                for (_, r) in entries(&operation["responses"]) {
                    roots.extend(r.get("schema"));
                }
            }
        }
        let mut all = Vec::new();
        for root in roots {
            walk_schema(root, &mut |s| all.push(s.clone()));
        }
        all
    }

    #[test]
    fn is_swagger_2() {
        let doc = doc();
        assert_eq!(doc["swagger"], "2.0");
        assert_eq!(doc["info"]["title"], "MXJob API (kubeflow.org/v1)");
        assert!(doc.get("components").is_none());
        assert!(doc.get("openapi").is_none());
    }

    #[test]
    fn kinds_carry_their_group_version_kind() {
        let doc = doc();
        assert_eq!(
            doc["definitions"]["MXJob"][GVK_EXTENSION],
            json!([{ "group": "kubeflow.org", "version": "v1", "kind": "MXJob" }])
        );
        assert_eq!(
            doc["definitions"]["MXJobList"][GVK_EXTENSION],
            json!([{ "group": "kubeflow.org", "version": "v1", "kind": "MXJobList" }])
        );
        let with_gvk = entries(&doc["definitions"])
            .filter(|(_, s)| s.get(GVK_EXTENSION).is_some())
            .count();
        assert_eq!(with_gvk, 2);
    }

    #[test]
    fn every_reference_resolves_to_a_definition() {
        fn check(value: &Value, definitions: &Map<String, Value>, count: &mut usize) {
            match value {
                Value::Object(object) => {
                    for (key, child) in object {
                        if key == "$ref" {
                            let reference = child.as_str().unwrap();
                            let name = reference.strip_prefix(DEFINITION_PREFIX).unwrap();
                            assert!(definitions.contains_key(name), "dangling {reference}");
                            *count += 1;
                        }
                        check(child, definitions, count);
                    }
                }
                Value::Array(list) => list.iter().for_each(|v| check(v, definitions, count)),
                Value::String(s) => assert!(!s.starts_with("#/components/"), "{s}"),
                _ => {}
            }
        }
        let doc = doc();
        let mut count = 0;
        check(&doc, doc["definitions"].as_object().unwrap(), &mut count);
        assert!(count > 100);
    }

    /// What kubectl's parser needs: one known type per schema, `items` on
    /// every array, no OAS3-only keywords, and a `$ref` beside at most a
    /// description.
    #[test]
    fn schemas_are_what_kubectl_parses() {
        let doc = doc();
        let schemas = all_schemas(&doc);
        assert!(schemas.len() > 500, "{}", schemas.len());
        for schema in &schemas {
            for key in ["nullable", "oneOf", "anyOf", "not", "writeOnly"] {
                assert!(schema.get(key).is_none(), "{key} in {schema}");
            }
            if schema.get("$ref").is_some() {
                let keys: Vec<&String> = schema.as_object().unwrap().keys().collect();
                assert!(
                    keys.iter().all(|k| *k == "$ref" || *k == "description"),
                    "{keys:?}"
                );
            }
            if let Some(t) = schema.get("type") {
                let t = t.as_str().unwrap();
                assert!(
                    ["object", "array", "string", "integer", "number", "boolean"].contains(&t),
                    "{t}"
                );
                if t == "array" {
                    assert!(schema["items"].is_object(), "{schema}");
                }
            }
        }
        // allOf-with-description became a plain reference.
        assert_eq!(
            doc["definitions"]["MXJob"]["properties"]["spec"],
            json!({ "$ref": "#/definitions/MXJobSpec", "description": "The desired state of the job." })
        );
        // anyOf became arbitrary.
        let patch = &doc["definitions"]["MXJobPatch"];
        assert!(patch.get("type").is_none() && patch.get("description").is_some());
    }

    #[test]
    fn operations_are_swagger_2() {
        let doc = doc();
        let item = &doc["paths"]["/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}"];
        let replace = &item["put"];
        assert_eq!(replace["operationId"], "replace_mxjob");
        assert_eq!(replace["consumes"], json!(["application/json"]));
        let parameters = replace["parameters"].as_array().unwrap();
        let find = |name: &str| parameters.iter().find(|p| p["name"] == name).unwrap();
        assert_eq!(
            find("name"),
            &json!({ "name": "name", "in": "path", "required": true, "type": "string",
                     "description": "Name of the MXJob." })
        );
        assert_eq!(find("dryRun")["type"], "string");
        assert_eq!(find("dryRun")["enum"], json!(["All"]));
        assert!(find("dryRun").get("schema").is_none());
        let body = find("body");
        assert_eq!(body["in"], "body");
        assert_eq!(body["required"], true);
        assert_eq!(body["schema"], json!({ "$ref": "#/definitions/MXJob" }));
        assert!(body.get("example").is_none());

        let responses = &replace["responses"];
        assert_eq!(
            responses["200"]["schema"],
            json!({ "$ref": "#/definitions/MXJob" })
        );
        assert_eq!(
            responses["200"]["examples"]["application/json"]["kind"],
            "MXJob"
        );
        assert_eq!(
            responses["409"]["schema"],
            json!({ "$ref": "#/definitions/Status" })
        );
        assert_eq!(
            responses["default"]["schema"],
            json!({ "$ref": "#/definitions/Status" })
        );
        assert!(responses.get("5XX").is_none());

        let gvk = json!({ "group": "kubeflow.org", "version": "v1", "kind": "MXJob" });
        assert_eq!(replace["x-kubernetes-action"], "put");
        assert_eq!(replace[GVK_EXTENSION], gvk);
        assert_eq!(item["patch"]["x-kubernetes-action"], "patch");
        assert_eq!(item["patch"][GVK_EXTENSION], gvk);
        let discovery = &doc["paths"]["/apis/kubeflow.org/v1"]["get"];
        assert!(discovery.get("x-kubernetes-action").is_none());

        let watch = &doc["paths"]["/apis/kubeflow.org/v1/watch/namespaces/{namespace}/mxjobs"];
        assert_eq!(watch["get"]["x-kubernetes-action"], "watchlist");
        assert!(watch["get"]["produces"]
            .as_array()
            .unwrap()
            .contains(&json!(crate::wire::WATCH_CONTENT_TYPE)));
        let collection = &doc["paths"]["/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs"];
        assert_eq!(
            collection["delete"]["x-kubernetes-action"],
            "deletecollection"
        );
        assert_eq!(collection["post"]["x-kubernetes-action"], "post");
        let list = &collection["get"];
        assert_eq!(list["x-kubernetes-action"], "list");
        let limit = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit");
        assert!(limit.is_some_and(|p| p["type"] == "integer" && p["in"] == "query"));
    }

    // A minimal protobuf reader, to check the encoding independently.

    #[derive(Debug)]
    enum Field<'a> {
        Varint(u64),
        Fixed64(u64),
        Bytes(&'a [u8]),
    }

    fn read_varint(buf: &[u8], pos: &mut usize) -> u64 {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = buf[*pos];
            *pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return value;
            }
        }
        panic!("varint too long");
    }

    fn read(buf: &[u8]) -> Vec<(u64, Field<'_>)> {
        let mut fields = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            let key = read_varint(buf, &mut pos);
            let field = match key & 7 {
                0 => Field::Varint(read_varint(buf, &mut pos)),
                1 => {
                    let bytes: [u8; 8] = buf[pos..pos + 8].try_into().unwrap();
                    pos += 8;
                    Field::Fixed64(u64::from_le_bytes(bytes))
                }
                2 => {
                    let len = read_varint(buf, &mut pos) as usize;
                    let bytes = &buf[pos..pos + len];
                    pos += len;
                    Field::Bytes(bytes)
                }
                other => panic!("unexpected wire type {other}"),
            };
            assert!(key >> 3 > 0);
            fields.push((key >> 3, field));
        }
        assert_eq!(pos, buf.len());
        fields
    }

    fn bytes<'a>(fields: &[(u64, Field<'a>)], number: u64) -> Vec<&'a [u8]> {
        fields
            .iter()
            .filter_map(|(n, f)| match f {
                Field::Bytes(b) if *n == number => Some(*b),
                _ => None,
            })
            .collect()
    }

    fn string(fields: &[(u64, Field<'_>)], number: u64) -> String {
        let found = bytes(fields, number);
        assert_eq!(found.len(), 1, "field {number}");
        String::from_utf8(found[0].to_vec()).unwrap()
    }

    /// The `Named*` entries of a map message, by name.
    fn named_entries(map: &[u8], number: u64) -> Vec<(String, &[u8])> {
        bytes(&read(map), number)
            .into_iter()
            .map(|entry| {
                let fields = read(entry);
                let value = bytes(&fields, 2);
                (string(&fields, 1), value[0])
            })
            .collect()
    }

    #[test]
    fn varints_encode_as_protobuf_does() {
        let mut buf = Vec::new();
        put_varint(&mut buf, 300);
        assert_eq!(buf, [0xac, 0x02]);
        let mut m = Message::default();
        m.int64(1, &json!({ "n": -1 }), "n");
        assert_eq!(m.0.len(), 1 + 10);
        let fields = read(&m.0);
        assert!(matches!(fields[0], (1, Field::Varint(u64::MAX))));
    }

    #[test]
    fn protobuf_decodes_as_an_openapi_v2_document() {
        let buf = document_protobuf().unwrap();
        let top = read(&buf);
        assert_eq!(string(&top, 1), "2.0");
        let info = read(bytes(&top, 2)[0]);
        assert_eq!(string(&info, 1), "MXJob API (kubeflow.org/v1)");
        assert_eq!(string(&info, 2), crate::openapi::DOCUMENT_VERSION);

        // Definitions (9) → NamedSchema (1).
        let definitions = named_entries(bytes(&top, 9)[0], 1);
        assert_eq!(
            definitions.len(),
            doc()["definitions"].as_object().unwrap().len()
        );
        let (_, mxjob) = definitions.iter().find(|(n, _)| n == "MXJob").unwrap();
        let mxjob = read(mxjob);
        // type (22) → TypeItem.value (1)
        assert_eq!(string(&read(bytes(&mxjob, 22)[0]), 1), "object");
        // vendor_extension (31) → NamedAny { name, Any { yaml = 2 } }
        let extensions = bytes(&mxjob, 31);
        assert_eq!(extensions.len(), 1);
        let extension = read(extensions[0]);
        assert_eq!(string(&extension, 1), GVK_EXTENSION);
        let yaml = string(&read(bytes(&extension, 2)[0]), 2);
        let gvk: Value = serde_json::from_str(&yaml).unwrap();
        assert_eq!(
            gvk,
            json!([{ "group": "kubeflow.org", "version": "v1", "kind": "MXJob" }])
        );
        // properties (25) → NamedSchema; spec is a reference (_ref = 1).
        let properties = named_entries(bytes(&mxjob, 25)[0], 1);
        let (_, spec) = properties.iter().find(|(n, _)| n == "spec").unwrap();
        assert_eq!(string(&read(spec), 1), "#/definitions/MXJobSpec");

        // MXReplicaSpecs: additionalProperties false is present (oneof).
        let (_, replicas) = definitions
            .iter()
            .find(|(n, _)| n == "MXReplicaSpecs")
            .unwrap();
        let additional = read(bytes(&read(replicas), 21)[0]);
        assert!(matches!(additional[..], [(2, Field::Varint(0))]));

        // MXJobSpec.activeDeadlineSeconds: minimum (9) is the double 1.0.
        let (_, spec) = definitions.iter().find(|(n, _)| n == "MXJobSpec").unwrap();
        let properties = named_entries(bytes(&read(spec), 25)[0], 1);
        let (_, deadline) = properties
            .iter()
            .find(|(n, _)| n == "activeDeadlineSeconds")
            .unwrap();
        let deadline = read(deadline);
        assert!(deadline
            .iter()
            .any(|f| matches!(f, (9, Field::Fixed64(bits)) if f64::from_bits(*bits) == 1.0)));

        // Paths (8) → NamedPathItem (2) → PathItem.put (3) → Operation.
        let paths = named_entries(bytes(&top, 8)[0], 2);
        let (_, item) = paths
            .iter()
            .find(|(n, _)| n == "/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs/{name}")
            .unwrap();
        let put = read(bytes(&read(item), 3)[0]);
        assert_eq!(string(&put, 5), "replace_mxjob");
        // vendor_extension (13): x-kubernetes-action, then the GVK.
        let extensions: Vec<String> = bytes(&put, 13)
            .into_iter()
            .map(|e| string(&read(e), 1))
            .collect();
        assert_eq!(extensions, ["x-kubernetes-action", GVK_EXTENSION]);
        // parameters (8): ParametersItem.parameter (1) → Parameter.
        let kinds: Vec<u64> = bytes(&put, 8)
            .into_iter()
            .map(|p| {
                let parameter = read(bytes(&read(p), 1)[0]);
                assert_eq!(parameter.len(), 1);
                parameter[0].0
            })
            .collect();
        assert_eq!(kinds.iter().filter(|k| **k == 1).count(), 1, "one body");
        assert!(kinds.iter().filter(|k| **k == 2).count() >= 2);
        // responses (9) → NamedResponseValue (1) → ResponseValue.response (1).
        let responses = named_entries(bytes(&put, 9)[0], 1);
        let (_, ok) = responses.iter().find(|(n, _)| n == "200").unwrap();
        let response = read(bytes(&read(ok), 1)[0]);
        let schema = read(bytes(&read(bytes(&response, 2)[0]), 1)[0]);
        assert_eq!(string(&schema, 1), "#/definitions/MXJob");
    }
}
