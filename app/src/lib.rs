//! Starcast's user interface: the page shell, the router and the pages.
//! Rendered on the server (`ssr`) and hydrated in the browser (`hydrate`).

pub mod api;
mod browser;
mod components;
mod routes;

use leptos::prelude::*;
use leptos_meta::{Link, Meta, MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::StaticSegment;
use leptos_router::components::{A, Route, Router, Routes};

use crate::components::theme::ThemeToggle;
use crate::routes::{
    actors::ActorsPage, horoscope::HoroscopePage, models::ModelsPage, pipeline::PipelinePage,
};

/// The name of the JS and WASM files the front end is built into.
pub const OUTPUT_NAME: &str = "starcast";

/// Applies the saved theme before the first paint so a dark-mode user never
/// sees a white flash.
const THEME_BOOT_SCRIPT: &str = "try{var t=localStorage.getItem('starcast-theme');if(t)document.documentElement.dataset.theme=t}catch(e){}";

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
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
    mark_hydrated();
    view! {
        <Stylesheet id="starcast" href=format!("/pkg/{OUTPUT_NAME}.css") />
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg" />
        <Meta name="description" content="Recognise actors in photos and read today's horoscope, served by Rust models." />
        <Title formatter=|page: String| format!("{page} · Starcast") />
        <Router>
            <header class="top">
                <a class="brand" href="/">
                    <span aria-hidden="true">"✦"</span>
                    " Starcast"
                </a>
                <nav aria-label="Pages">
                    <A href="/">"Actors"</A>
                    <A href="/horoscope">"Horoscope"</A>
                    <A href="/models">"Models"</A>
                    <A href="/pipeline">"Pipeline"</A>
                </nav>
                <ThemeToggle />
            </header>
            <main>
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=ActorsPage />
                    <Route path=StaticSegment("horoscope") view=HoroscopePage />
                    <Route path=StaticSegment("models") view=ModelsPage />
                    <Route path=StaticSegment("pipeline") view=PipelinePage />
                </Routes>
            </main>
            <footer>
                "Starcast · "
                <a href="/api/docs">"REST API (OpenAPI)"</a>
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
        <Title text="Not found" />
        <section class="card">
            <h1>"Page not found"</h1>
            <p>"There is no page here. Try " <a href="/">"actor recognition"</a> " or " <a href="/horoscope">"the horoscope"</a> "."</p>
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
