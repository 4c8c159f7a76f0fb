//! The flag button under a result, as Gradio has it: the user says what is
//! wrong and the input, output and reason are stored for review.

use leptos::prelude::*;
use leptos::task::spawn_local;
use starcast_api::Task;
use web_sys::{Blob, FormData, SubmitEvent};

use crate::api::client;
use crate::browser::{BrowserSlot, cloned};
use crate::i18n::t;
use crate::in_browser::in_browser;

#[derive(Clone, Debug, PartialEq)]
enum FlagState {
    Closed,
    Writing,
    Sending,
    Sent(String),
    Failed(String),
}

/// `input` and `output` are JSON texts.
#[component]
pub fn FlagButton(
    task: Task,
    #[prop(into)] input: Signal<String>,
    #[prop(into)] output: Signal<String>,
    /// The uploaded photo, stored with the flag.
    #[prop(optional)]
    photo: Option<BrowserSlot<Blob>>,
) -> impl IntoView {
    let state = RwSignal::new(FlagState::Closed);
    let reason = RwSignal::new(String::new());
    let label = RwSignal::new(String::new());
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Ok(form) = FormData::new() else { return };
        let _ = form.append_with_str("task", task.as_str());
        let _ = form.append_with_str("input", &input.get_untracked());
        let _ = form.append_with_str("output", &output.get_untracked());
        let _ = form.append_with_str("reason", &reason.get_untracked());
        let _ = form.append_with_str("label", &label.get_untracked());
        if let Some(blob) = photo.and_then(cloned) {
            let _ = form.append_with_blob_and_filename("image", &blob, "photo");
        }
        state.set(FlagState::Sending);
        spawn_local(async move {
            state.set(match client::flag(&form).await {
                Ok(receipt) => FlagState::Sent(receipt.id),
                Err(failure) => FlagState::Failed(failure.0),
            });
        });
    };
    // A static Space has no server to keep flags.
    let has_server = in_browser().has_server;
    view! {
        <div class="flag" class:hidden=move || !has_server.get()>
            {move || match state.get() {
                FlagState::Closed => view! {
                    <button type="button" class="secondary" on:click=move |_| state.set(FlagState::Writing)>
                        "⚑ " {t("flag-open")}
                    </button>
                }.into_any(),
                FlagState::Sent(id) => view! {
                    <p class="notice" role="status">{t("flag-sent")} " (" <code>{id}</code> ")."</p>
                }.into_any(),
                other => view! {
                    <form class="flag-form" on:submit=submit>
                        <label for=format!("flag-reason-{task}")>{t("flag-reason")}</label>
                        <input
                            id=format!("flag-reason-{task}")
                            type="text"
                            maxlength="2000"
                            placeholder=t("flag-reason-example")
                            prop:value=move || reason.get()
                            on:input=move |ev| reason.set(event_target_value(&ev))
                        />
                        {(task == Task::Actors).then(|| view! {
                            <label for="flag-label">{t("flag-label")}</label>
                            <input
                                id="flag-label"
                                type="text"
                                maxlength="200"
                                placeholder=t("flag-label-example")
                                prop:value=move || label.get()
                                on:input=move |ev| label.set(event_target_value(&ev))
                            />
                        })}
                        <button type="submit" disabled=other == FlagState::Sending>{t("flag-send")}</button>
                        {match other {
                            FlagState::Failed(message) => Some(view! { <p class="error" role="alert">{message}</p> }),
                            _ => None,
                        }}
                    </form>
                }.into_any(),
            }}
        </div>
    }
}
