//! Generates the client from `openapi/mxjob.json` with progenitor.

use std::path::Path;

fn main() {
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/mxjob.json");
    println!("cargo:rerun-if-changed={}", spec_path.display());
    let text = std::fs::read_to_string(&spec_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", spec_path.display()));
    let mut document: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", spec_path.display()));
    only_json_bodies(&mut document);
    without_admission_rules(&mut document);
    let spec: openapiv3::OpenAPI = serde_json::from_value(document)
        .unwrap_or_else(|e| panic!("reading {} as OpenAPI: {e}", spec_path.display()));
    let mut settings = progenitor::GenerationSettings::default();
    settings
        .with_interface(progenitor::InterfaceStyle::Builder)
        .with_derive("PartialEq");
    let mut generator = progenitor::Generator::new(&settings);
    let tokens = generator
        .generate_tokens(&spec)
        .unwrap_or_else(|e| panic!("generating the client from {}: {e}", spec_path.display()));
    let file: syn::File = syn::parse2(tokens).expect("progenitor emitted invalid Rust");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("mxjob_client.rs");
    std::fs::write(&out, prettyplease::unparse(&file)).expect("writing the generated client");
}

/// Progenitor generates a method for one request media type per operation.
/// The patch operations also declare `application/apply-patch+yaml`
/// (server-side apply); the generated methods send `application/json`, and
/// `Client::apply_mxjob` (in `src/lib.rs`) sends applies.
fn only_json_bodies(document: &mut serde_json::Value) {
    let Some(paths) = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for item in paths
        .values_mut()
        .filter_map(serde_json::Value::as_object_mut)
    {
        for operation in item.values_mut() {
            if let Some(content) = operation
                .pointer_mut("/requestBody/content")
                .and_then(serde_json::Value::as_object_mut)
            {
                if content.len() > 1 {
                    content.retain(|media_type, _| media_type == "application/json");
                }
            }
        }
    }
}

/// The document states the rules of admission one field can state
/// (patterns and lengths of container names, required images, the fixed
/// `apiVersion` and `kind`, IntOrString as an int32 or a string, ...; see
/// `openapi/src/constraints.rs`), so that what is generated from it is what
/// the server accepts. The Rust client keeps plain types for those fields —
/// `String`, an optional image, a free IntOrString — and leaves the judging
/// to the server, which answers a `Status` naming every field it refuses:
/// typify would otherwise turn each rule into a newtype.
fn without_admission_rules(document: &mut serde_json::Value) {
    use serde_json::{json, Value};

    fn strip_bounds(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for key in ["pattern", "minLength", "maxLength", "minItems", "maxItems"] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip_bounds);
            }
            Value::Array(items) => items.iter_mut().for_each(strip_bounds),
            _ => {}
        }
    }
    fn schema<'a>(
        schemas: &'a mut Value,
        name: &str,
    ) -> Option<&'a mut serde_json::Map<String, Value>> {
        schemas.get_mut(name).and_then(Value::as_object_mut)
    }

    if let Some(paths) = document.get_mut("paths") {
        strip_bounds(paths);
    }
    let Some(schemas) = document.pointer_mut("/components/schemas") else {
        return;
    };
    strip_bounds(schemas);
    if let Some(properties) = schema(schemas, "MXJob").and_then(|s| s.get_mut("properties")) {
        for field in ["apiVersion", "kind"] {
            if let Some(field) = properties.get_mut(field).and_then(Value::as_object_mut) {
                field.remove("enum");
            }
        }
    }
    if let Some(container) = schema(schemas, "io.k8s.api.core.v1.Container") {
        container.insert("required".into(), json!(["name"]));
    }
    if let Some(template) = schema(schemas, "io.k8s.api.core.v1.PodTemplateSpec") {
        template.remove("required");
    }
    if let Some(int_or_string) = schema(schemas, "io.k8s.apimachinery.pkg.util.intstr.IntOrString")
    {
        int_or_string.remove("anyOf");
    }
    if let Some(properties) = schema(
        schemas,
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    )
    .and_then(|s| s.get_mut("properties"))
    {
        if let Some(policy) = properties
            .get_mut("propagationPolicy")
            .and_then(Value::as_object_mut)
        {
            policy.remove("enum");
        }
        if let Some(dry_run) = properties.get_mut("dryRun") {
            dry_run["items"] = json!({"type": "string"});
        }
    }
    if let Some(counts) = schema(schemas, "ReplicaStatus").and_then(|s| s.get_mut("properties")) {
        for count in ["active", "succeeded", "failed"] {
            if let Some(count) = counts.get_mut(count) {
                count["minimum"] = json!(i32::MIN);
            }
        }
    }
}
