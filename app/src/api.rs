//! How the pages reach the server: server functions for what the server
//! renders too (the model list, the example photos), and the REST API for
//! uploads and streams, the same API scripts use.

use leptos::prelude::*;
use starcast_api::{ApiReference, ExamplePhoto, ModelInfo};

/// What the server functions read from the server, which provides it as
/// context: the app knows the answers' types, not how they are made.
#[cfg(feature = "ssr")]
pub mod ssr {
    use std::sync::Arc;

    use starcast_api::{ApiEndpoint, ModelInfo};

    /// The server's side of the pages' server functions.
    pub trait Catalogue: Send + Sync + 'static {
        /// The models served now.
        fn served_models(&self) -> Vec<ModelInfo>;
        /// The file names of the examples gallery. Reads a folder: call it
        /// off the async threads.
        fn example_photos(&self) -> std::io::Result<Vec<String>>;
        /// The REST API's endpoints, for the API page.
        fn api_endpoints(&self) -> Vec<ApiEndpoint>;
    }

    /// The context the server provides.
    pub type SharedCatalogue = Arc<dyn Catalogue>;

    pub(super) fn catalogue() -> Result<SharedCatalogue, leptos::prelude::ServerFnError> {
        leptos::prelude::use_context::<SharedCatalogue>().ok_or_else(|| {
            leptos::prelude::ServerFnError::new("the server was started without its catalogue")
        })
    }
}

/// The models the server is serving now.
// Endpoints named here rather than hashed from the source's location: the
// hashed ones differed between a bundle and a server built from two
// checkouts of the same code, and every call then answered 404. Asked with
// GET, so that a static Space answers them with files of those names.
#[server(endpoint = "served_models", input = server_fn::codec::GetUrl)]
pub async fn served_models() -> Result<Vec<ModelInfo>, ServerFnError> {
    Ok(ssr::catalogue()?.served_models())
}

/// The REST API's endpoints and the address the visitor reached this
/// server at (behind a proxy, as its `X-Forwarded-Proto` says), which the
/// API page's snippets call.
#[server(endpoint = "api_reference", input = server_fn::codec::GetUrl)]
pub async fn describe_api() -> Result<ApiReference, ServerFnError> {
    let headers: http::HeaderMap = leptos_axum::extract().await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header("host").unwrap_or("127.0.0.1:7860");
    let scheme = header("x-forwarded-proto").unwrap_or("http");
    Ok(ApiReference {
        origin: format!("{scheme}://{host}"),
        endpoints: ssr::catalogue()?.api_endpoints(),
    })
}

/// The photos of the examples gallery.
#[server(endpoint = "example_photos", input = server_fn::codec::GetUrl)]
pub async fn example_photos() -> Result<Vec<ExamplePhoto>, ServerFnError> {
    let catalogue = ssr::catalogue()?;
    let names = tokio::task::spawn_blocking(move || catalogue.example_photos())
        .await
        .map_err(ServerFnError::new)?
        .map_err(ServerFnError::new)?;
    Ok(names
        .into_iter()
        .map(|name| ExamplePhoto {
            url: format!("/examples/{name}"),
            name,
        })
        .collect())
}

/// Browser-side calls to the REST API.
pub mod client {
    use serde::de::DeserializeOwned;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{Blob, FormData, Headers, RequestInit, Response};

    use starcast_api::{ActorReport, ErrorBody, FlagReceipt, ModelInfo, Monitoring, PipelineRun};

    /// Why a call failed, in a sentence for the page.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Failure(pub String);

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    fn unreachable_server(_: JsValue) -> Failure {
        Failure("The server could not be reached: check your connection and try again.".into())
    }

    async fn fetch(url: &str, init: &RequestInit) -> Result<Response, Failure> {
        let window = web_sys::window().ok_or_else(|| Failure("No browser window.".into()))?;
        let response = JsFuture::from(window.fetch_with_str_and_init(url, init))
            .await
            .map_err(unreachable_server)?;
        response.dyn_into().map_err(unreachable_server)
    }

