//! The Models page: which model versions are served, where they came from
//! and how they scored.

use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use starcast_api::ModelInfo;
use web_sys::{FormData, SubmitEvent};

use crate::api::{self, client};

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
    view! {
        <Title text="Models" />
        <section class="intro">
            <h1>"Served models"</h1>
            <p>"The model versions answering on this server, their source and their evaluation metrics."</p>
        </section>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match models.await {
                    Err(e) => view! { <p class="error" role="alert">{format!("The model list could not be loaded: {e}")}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <section class="card" id="no-models">
                            <h2>"No model is loaded yet"</h2>
                            <p>"This server has no actor or horoscope model. Until one is loaded, recognition and generation answer that no model is loaded rather than guess."</p>
                        </section>
                    }.into_any(),
                    Ok(list) => view! {
                        <div class="model-list">{list.into_iter().map(|m| view! { <ModelCard model=m /> }).collect::<Vec<_>>()}</div>
                    }.into_any(),
                }
            })}
        </Suspense>
        <AdminUpload models />
    }
}

/// The most labels a card lists; an ImageNet model has a thousand.
const SHOWN_LABELS: usize = 20;

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
            state.set(UploadState::Failed("Choose a weights file first.".into()));
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
                    UploadState::Served(format!(
                        "Now serving {} ({}, {} labels).",
                        info.version,
                        info.architecture,
                        info.labels.len()
                    ))
                }
                Err(failure) => UploadState::Failed(failure.0),
            });
        });
    };
    view! {
        <details class="card admin">
            <summary>"Upload an actor model (admin)"</summary>
            <p class="muted">
                "A model.pth as torch.save wrote it (state_dict, checkpoint or whole model), or safetensors. "
                "It is served from the next request on; a file that can't be served is refused and the current model stays."
            </p>
            <form class="admin-form" on:submit=submit>
                <label>"Admin token"<input type="password" id="admin-token" autocomplete="off" bind:value=token required /></label>
                <label>"Weights"<input type="file" id="admin-weights" accept=".pth,.pt,.bin,.safetensors" node_ref=weights required /></label>
                <label>"Labels, in class order (one per line or comma-separated)"
                    <textarea id="admin-labels" rows="3" placeholder="Keanu Reeves, Scarlett Johansson, Tom Hanks" bind:value=labels></textarea>
                </label>
                <label>"Architecture"
                    <select id="admin-architecture" on:change=move |ev| architecture.set(event_target_value(&ev))>
                        <option value="" selected>"read it from the weights"</option>
                        {ARCHITECTURES.map(|a| view! { <option value=a>{a}</option> })}
                    </select>
                </label>
                <button type="submit" disabled=move || state.get() == UploadState::Sending>
                    {move || if state.get() == UploadState::Sending { "Uploading…" } else { "Upload and serve" }}
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
                <dt>"Task"</dt><dd>{model.task.describe()}</dd>
                <dt>"Architecture"</dt><dd>{model.architecture.clone()}</dd>
                <dt>"Source"</dt><dd>{model.source.clone()}</dd>
                {labels.map(|l| view! { <dt>"Labels"</dt><dd>{l}</dd> })}
            </dl>
            {(!model.metrics.is_empty()).then(|| view! {
                <table class="metrics">
                    <caption>"Evaluation"</caption>
                    <tbody>
                        {model.metrics.iter().map(|(k, v)| view! { <tr><th scope="row">{k.clone()}</th><td>{format!("{v:.4}")}</td></tr> }).collect::<Vec<_>>()}
                    </tbody>
                </table>
            })}
        </article>
    }
}
