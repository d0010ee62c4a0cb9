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
