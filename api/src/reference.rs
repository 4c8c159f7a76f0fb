//! The REST API described for people: what the API page lists, read by
//! the server from its OpenAPI document.

use serde::{Deserialize, Serialize};

/// Where a request carries one of its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputPlace {
    /// In the query string.
    Query,
    /// A field of a JSON body.
    Json,
    /// A text field of a multipart form.
    FormText,
    /// A file of a multipart form.
    FormFile,
}

/// One input of an endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiInput {
    pub name: String,
    pub place: InputPlace,
    pub required: bool,
    pub description: String,
    /// A value that works, as the snippets send it (a file name for files).
    pub example: Option<String>,
}

/// One endpoint of the REST API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiEndpoint {
    /// `GET` or `POST`.
    pub method: String,
    pub path: String,
    pub summary: String,
    pub description: String,
    /// Whether it needs the admin token.
    pub admin: bool,
    /// Whether it answers with an event stream.
    pub streams: bool,
    pub inputs: Vec<ApiInput>,
    /// Each documented status with what it means.
    pub responses: Vec<(u16, String)>,
}

/// The API page's content: the server's own address (as the visitor
/// reached it) and its endpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiReference {
    pub origin: String,
    pub endpoints: Vec<ApiEndpoint>,
}
