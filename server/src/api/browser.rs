//! The served models' files, for the pages' "Run in my browser": the
//! browser fetches a model's folder and runs it in WebAssembly with the
//! same loaders the server used.

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, Request, State};
use axum::response::{IntoResponse, Response};
use axum::{Json, http::StatusCode};
use sha2::{Digest, Sha256};
use starcast_api::{BrowserFile, BrowserModel, Language, ModelInfo, Task};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::error::ApiError;
use crate::state::AppState;

/// The most files a model may have to be offered to browsers: a face
/// gallery's photos are a few dozen; a folder of thousands is not a model.
const MAX_FILES: usize = 1000;

/// A served model, where its files are.
struct Offered {
    task: Task,
    language: Option<Language>,
    info: ModelInfo,
    location: PathBuf,
}

fn offered(state: &AppState) -> Vec<Offered> {
    let actors = state.models.actors().and_then(|model| {
        Some(Offered {
            task: Task::Actors,
            language: None,
            info: model.info().clone(),
            location: model.location()?.to_path_buf(),
        })
    });
    let horoscopes = state
        .models
        .horoscope_languages()
        .into_iter()
        .filter_map(|language| {
            let model = state.models.horoscope(language)?;
            Some(Offered {
                task: Task::Horoscope,
                language: Some(language),
                info: model.info().clone(),
                location: model.location()?.to_path_buf(),
            })
        });
    actors.into_iter().chain(horoscopes).collect()
}

/// A file of a served model.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub struct ModelFile {
    /// Its name in the model's folder, `/`-separated.
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
}

/// A served model as browsers are offered it, with where it is on disk.
pub struct Listed {
    pub model: BrowserModel,
    /// The model's folder, or its one weights file.
    pub location: PathBuf,
    pub files: Vec<ModelFile>,
}

/// A model's files. A single weights file is offered as
/// `model.<extension>`, the name a folder's loader looks for.
fn files(location: &Path) -> std::io::Result<Vec<ModelFile>> {
    if location.is_file() {
        let extension = location
            .extension()
            .map_or_else(String::new, |e| e.to_string_lossy().into_owned());
        let size = location.metadata()?.len();
        return Ok(vec![ModelFile {
            name: format!("model.{extension}"),
            path: location.to_path_buf(),
            size,
        }]);
    }
    let mut found = Vec::new();
    let mut folders = vec![location.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let path = entry.path();
            let Some(name) = path
                .strip_prefix(location)
                .ok()
                .and_then(|relative| relative.to_str())
                .map(|relative| relative.replace(std::path::MAIN_SEPARATOR, "/"))
            else {
                continue;
            };
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            // Followed links: a Hub download's files link into its blobs.
            let metadata = std::fs::metadata(&path)?;
            if metadata.is_dir() {
                folders.push(path);
            } else if metadata.is_file() {
                let size = metadata.len();
                found.push(ModelFile { name, path, size });
            }
            if found.len() > MAX_FILES {
                return Err(std::io::Error::other(format!(
                    "the model folder holds over {MAX_FILES} files"
                )));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Names the files' current contents, so a browser's cached copy of an
/// older model is never mixed with a newer one.
fn fingerprint(info: &ModelInfo, files: &[ModelFile]) -> String {
    let mut hash = Sha256::new();
    hash.update(info.version.as_bytes());
    for ModelFile { name, path, size } in files {
        let modified = path
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        hash.update(format!("{name}\0{size}\0{modified}\0").as_bytes());
    }
    hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn key(task: Task, language: Option<Language>) -> String {
    match language {
        Some(language) => format!("{task}-{}", language.code()),
        None => task.to_string(),
    }
}

/// The served models a browser can run, each with its files.
pub fn catalogue(state: &AppState) -> Vec<Listed> {
    offered(state)
        .into_iter()
        .filter_map(|model| {
            let files = files(&model.location)
                .inspect_err(|error| {
                    tracing::warn!(path = %model.location.display(), %error, "a served model can't be offered to browsers");
                })
                .ok()
                .filter(|files| !files.is_empty())?;
            let base = format!(
                "/api/browser/files/{}/{}/",
                key(model.task, model.language),
                fingerprint(&model.info, &files)
            );
            let listed = BrowserModel {
                task: model.task,
                language: model.language,
                source: model.info.source.clone(),
                base,
                files: files
                    .iter()
                    .map(|file| BrowserFile {
                        name: file.name.clone(),
                        size: file.size,
                    })
                    .collect(),
            };
            Some(Listed {
                model: listed,
                location: model.location,
                files,
            })
        })
        .collect()
}

/// `GET /api/browser/models`: the served models a browser can fetch and run.
#[utoipa::path(
    get,
    path = "/api/browser/models",
    tag = "models",
    responses((status = 200, description = "The served models, each with the files a browser fetches to run it", body = Vec<BrowserModel>))
)]
pub async fn models(State(state): State<AppState>) -> Result<Json<Vec<BrowserModel>>, ApiError> {
    let listed = tokio::task::spawn_blocking(move || catalogue(&state)).await?;
    Ok(Json(
        listed.into_iter().map(|listed| listed.model).collect(),
    ))
}

/// `GET /api/browser/files/{key}/{fingerprint}/{name}`: one file of a
/// served model, as long as it is still the one served.
pub async fn file(
    State(state): State<AppState>,
    UrlPath((key, fingerprint, name)): UrlPath<(String, String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let listed = tokio::task::spawn_blocking(move || catalogue(&state)).await?;
    let base = format!("/api/browser/files/{key}/{fingerprint}/");
    let path = listed
        .into_iter()
        .find(|listed| listed.model.base == base)
        .and_then(|listed| listed.files.into_iter().find(|file| file.name == name))
        .map(|file| file.path)
        .ok_or(ApiError::NoSuchModelFile)?;
    let Ok(response) = ServeFile::new(path).oneshot(request).await;
    // The address names the contents: a browser may keep it for good.
    let mut response = response.into_response();
    if response.status() == StatusCode::OK {
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    Ok(response)
}
