//! The Actors page: upload a photo (drop, pick or paste), see who is in it.

use leptos::ev;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use starcast_api::{ActorReport, ExamplePhoto, ModelKind, Prediction, Task};
use web_sys::{Blob, DragEvent, HtmlInputElement, Url};

use crate::api::{self, client};
use crate::browser::{BrowserSlot, browser_slot, fill};
use crate::components::flag::FlagButton;
use crate::components::model_notice::ModelNotice;
use crate::components::run_where::RunWhere;
use crate::i18n::{locale, t, text_with};
use crate::in_browser::{self, in_browser};

/// How many labels a result shows.
const SHOWN_LABELS: usize = 5;

#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Idle,
    Working,
    Done(ActorReport),
    Failed(String),
}

/// The photo being recognised: where the page shows it from, and its name.
#[derive(Clone, Debug, PartialEq)]
struct Preview {
    url: String,
    name: String,
}

#[component]
pub fn ActorsPage() -> impl IntoView {
    let outcome = RwSignal::new(Outcome::Idle);
    let preview = RwSignal::new(None::<Preview>);
    let photo = browser_slot::<Blob>();
    let dragging = RwSignal::new(false);
    let runner = in_browser();

    let recognise = move |blob: Blob, name: String| {
        if let Some(old) = preview.get_untracked() {
            let _ = Url::revoke_object_url(&old.url);
        }
        preview.set(
            Url::create_object_url_with_blob(&blob)
                .ok()
                .map(|url| Preview {
                    url,
                    name: name.clone(),
                }),
        );
        fill(photo, Some(blob.clone()));
        outcome.set(Outcome::Working);
        spawn_local(async move {
            runner.fell_back.set(None);
            let answer = match runner.chosen.get_untracked() {
                true => match in_browser::recognize(runner, &blob).await {
                    // A browser that can't run the model (out of memory,
                    // say) is answered by the server where there is one.
                    Err(failure) if runner.has_server.get_untracked() => {
                        runner.fell_back.set(Some(failure.0));
                        client::predict_actors(&blob, &name).await
                    }
                    answer => answer,
                },
                false => client::predict_actors(&blob, &name).await,
            };
            outcome.set(match answer {
                Ok(report) => Outcome::Done(report),
                Err(failure) => Outcome::Failed(failure.0),
            });
        });
    };

    let paste = window_event_listener(ev::paste, move |ev| {
        let file = ev
            .clipboard_data()
            .and_then(|d| d.files())
            .and_then(|f| f.get(0));
        if let Some(file) = file {
            ev.prevent_default();
            let name = file.name();
            recognise(file.into(), name);
        }
    });
    on_cleanup(move || paste.remove());

    let on_pick = move |ev: ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        if let Some(file) = input.files().and_then(|f| f.get(0)) {
            let name = file.name();
            recognise(file.into(), name);
        }
        input.set_value("");
    };
    let on_drop = move |ev: DragEvent| {
        ev.prevent_default();
        dragging.set(false);
        let file = ev
            .data_transfer()
            .and_then(|d| d.files())
            .and_then(|f| f.get(0));
        if let Some(file) = file {
            let name = file.name();
            recognise(file.into(), name);
        }
    };
    let try_example = move |example: ExamplePhoto| {
        outcome.set(Outcome::Working);
        spawn_local(async move {
            match client::blob(&example.url).await {
                Ok(blob) => recognise(blob, example.name),
                Err(failure) => outcome.set(Outcome::Failed(failure.0)),
            }
        });
    };

    view! {
        <Title text=t("actors-title") />
        <section class="intro">
            <h1>{t("actors-heading")}</h1>
            <p>{t("actors-intro")}</p>
        </section>
        <div class="workbench">
            <section class="card">
                <label
                    class="dropzone"
                    class:dragging=move || dragging.get()
                    on:dragover=move |ev: DragEvent| {
                        ev.prevent_default();
                        dragging.set(true);
                    }
                    on:dragleave=move |_| dragging.set(false)
                    on:drop=on_drop
                >
                    <input id="photo-input" type="file" accept="image/*" on:change=on_pick />
                    {move || match preview.get() {
                        Some(p) => view! {
                            <span class="preview">
                                <img src=p.url alt=text_with(locale().get_untracked(), "actors-uploaded", &[("name", p.name.clone().into())]) />
                                <FaceBoxes outcome />
                            </span>
                        }.into_any(),
                        None => view! {
                            <span class="drop-hint">
                                <strong>{t("actors-drop")}</strong>
                                " " {t("actors-drop-more")}
                            </span>
                        }.into_any(),
                    }}
                </label>
                // On a phone this opens the camera (Gradio's webcam source);
                // elsewhere it is one more way to pick a file.
                <label class="camera" for="camera-input">
                    <input id="camera-input" type="file" accept="image/*" capture="environment" on:change=on_pick />
                    {t("actors-camera")}
                </label>
                <Examples try_example />
                <RunWhere />
            </section>
            <section class="card result" aria-live="polite">
                <h2>{t("actors-result")}</h2>
                <ModelNotice tasks=&[ModelKind::ImageClassification, ModelKind::FaceEmbedding] what="notice-actors" />
                <ResultView outcome photo preview />
            </section>
        </div>
    }
}

