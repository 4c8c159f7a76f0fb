//! The Models page: which model versions are served, where they came from
//! and how they scored.

use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use starcast_api::{ModelInfo, ModelKind};
use web_sys::{FormData, SubmitEvent};

use crate::api::{self, client};
use crate::i18n::{locale, t, text_in, text_with};
use crate::in_browser::{self, in_browser};

/// The architectures an upload may name; empty lets the server read it
/// from the tensor names.
const ARCHITECTURES: [&str; 7] = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "mobilenet_v2",
    "efficientnet_b0",
];

#[component]
pub fn ModelsPage() -> impl IntoView {
    let models = Resource::new(|| (), |_| api::served_models());
    let has_server = in_browser().has_server;
    view! {
        <Title text=t("models-title") />
        <section class="intro">
            <h1>{t("models-heading")}</h1>
            <p>{t("models-intro")}</p>
        </section>
        <Suspense fallback=|| view! { <p class="muted">{t("loading")}</p> }>
            {move || Suspend::new(async move {
                match models.await {
                    Err(e) => view! { <p class="error" role="alert">{move || text_with(locale().get(), "models-unavailable", &[("reason", e.to_string().into())])}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <section class="card" id="no-models">
                            <h2>{t("models-none")}</h2>
                            <p>{t("models-none-why")}</p>
                        </section>
                    }.into_any(),
                    Ok(list) => view! {
                        <div class="model-list">{list.into_iter().map(|m| view! { <ModelCard model=m /> }).collect::<Vec<_>>()}</div>
                    }.into_any(),
                }
            })}
        </Suspense>
        <InBrowserModels />
        <OwnModel />
        {move || has_server.get().then(|| view! { <AdminUpload models /> }.into_any())}
    }
}

/// A student's own actor model, picked from their files and run in this
/// browser only.
#[component]
fn OwnModel() -> impl IntoView {
    let state = in_browser();
    let files: NodeRef<html::Input> = NodeRef::new();
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let load = move |ev: SubmitEvent| {
        ev.prevent_default();
        let picked: Vec<web_sys::File> = files
            .get()
            .and_then(|input| input.files())
            .map(|list| (0..list.length()).filter_map(|i| list.get(i)).collect())
            .unwrap_or_default();
        spawn_local(async move {
            outcome.set(Some(
                match in_browser::use_own_actors(state, picked).await {
                    Ok(info) => Ok(text_with(
                        locale().get_untracked(),
                        "own-model-loaded",
                        &[
                            ("name", info.name.into()),
                            ("labels", info.labels.len().into()),
                        ],
                    )),
                    Err(failure) => Err(failure.0),
                },
            ));
        });
    };
    move || {
        state.supported.get().then(|| {
            view! {
                <details class="card own-model">
                    <summary>{t("own-model-title")}</summary>
                    <p class="muted">{t("own-model-help")}</p>
                    <form on:submit=load>
                        <label>{t("own-model-files")}
                            <input type="file" id="own-model-files" multiple accept=".pth,.pt,.bin,.safetensors,.json,.txt" node_ref=files required />
                        </label>
                        <button type="submit">{t("own-model-load")}</button>
                    </form>
                    {move || outcome.get().map(|o| match o {
                        Ok(message) => view! { <p class="notice" role="status" id="own-model-loaded">{message}</p> }.into_any(),
                        Err(message) => view! { <p class="error" role="alert">{message}</p> }.into_any(),
                    })}
                </details>
            }
            .into_any()
        })
    }
}

/// What the page has loaded into this browser, as the models say of
/// themselves once loaded.
#[component]
fn InBrowserModels() -> impl IntoView {
    let loaded = in_browser().loaded;
    move || {
        let list = loaded.get();
        (!list.is_empty()).then(|| {
            view! {
                <h2 id="models-in-browser">{t("models-in-browser")}</h2>
                <div class="model-list">{list.into_iter().map(|m| view! { <ModelCard model=m /> }).collect::<Vec<_>>()}</div>
            }
            .into_any()
        })
    }
}

/// The most labels a card lists; an ImageNet model has a thousand.
const SHOWN_LABELS: usize = 20;

/// The key of a task's words.
fn task_key(task: ModelKind) -> &'static str {
    match task {
        ModelKind::ImageClassification => "task-classifier",
        ModelKind::FaceEmbedding => "task-gallery",
        ModelKind::TextGeneration => "task-horoscope",
    }
}

fn labels_summary(labels: &[String]) -> Option<String> {
    if labels.is_empty() {
        return None;
    }
    let shown = labels[..labels.len().min(SHOWN_LABELS)].join(", ");
    Some(match labels.len().checked_sub(SHOWN_LABELS) {
        Some(more) if more > 0 => format!("{shown} and {more} more ({} in all)", labels.len()),
        _ => shown,
    })
}