    async fn text(response: &Response) -> Result<String, Failure> {
        let promise = response.text().map_err(unreachable_server)?;
        let text = JsFuture::from(promise).await.map_err(unreachable_server)?;
        Ok(text.as_string().unwrap_or_default())
    }

    /// Reads a JSON answer, or the API's error sentence.
    async fn json<T: DeserializeOwned>(response: Response) -> Result<T, Failure> {
        let status = response.status();
        let body = text(&response).await?;
        if response.ok() {
            return serde_json::from_str(&body)
                .map_err(|e| Failure(format!("The server's answer could not be read: {e}.")));
        }
        Err(match serde_json::from_str::<ErrorBody>(&body) {
            Ok(error) => Failure(error.error),
            Err(_) => Failure(format!(
                "The server answered with status {status}: try again."
            )),
        })
    }

    async fn post_form(url: &str, form: &FormData) -> Result<Response, Failure> {
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_body(form);
        fetch(url, &init).await
    }

    /// `POST /api/actors/predict`.
    pub async fn predict_actors(photo: &Blob, file_name: &str) -> Result<ActorReport, Failure> {
        let form = FormData::new().map_err(unreachable_server)?;
        form.append_with_blob_and_filename("image", photo, file_name)
            .map_err(unreachable_server)?;
        json(post_form("/api/actors/predict", &form).await?).await
    }

    /// `Authorization: Bearer <token>`.
    fn admin_headers(token: &str) -> Result<Headers, Failure> {
        let headers = Headers::new().map_err(unreachable_server)?;
        headers
            .set("Authorization", &format!("Bearer {}", token.trim()))
            .map_err(|_| {
                Failure("The token can't be sent: it has characters a header can't carry.".into())
            })?;
        Ok(headers)
    }

    /// `POST /api/admin/actors/model` with the admin's token.
    pub async fn upload_actors_model(form: &FormData, token: &str) -> Result<ModelInfo, Failure> {
        let headers = admin_headers(token)?;
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body(form);
        json(fetch("/api/admin/actors/model", &init).await?).await
    }

    /// A `GET` answered with JSON.
    pub async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, Failure> {
        json(fetch(url, &RequestInit::new()).await?).await
    }

    /// `GET /api/pipeline/runs`.
    pub async fn pipeline_runs() -> Result<Vec<PipelineRun>, Failure> {
        get_json("/api/pipeline/runs").await
    }

    /// `GET /api/monitoring`.
    pub async fn monitoring() -> Result<Monitoring, Failure> {
        get_json("/api/monitoring").await
    }

    /// `POST /api/admin/pipeline/runs` with the admin's token.
    pub async fn start_pipeline_run(token: &str) -> Result<PipelineRun, Failure> {
        let headers = admin_headers(token)?;
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        json(fetch("/api/admin/pipeline/runs", &init).await?).await
    }

    /// `POST /api/flags`.
    pub async fn flag(form: &FormData) -> Result<FlagReceipt, Failure> {
        json(post_form("/api/flags", form).await?).await
    }

    /// The error sentence behind a URL that failed as an event stream.
    pub async fn error_at(url: &str) -> Failure {
        match fetch(url, &RequestInit::new()).await {
            Ok(response) => match json::<serde_json::Value>(response).await {
                Err(failure) => failure,
                Ok(_) => Failure("The stream was interrupted: try again.".into()),
            },
            Err(failure) => failure,
        }
    }

    /// Downloads a file (an example photo) as a blob.
    pub async fn blob(url: &str) -> Result<Blob, Failure> {
        let response = fetch(url, &RequestInit::new()).await?;
        if !response.ok() {
            return Err(Failure(format!(
                "The example could not be loaded (status {}).",
                response.status()
            )));
        }
        let promise = response.blob().map_err(unreachable_server)?;
        let blob = JsFuture::from(promise).await.map_err(unreachable_server)?;
        blob.dyn_into().map_err(unreachable_server)
    }
}
