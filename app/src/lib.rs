//! Starcast's user interface: the page shell, the router and the pages.
//! Rendered on the server (`ssr`) and hydrated in the browser (`hydrate`).

pub mod api;
mod browser;
mod components;
mod i18n;
mod in_browser;
mod routes;

use leptos::prelude::*;
use leptos_meta::{Link, Meta, MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::StaticSegment;
use leptos_router::components::{A, Route, Router, Routes};

use crate::components::theme::ThemeToggle;
use crate::i18n::{LanguageSwitch, Locale, request_language, t};
use crate::in_browser::{InBrowser, in_browser};
use crate::routes::{
    actors::ActorsPage, api_docs::ApiDocsPage, horoscope::HoroscopePage, models::ModelsPage,
    pipeline::PipelinePage,
};

/// The locale files' words for the server's own answers (API errors).
pub use crate::i18n::{from_cookies, try_text_with};
pub use fluent_templates::fluent_bundle::FluentValue;

/// The name of the JS and WASM files the front end is built into.
pub const OUTPUT_NAME: &str = "starcast";

/// Applies the saved theme before the first paint so a dark-mode user never
/// sees a white flash.
const THEME_BOOT_SCRIPT: &str = "try{var t=localStorage.getItem('starcast-theme');if(t)document.documentElement.dataset.theme=t}catch(e){}";

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang=request_language().code()>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <script>{THEME_BOOT_SCRIPT}</script>
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_context(Locale(RwSignal::new(request_language())));
    InBrowser::provide();
    mark_hydrated();
    // A static Space has no pipeline and no API to show.
    let serverless = move || !in_browser().has_server.get();
    view! {
        <Stylesheet id="starcast" href=format!("/pkg/{OUTPUT_NAME}.css") />
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg" />
        <Meta name="description" content=t("site-description") />
        <Title formatter=|page: String| format!("{page} · Starcast") />
        <Router>
            <header class="top">
                <a class="brand" href="/">
                    <span aria-hidden="true">"✦"</span>
                    " Starcast"
                </a>
                <nav aria-label=t("nav-pages")>
                    <A href="/">{t("nav-actors")}</A>
                    <A href="/horoscope">{t("nav-horoscope")}</A>
                    <A href="/models">{t("nav-models")}</A>
                    <span class:hidden=serverless>
                        <A href="/pipeline">{t("nav-pipeline")}</A>
                    </span>
                </nav>
                <LanguageSwitch />
                <ThemeToggle />
            </header>
            <main>
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=ActorsPage />
                    <Route path=StaticSegment("horoscope") view=HoroscopePage />
                    <Route path=StaticSegment("models") view=ModelsPage />
                    <Route path=StaticSegment("pipeline") view=PipelinePage />
                    <Route path=(StaticSegment("api"), StaticSegment("docs")) view=ApiDocsPage />
                </Routes>
            </main>
            <footer>
                "Starcast"
                <span class:hidden=serverless>
                    " · "
                    <a href="/api/docs">{t("footer-api")}</a>
                </span>
            </footer>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text=t("not-found-title") />
        <section class="card">
            <h1>{t("not-found-heading")}</h1>
            <p>{t("not-found-try")} " " <a href="/">{t("not-found-actors")}</a> " " {t("not-found-or")} " " <a href="/horoscope">{t("not-found-horoscope")}</a> "."</p>
        </section>
    }
}

/// Sets `data-hydrated` on `<html>` once the WASM has taken over, so tests
/// and scripts can tell a live page from server-rendered markup.
fn mark_hydrated() {
    Effect::new(move |_| {
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });
}
