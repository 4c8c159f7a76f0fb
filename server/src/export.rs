//! `starcast export-static`: the app as a static Hugging Face Space. Free
//! accounts can create static Spaces only, and there the page runs both
//! models itself, in a Web Worker.
//!
//! The folder is the server's own answers, asked in-process: the pages as
//! it renders them (hydrated by the same bundle), the answers of the
//! server functions the pages call (at their `GET` addresses), the list of
//! models a browser runs and their files (bundled, or fetched from their
//! Hub repos), the example photos, and the README front matter that makes
//! the Hub serve the folder as a static Space.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use candle_core::Device;
use starcast_api::{BrowserModel, Task};
use starcast_model::ServedModels;
use starcast_model::hub::{HubModel, local_model};
use tower::ServiceExt;

use crate::api::browser::catalogue;
use crate::router;
use crate::serve::ServeArgs;
use crate::state::AppState;

/// Tells the pages they are on a static Space: no server answers them.
const STATIC_MARKER: &str = r#"<meta name="starcast-site" content="static">"#;

/// The pages, and where each is written (a folder's `index.html`, which
/// static hosts serve at the folder's address).
const PAGES: [(&str, &str); 3] = [
    ("/", "index.html"),
    ("/horoscope", "horoscope/index.html"),
    ("/models", "models/index.html"),
];

/// The server functions' answers the pages read.
const SERVER_FUNCTIONS: [&str; 2] = ["/api/served_models", "/api/example_photos"];

const CATALOGUE: &str = "/api/browser/models";

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The folder to write the Space into; what it held is replaced.
    pub out: PathBuf,
    /// The page fetches the models named `hf://user/repo[@revision]` from
    /// their Hub repos (kept in the browser's cache) instead of carrying
    /// them in the Space; the Hub is `HF_ENDPOINT` when set.
    #[arg(long)]
    pub weights_from_hub: bool,
    /// The Space's title on the Hub.
    #[arg(long, default_value = "Starcast")]
    pub title: String,
    /// The models and the data folder, as `starcast serve` takes them.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Writes the static Space.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let device = Device::Cpu;
    let serve = args.serve.clone();
    let (models, _) = tokio::task::spawn_blocking(move || serve.models(&device)).await??;
    let records = args.serve.records().await?;
    let state = args
        .serve
        .state(ServedModels::from(models), records)
        .await?;
    let hub_models = if args.weights_from_hub {
        hub_snapshots(&args.serve)?
    } else {
        Vec::new()
    };
    let out = &args.out;
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("could not empty {}", out.display()))?;
    }
    fs::create_dir_all(out).with_context(|| format!("could not create {}", out.display()))?;
    copy_folder(&args.serve.site, out)
        .context("could not copy the built front end: run scripts/build.sh first")?;
    let examples = args.serve.data.join("examples");
    if examples.is_dir() {
        copy_folder(&examples, &out.join("examples"))?;
    }
    for (address, file) in PAGES {
        let page = String::from_utf8(get(&state, address).await?)?;
        let Some(head) = page.find("<head>") else {
            bail!("the page {address} has no <head>");
        };
        let at = head + "<head>".len();
        let page = format!("{}{STATIC_MARKER}{}", &page[..at], &page[at..]);
        write(out, file, page.as_bytes())?;
    }
    for address in SERVER_FUNCTIONS {
        write(out, &address[1..], &get(&state, address).await?)?;
    }
    let models = browser_models(&state, out, &hub_models)?;
    write(out, &CATALOGUE[1..], &serde_json::to_vec(&models)?)?;
    let hub_repos: Vec<String> = hub_models.iter().map(|(_, hub)| hub.repo.clone()).collect();
    write(
        out,
        "README.md",
        front_matter(&args.title, &models, &hub_repos).as_bytes(),
    )?;
    tracing::info!(folder = %out.display(), models = models.len(), "static Space written");
    Ok(())
}

/// The server's answer to `GET address`.
async fn get(state: &AppState, address: &str) -> anyhow::Result<Vec<u8>> {
    let request = Request::get(address).body(Body::empty())?;
    let response = router(state.clone()).oneshot(request).await?;
    if response.status() != StatusCode::OK {
        bail!("the server answered {address} with {}", response.status());
    }
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    Ok(body.to_vec())
}

fn write(out: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = out.join(name);
    if let Some(folder) = path.parent() {
        fs::create_dir_all(folder)?;
    }
    fs::write(&path, bytes).with_context(|| format!("could not write {}", path.display()))
}

fn copy_folder(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("could not read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_folder(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)
                .with_context(|| format!("could not copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The models named on the Hub, with the cache folder each was fetched to.
fn hub_snapshots(serve: &ServeArgs) -> anyhow::Result<Vec<(PathBuf, HubModel)>> {
    let named = serve.actors_model.iter().chain(&serve.horoscope_model);
    let mut found = Vec::new();
    for location in named {
        if let Some(hub) = location.to_str().and_then(HubModel::parse) {
            found.push((local_model(location)?, hub?));
        }
    }
    Ok(found)
}

/// The address of a Hub repo's files at its revision.
fn hub_base(hub: &HubModel) -> String {
    let endpoint = std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into());
    format!(
        "{}/{}/resolve/{}/",
        endpoint.trim_end_matches('/'),
        hub.repo,
        hub.revision
    )
}

/// The models a browser runs: each fetched from its Hub repo when it is
/// one of `hub_models`, else its files copied beside the pages, where the
/// server offers them.
fn browser_models(
    state: &AppState,
    out: &Path,
    hub_models: &[(PathBuf, HubModel)],
) -> anyhow::Result<Vec<BrowserModel>> {
    let mut models = Vec::new();
    for listed in catalogue(state) {
        let mut model = listed.model;
        match hub_models
            .iter()
            .find(|(folder, _)| *folder == listed.location)
        {
            Some((_, hub)) => model.base = hub_base(hub),
            None => {
                for file in &listed.files {
                    let target = out.join(&model.base[1..]).join(&file.name);
                    if let Some(folder) = target.parent() {
                        fs::create_dir_all(folder)?;
                    }
                    fs::copy(&file.path, &target)
                        .with_context(|| format!("could not copy {}", file.path.display()))?;
                }
            }
        }
        models.push(model);
    }
    Ok(models)
}

/// The README the Hub reads a Space's settings from; `hub_repos` are the
/// model repos the page fetches from.
fn front_matter(title: &str, models: &[BrowserModel], hub_repos: &[String]) -> String {
    let list = |items: &mut dyn Iterator<Item = &str>| -> String {
        items.map(|item| format!("  - {item}\n")).collect()
    };
    let mut tags: Vec<&str> = models
        .iter()
        .map(|m| match m.task {
            Task::Actors => "image-classification",
            Task::Horoscope => "text-generation",
        })
        .chain(["webassembly", "candle"])
        .collect();
    tags.dedup();
    let repos = if hub_repos.is_empty() {
        String::new()
    } else {
        format!(
            "models:\n{}",
            list(&mut hub_repos.iter().map(String::as_str))
        )
    };
    format!(
        "---\ntitle: {title}\nemoji: ✨\ncolorFrom: indigo\ncolorTo: yellow\nsdk: static\napp_file: index.html\nshort_description: Actor recognition and horoscopes, run in your browser\ntags:\n{}{repos}---\n\n# {title}\n\nRecognise actors in a photo and read a horoscope for your sign. Both models run in your browser, in WebAssembly: nothing you give them leaves your device. Made with Starcast: a candle model core in Rust and a Leptos front end.\n",
        list(&mut tags.into_iter())
    )
}
