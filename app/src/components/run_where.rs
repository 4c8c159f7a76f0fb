//! Where a page's model runs: the "Run in my browser" choice, what a
//! static Space says instead, and the model download's progress bar.

use leptos::prelude::*;

use crate::i18n::{locale, t, text_with};
use crate::in_browser::in_browser;

fn megabytes(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

#[component]
pub fn RunWhere() -> impl IntoView {
    let state = in_browser();
    let interface = locale();
    let choice = move || match (state.has_server.get(), state.supported.get()) {
        (true, true) => view! {
            <label class="run-in-browser">
                <input
                    id="run-in-browser"
                    type="checkbox"
                    prop:checked=move || state.chosen.get()
                    on:change=move |ev| state.chosen.set(event_target_checked(&ev))
                />
                " " {t("run-in-browser")}
            </label>
            <small class="muted">{t("run-in-browser-hint")}</small>
        }
        .into_any(),
        (false, true) => view! { <p class="muted">{t("runs-in-browser-only")}</p> }.into_any(),
        (false, false) => {
            view! { <p class="error" role="alert">{t("browser-cannot-run-models")}</p> }.into_any()
        }
        // The server answers: nothing to choose.
        (true, false) => ().into_any(),
    };
    let download = move || {
        state.download.get().map(|d| {
            let words = text_with(
                interface.get(),
                "model-download",
                &[
                    ("loaded", megabytes(d.loaded).into()),
                    ("total", megabytes(d.total).into()),
                ],
            );
            view! {
                <p class="download" id="model-download">
                    <progress max=d.total.max(1) as f64 value=d.loaded as f64></progress>
                    " " {words}
                </p>
            }
        })
    };
    let fell_back = move || {
        state.fell_back.get().map(|reason| {
            let words = text_with(
                interface.get(),
                "ran-on-server",
                &[("reason", reason.into())],
            );
            view! { <p class="notice" role="status" id="ran-on-server">{words}</p> }
        })
    };
    view! { <div class="run-where">{choice} {download} {fell_back}</div> }
}
