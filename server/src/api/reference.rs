//! The API page's content, read from the OpenAPI document: each endpoint
//! with its inputs (query parameters, JSON fields, form fields and files),
//! an example value for each where the document has one, and its answers.

use std::sync::LazyLock;

use serde_json::Value;
use starcast_api::{ApiEndpoint, ApiInput, InputPlace};
use utoipa::OpenApi;

use super::ApiDoc;

/// The endpoints, read once: the document does not change while serving.
pub static ENDPOINTS: LazyLock<Vec<ApiEndpoint>> = LazyLock::new(|| {
    let doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    endpoints(&doc)
});

/// Every operation of `doc` (OpenAPI 3 as JSON), in the document's order
/// of paths.
pub fn endpoints(doc: &Value) -> Vec<ApiEndpoint> {
    let Some(paths) = doc["paths"].as_object() else {
        return Vec::new();
    };
    paths
        .iter()
        .flat_map(|(path, item)| {
            ["get", "post"].into_iter().filter_map(move |method| {
                let operation = item.get(method)?;
                Some(endpoint(doc, method, path, operation))
            })
        })
        .collect()
}

fn endpoint(doc: &Value, method: &str, path: &str, operation: &Value) -> ApiEndpoint {
    let text = |key: &str| operation[key].as_str().unwrap_or_default().to_string();
    let mut inputs: Vec<ApiInput> = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .map(|p| ApiInput {
            name: p["name"].as_str().unwrap_or_default().to_string(),
            place: InputPlace::Query,
            required: p["required"] == true,
            description: p["description"].as_str().unwrap_or_default().to_string(),
            example: example(&p["example"]).or_else(|| example(&p["schema"]["example"])),
        })
        .collect();
    if let Some(content) = operation["requestBody"]["content"].as_object() {
        for (media, body) in content {
            let form = media == "multipart/form-data";
            inputs.extend(fields(doc, &body["schema"], form));
        }
    }
    let responses = operation["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(status, answer)| {
            let description = answer["description"].as_str().unwrap_or_default();
            Some((status.parse().ok()?, description.to_string()))
        })
        .collect();
    let streams = operation["responses"]["200"]["content"]
        .get("text/event-stream")
        .is_some();
    ApiEndpoint {
        method: method.to_uppercase(),
        path: path.to_string(),
        summary: text("summary"),
        description: text("description"),
        admin: operation["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        streams,
        inputs,
        responses,
    }
}

/// The properties of a body's schema (followed through a `$ref`).
fn fields(doc: &Value, schema: &Value, form: bool) -> Vec<ApiInput> {
    let schema = resolve(doc, schema);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, property)| {
            let property = resolve(doc, property);
            let place = match (form, property["format"].as_str()) {
                (true, Some("binary")) => InputPlace::FormFile,
                (true, _) => InputPlace::FormText,
                (false, _) => InputPlace::Json,
            };
            ApiInput {
                name: name.clone(),
                place,
                required: required.contains(&name.as_str()),
                description: property["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                example: example(&property["example"])
                    .or_else(|| example(&property["examples"][0])),
            }
        })
        .collect()
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or(&Value::Null),
        None => schema,
    }
}

/// An example as the snippets write it: strings as they are, anything
/// else as JSON.
fn example(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint<'a>(method: &str, path: &str) -> &'a ApiEndpoint {
        ENDPOINTS
            .iter()
            .find(|e| e.method == method && e.path == path)
            .unwrap_or_else(|| panic!("{method} {path} is not listed"))
    }

    fn input<'a>(endpoint: &'a ApiEndpoint, name: &str) -> &'a ApiInput {
        endpoint
            .inputs
            .iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("{} has no input {name}", endpoint.path))
    }

    #[test]
    fn the_photo_form_is_a_file_field() {
        let predict = endpoint("POST", "/api/actors/predict");
        let image = input(predict, "image");
        assert_eq!(image.place, InputPlace::FormFile);
        assert!(image.required);
        assert!(!predict.admin && !predict.streams);
        assert!(predict.responses.iter().any(|(status, _)| *status == 415));
    }

    #[test]
    fn a_json_body_lists_its_fields_with_examples() {
        let write = endpoint("POST", "/api/horoscope");
        let sign = input(write, "sign");
        assert_eq!(sign.place, InputPlace::Json);
        assert!(sign.required);
        assert_eq!(sign.example.as_deref(), Some("leo"));
        assert!(!input(write, "lang").required);
    }

    #[test]
    fn streams_and_admin_routes_are_marked() {
        let stream = endpoint("GET", "/api/horoscope/stream");
        assert!(stream.streams);
        assert_eq!(input(stream, "sign").place, InputPlace::Query);
        let upload = endpoint("POST", "/api/admin/actors/model");
        assert!(upload.admin);
        assert_eq!(input(upload, "weights").place, InputPlace::FormFile);
        assert_eq!(input(upload, "labels").place, InputPlace::FormText);
    }
}
