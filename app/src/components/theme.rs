//! The light/dark theme switch. The choice is kept in `localStorage`; with
//! none saved, the system preference decides.

use leptos::prelude::*;

use crate::i18n::{locale, t, text_in};

const STORAGE_KEY: &str = "starcast-theme";

fn system_prefers_dark() -> bool {
    window()
        .match_media("(prefers-color-scheme: dark)")
        .ok()
        .flatten()
        .is_some_and(|query| query.matches())
}

#[component]
pub fn ThemeToggle() -> impl IntoView {
    let dark = RwSignal::new(false);
    let language = locale();
    Effect::new(move |_| {
        let saved = document()
            .document_element()
            .and_then(|root| root.get_attribute("data-theme"));
        dark.set(match saved.as_deref() {
            Some(theme) => theme == "dark",
            None => system_prefers_dark(),
        });
    });
    let toggle = move |_| {
        let theme = if dark.get_untracked() {
            "light"
        } else {
            "dark"
        };
        dark.set(theme == "dark");
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-theme", theme);
        }
        if let Ok(Some(storage)) = window().local_storage() {
            let _ = storage.set_item(STORAGE_KEY, theme);
        }
    };
    view! {
        <button
            class="icon-button"
            id="theme-toggle"
            type="button"
            on:click=toggle
            aria-pressed=move || dark.get().to_string()
            title=move || text_in(language.get(), if dark.get() { "theme-to-light" } else { "theme-to-dark" })
        >
            <span aria-hidden="true">{move || if dark.get() { "☀" } else { "☾" }}</span>
            <span class="visually-hidden">{t("theme-dark")}</span>
        </button>
    }
}