#[derive(Clone, Debug, PartialEq)]
enum UploadState {
    Idle,
    Sending,
    Served(String),
    Failed(String),
}

/// An admin's form to serve a new actor classifier at once: the weights
/// file, its labels and, if needed, its architecture. The server checks
/// the token and keeps the served model when the file can't be served.
#[component]
fn AdminUpload(models: Resource<Result<Vec<ModelInfo>, ServerFnError>>) -> impl IntoView {
    let token = RwSignal::new(String::new());
    let labels = RwSignal::new(String::new());
    let architecture = RwSignal::new(String::new());
    let weights: NodeRef<html::Input> = NodeRef::new();
    let state = RwSignal::new(UploadState::Idle);
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let file = weights
            .get()
            .and_then(|input| input.files())
            .and_then(|files| files.get(0));
        let Some(file) = file else {
            state.set(UploadState::Failed(text_in(
                locale().get_untracked(),
                "upload-no-file",
            )));
            return;
        };
        let Ok(form) = FormData::new() else { return };
        let _ = form.append_with_blob_and_filename("weights", &file, &file.name());
        let _ = form.append_with_str("labels", &labels.get_untracked());
        let _ = form.append_with_str("architecture", &architecture.get_untracked());
        let token = token.get_untracked();
        state.set(UploadState::Sending);
        spawn_local(async move {
            state.set(match client::upload_actors_model(&form, &token).await {
                Ok(info) => {
                    models.refetch();
                    UploadState::Served(text_with(
                        locale().get_untracked(),
                        "upload-served",
                        &[
                            ("version", info.version.clone().into()),
                            ("architecture", info.architecture.clone().into()),
                            ("labels", info.labels.len().into()),
                        ],
                    ))
                }
                Err(failure) => UploadState::Failed(failure.0),
            });
        });
    };
    view! {
        <details class="card admin">
            <summary>{t("upload-title")}</summary>
            <p class="muted">{t("upload-help")}</p>
            <form class="admin-form" on:submit=submit>
                <label>{t("admin-token")}<input type="password" id="admin-token" autocomplete="off" bind:value=token required /></label>
                <label>{t("upload-weights")}<input type="file" id="admin-weights" accept=".pth,.pt,.bin,.safetensors" node_ref=weights required /></label>
                <label>{t("upload-labels")}
                    <textarea id="admin-labels" rows="3" placeholder="Keanu Reeves, Scarlett Johansson, Tom Hanks" bind:value=labels></textarea>
                </label>
                <label>{t("model-architecture")}
                    <select id="admin-architecture" on:change=move |ev| architecture.set(event_target_value(&ev))>
                        <option value="" selected>{t("upload-architecture-read")}</option>
                        {ARCHITECTURES.map(|a| view! { <option value=a>{a}</option> })}
                    </select>
                </label>
                <button type="submit" disabled=move || state.get() == UploadState::Sending>
                    {move || text_in(locale().get(), if state.get() == UploadState::Sending { "upload-sending" } else { "upload-send" })}
                </button>
            </form>
            {move || match state.get() {
                UploadState::Idle | UploadState::Sending => None,
                UploadState::Served(message) => Some(view! { <p class="notice" role="status">{message}</p> }.into_any()),
                UploadState::Failed(message) => Some(view! { <p class="error" role="alert">{message}</p> }.into_any()),
            }}
        </details>
    }
}

#[component]
fn ModelCard(model: ModelInfo) -> impl IntoView {
    let labels = labels_summary(&model.labels);
    view! {
        <article class="card model">
            <h2>{model.name.clone()}" "<span class="version">{model.version.clone()}</span></h2>
            <dl>
                <dt>{t("model-task")}</dt><dd>{t(task_key(model.task))}</dd>
                <dt>{t("model-architecture")}</dt><dd>{model.architecture.clone()}</dd>
                <dt>{t("model-source")}</dt><dd>{model.source.clone()}</dd>
                {model.language.map(|l| view! { <dt>{t("model-language")}</dt><dd>{l.native_name()}</dd> })}
                {labels.map(|l| view! { <dt>{t("model-labels")}</dt><dd>{l}</dd> })}
            </dl>
            {(!model.metrics.is_empty()).then(|| view! {
                <table class="metrics">
                    <caption>{t("model-evaluation")}</caption>
                    <tbody>
                        {model.metrics.iter().map(|(k, v)| view! { <tr><th scope="row">{k.clone()}</th><td>{format!("{v:.4}")}</td></tr> }).collect::<Vec<_>>()}
                    </tbody>
                </table>
            })}
        </article>
    }
}
