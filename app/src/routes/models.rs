//! The Models page: which model versions are served, where they came from
//! and how they scored.

use leptos::prelude::*;
use leptos_meta::Title;
use starcast_model::ModelInfo;

use crate::api;

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
    }
}

#[component]
fn ModelCard(model: ModelInfo) -> impl IntoView {
    let labels = (!model.labels.is_empty()).then(|| model.labels.join(", "));
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