/// One box per detected face, drawn over the preview in percentages of the
/// photo so it scales with the image.
#[component]
fn FaceBoxes(outcome: RwSignal<Outcome>) -> impl IntoView {
    move || {
        let Outcome::Done(report) = outcome.get() else {
            return Vec::new();
        };
        let (w, h) = (report.width.max(1) as f32, report.height.max(1) as f32);
        report
            .recognition
            .faces
            .into_iter()
            .map(|face| {
                let [x, y, fw, fh] = face.bounds.map(|v| v as f32);
                let style = format!(
                    "left:{}%;top:{}%;width:{}%;height:{}%",
                    100.0 * x / w,
                    100.0 * y / h,
                    100.0 * fw / w,
                    100.0 * fh / h
                );
                let label = face
                    .predictions
                    .first()
                    .map(|p| format!("{} {:.0}%", p.label, p.score * 100.0))
                    .unwrap_or_default();
                view! { <span class="face-box" style=style><span>{label}</span></span> }
            })
            .collect::<Vec<_>>()
    }
}

#[component]
fn ResultView(
    outcome: RwSignal<Outcome>,
    photo: BrowserSlot<Blob>,
    preview: RwSignal<Option<Preview>>,
) -> impl IntoView {
    let input = Signal::derive(move || {
        let file = preview.get().map(|p| p.name).unwrap_or_default();
        serde_json::json!({ "file": file }).to_string()
    });
    move || {
        match outcome.get() {
        Outcome::Idle => view! { <p class="muted">{t("actors-idle")}</p> }.into_any(),
        Outcome::Working => view! { <p class="working" role="status"><span class="spinner"></span>{t("actors-working")}</p> }.into_any(),
        Outcome::Failed(message) => view! { <p class="error" role="alert">{message}</p> }.into_any(),
        Outcome::Done(report) => {
            let output = serde_json::to_string(&report).unwrap_or_default();
            let faces = report.recognition.faces.len();
            view! {
                <Labels predictions=report.recognition.predictions.clone() />
                {(faces > 0).then(|| view! {
                    <p class="muted">{move || text_with(locale().get(), "actors-faces", &[("faces", faces.into())])}</p>
                })}
                <p class="meta">
                    {format!("{:.0} ms · {} · {}×{} px", report.elapsed_ms, report.model, report.width, report.height)}
                </p>
                <FlagButton task=Task::Actors input output photo />
            }
            .into_any()
        }
    }
    }
}

/// The top labels as bars.
#[component]
fn Labels(predictions: Vec<Prediction>) -> impl IntoView {
    view! {
        <ol class="labels">
            {predictions
                .into_iter()
                .take(SHOWN_LABELS)
                .map(|p| {
                    let percent = (p.score * 100.0).clamp(0.0, 100.0);
                    view! {
                        <li>
                            <span class="label">{p.label}</span>
                            <span class="bar" role="meter" aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{percent:.0}")>
                                <span style=format!("width:{percent:.1}%")></span>
                            </span>
                            <span class="score">{format!("{percent:.1}%")}</span>
                        </li>
                    }
                })
                .collect::<Vec<_>>()}
        </ol>
    }
}

/// The examples gallery: click a photo to recognise it.
#[component]
fn Examples(try_example: impl Fn(ExamplePhoto) + Copy + Send + Sync + 'static) -> impl IntoView {
    let examples = Resource::new(|| (), |_| api::example_photos());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match examples.await {
                    Ok(list) if !list.is_empty() => Some(view! {
                        <h2>{t("actors-examples")}</h2>
                        <ul class="examples">
                            {list
                                .into_iter()
                                .map(|example| {
                                    let ExamplePhoto { name, url } = example.clone();
                                    let title = text_with(locale().get_untracked(), "actors-try", &[("name", name.clone().into())]);
                                    view! {
                                        <li>
                                            <button type="button" class="example" title=title on:click=move |_| try_example(example.clone())>
                                                <img src=url alt=name loading="lazy" />
                                            </button>
                                        </li>
                                    }
                                })
                                .collect::<Vec<_>>()}
                        </ul>
                    }),
                    _ => None,
                }
            })}
        </Suspense>
    }
}
