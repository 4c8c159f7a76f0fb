//! The Horoscope page: pick a sign and a date, see where the request
//! stands while it waits for a turn, watch the horoscope being written
//! token by token, and stop it at any time.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use starcast_api::{
    DEFAULT_TEMPERATURE, DEFAULT_TOP_P, Horoscope, HoroscopeQuery, Language, MAX_TEMPERATURE,
    ModelKind, QueueStatus, Task, ZodiacSign,
};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{EventSource, MessageEvent};

use crate::api::client;
use crate::browser::{browser_slot, fill};
use crate::components::flag::FlagButton;
use crate::components::model_notice::ModelNotice;
use crate::components::run_where::RunWhere;
use crate::i18n::{locale, sign_dates, sign_name, t, text_in, text_with};
use crate::in_browser::{self, in_browser};

#[derive(Clone, Debug, PartialEq)]
enum Writing {
    Idle,
    Streaming,
    /// The visitor stopped it; the text so far stays.
    Stopped,
    Done(Horoscope),
    Failed(String),
}

/// An open event stream and the handlers it calls; dropping it closes both.
struct OpenStream {
    source: EventSource,
    _handlers: Vec<Closure<dyn FnMut(MessageEvent)>>,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.source.close();
    }
}

/// Today's date as `YYYY-MM-DD`: the server's on the server, the user's in
/// the browser.
fn today() -> String {
    #[cfg(feature = "ssr")]
    {
        chrono::Utc::now().date_naive().to_string()
    }
    #[cfg(not(feature = "ssr"))]
    {
        let now = js_sys::Date::new_0();
        format!(
            "{:04}-{:02}-{:02}",
            now.get_full_year(),
            now.get_month() + 1,
            now.get_date()
        )
    }
}

/// Where a waiting request stands, in words.
fn queue_words(language: Language, status: &QueueStatus) -> String {
    let ahead = text_with(language, "queue-ahead", &[("ahead", status.ahead.into())]);
    if status.wait_s >= 1.0 {
        let seconds = format!("{:.0}", status.wait_s);
        text_with(
            language,
            "queue-waiting-about",
            &[("ahead", ahead.into()), ("seconds", seconds.into())],
        )
    } else {
        text_with(language, "queue-waiting", &[("ahead", ahead.into())])
    }
}

fn stream_url(query: &HoroscopeQuery) -> String {
    let encode = |s: &str| String::from(js_sys::encode_uri_component(s));
    let mut url = format!("/api/horoscope/stream?sign={}", encode(&query.sign));
    if let Some(date) = &query.date {
        url.push_str(&format!("&date={}", encode(date)));
    }
    if let Some(t) = query.temperature {
        url.push_str(&format!("&temperature={t}"));
    }
    if let Some(p) = query.top_p {
        url.push_str(&format!("&top_p={p}"));
    }
    if let Some(seed) = query.seed {
        url.push_str(&format!("&seed={seed}"));
    }
    if let Some(lang) = &query.lang {
        url.push_str(&format!("&lang={}", encode(lang)));
    }
    url
}

#[component]
pub fn HoroscopePage() -> impl IntoView {
    let sign = RwSignal::new(None::<ZodiacSign>);
    let date = RwSignal::new(today());
    let temperature = RwSignal::new(DEFAULT_TEMPERATURE.to_string());
    let top_p = RwSignal::new(DEFAULT_TOP_P.to_string());
    let seed = RwSignal::new(String::new());
    let interface = locale();
    // The horoscope's language starts as the interface's.
    let lang = RwSignal::new(interface.get_untracked());
    let text = RwSignal::new(String::new());
    let writing = RwSignal::new(Writing::Idle);
    let queue = RwSignal::new(None::<QueueStatus>);
    let stream = browser_slot::<OpenStream>();
    on_cleanup(move || fill(stream, None));
    let runner = in_browser();

    let query = move || HoroscopeQuery {
        sign: sign.get().map(|s| s.key().to_string()).unwrap_or_default(),
        date: Some(date.get()).filter(|d| !d.is_empty()),
        temperature: temperature.get().parse().ok(),
        top_p: top_p.get().parse().ok(),
        seed: seed.get().trim().parse().ok(),
        lang: Some(lang.get().code().to_string()),
    };

    // The server writes it, streamed as server-sent events.
    let from_server = move || {
        let url = stream_url(&query());
        text.set(String::new());
        let Ok(source) = EventSource::new(&url) else {
            writing.set(Writing::Failed(text_in(
                interface.get_untracked(),
                "horoscope-no-event-stream",
            )));
            return;
        };
        let on_queued = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let status = ev
                .data()
                .as_string()
                .and_then(|d| serde_json::from_str::<QueueStatus>(&d).ok());
            queue.set(status);
        });
        let on_token = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            queue.set(None);
            if let Some(piece) = ev.data().as_string() {
                text.update(|t| t.push_str(&piece));
            }
        });
        let on_restart =
            Closure::<dyn FnMut(MessageEvent)>::new(move |_: MessageEvent| text.set(String::new()));
        let on_done = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let parsed = ev
                .data()
                .as_string()
                .and_then(|d| serde_json::from_str::<Horoscope>(&d).ok());
            match parsed {
                Some(horoscope) => {
                    text.set(horoscope.text.clone());
                    writing.set(Writing::Done(horoscope));
                }
                None => writing.set(Writing::Failed(text_in(
                    interface.get_untracked(),
                    "horoscope-unreadable",
                ))),
            }
            fill(stream, None);
        });
        let on_failure = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let message = ev.data().as_string().unwrap_or_default();
            writing.set(Writing::Failed(message));
            fill(stream, None);
        });
        let failed_url = url.clone();
        let on_error = Closure::<dyn FnMut(MessageEvent)>::new(move |_| {
            if writing.get_untracked() != Writing::Streaming {
                return;
            }
            fill(stream, None);
            let url = failed_url.clone();
            spawn_local(async move {
                writing.set(Writing::Failed(client::error_at(&url).await.0));
            });
        });
        let handlers = [
            ("queued", on_queued),
            ("token", on_token),
            ("restart", on_restart),
            ("done", on_done),
            ("failure", on_failure),
            ("error", on_error),
        ];
        for (event, handler) in &handlers {
            let _ =
                source.add_event_listener_with_callback(event, handler.as_ref().unchecked_ref());
        }
        fill(
            stream,
            Some(OpenStream {
                source,
                _handlers: handlers.into_iter().map(|(_, h)| h).collect(),
            }),
        );
    };

    let write_here = move || {
        runner.fell_back.set(None);
        let query = query();
        spawn_local(async move {
            let on_piece = move |piece: Option<String>| match piece {
                Some(piece) => text.update(|t| t.push_str(&piece)),
                None => text.set(String::new()),
            };
            let written = in_browser::write(runner, &query, &today(), on_piece).await;
            // A stop has already said so.
            if writing.get_untracked() != Writing::Streaming {
                return;
            }
            match written {
                Ok(horoscope) => {
                    text.set(horoscope.text.clone());
                    writing.set(Writing::Done(horoscope));
                }
                // A browser that can't run the model (out of memory, say)
                // is answered by the server where there is one.
                Err(failure) if runner.has_server.get_untracked() => {
                    runner.fell_back.set(Some(failure.0));
                    from_server();
                }
                Err(failure) => writing.set(Writing::Failed(failure.0)),
            }
        });
    };

    let generate = move |_| {
        fill(stream, None);
        text.set(String::new());
        queue.set(None);
        writing.set(Writing::Streaming);
        if runner.chosen.get_untracked() {
            write_here();
        } else {
            from_server();
        }
    };

    // Closing the stream is what frees the server's worker; in the
    // browser, ending the worker is what stops the writing.
    let stop = move |_| {
        if runner.chosen.get_untracked() {
            in_browser::stop();
        }
        fill(stream, None);
        queue.set(None);
        writing.set(Writing::Stopped);
    };

    let flag_input = Signal::derive(move || serde_json::to_string(&query()).unwrap_or_default());
    let flag_output = Signal::derive(move || match writing.get() {
        Writing::Done(h) => serde_json::to_string(&h).unwrap_or_default(),
        _ => String::new(),
    });

    view! {
        <Title text=t("horoscope-title") />
        <section class="intro">
            <h1>{t("horoscope-heading")}</h1>
            <p>{t("horoscope-intro")}</p>
        </section>
        <div class="workbench">
            <section class="card">
                <fieldset class="signs">
                    <legend>{t("horoscope-sign")}</legend>
                    {ZodiacSign::ALL
                        .into_iter()
                        .map(|s| {
                            let id = format!("sign-{}", s.key());
                            view! {
                                <input
                                    type="radio"
                                    name="sign"
                                    id=id.clone()
                                    value=s.key()
                                    prop:checked=move || sign.get() == Some(s)
                                    on:change=move |_| sign.set(Some(s))
                                />
                                <label for=id class="sign">
                                    <span class="glyph" aria-hidden="true">{s.glyph().to_string()}</span>
                                    <span class="sign-name">{move || sign_name(interface.get(), s)}</span>
                                    <span class="sign-dates">{move || sign_dates(interface.get(), s)}</span>
                                </label>
                            }
                        })
                        .collect::<Vec<_>>()}
                </fieldset>
                <fieldset class="row languages">
                    <legend>{t("horoscope-language")}</legend>
                    {Language::ALL
                        .into_iter()
                        .map(|l| {
                            let id = format!("lang-{}", l.code());
                            view! {
                                <input
                                    type="radio"
                                    name="lang"
                                    id=id.clone()
                                    value=l.code()
                                    prop:checked=move || lang.get() == l
                                    on:change=move |_| lang.set(l)
                                />
                                <label for=id>{l.native_name()}</label>
                            }
                        })
                        .collect::<Vec<_>>()}
                </fieldset>
                <div class="row">
                    <label for="horoscope-date">{t("horoscope-date")}</label>
                    <input id="horoscope-date" type="date" value=date.get_untracked() prop:value=move || date.get() on:input=move |ev| date.set(event_target_value(&ev)) />
                </div>
                <details>
                    <summary>{t("horoscope-advanced")}</summary>
                    <div class="row">
                        <label for="temperature">{t("horoscope-temperature")}</label>
                        <input id="temperature" type="range" min="0.05" max=MAX_TEMPERATURE.to_string() step="0.05" value=temperature.get_untracked() on:input=move |ev| temperature.set(event_target_value(&ev)) />
                        <output for="temperature">{move || temperature.get()}</output>
                    </div>
                    <div class="row">
                        <label for="top-p">{t("horoscope-top-p")}</label>
                        <input id="top-p" type="range" min="0.05" max="1" step="0.05" value=top_p.get_untracked() on:input=move |ev| top_p.set(event_target_value(&ev)) />
                        <output for="top-p">{move || top_p.get()}</output>
                    </div>
                    <div class="row">
                        <label for="seed">{t("horoscope-seed")}</label>
                        <input id="seed" type="number" min="0" placeholder=t("horoscope-seed-placeholder") value=seed.get_untracked() on:input=move |ev| seed.set(event_target_value(&ev)) />
                    </div>
                </details>
                <button
                    id="generate"
                    type="button"
                    class="primary"
                    on:click=generate
                    disabled=move || sign.get().is_none() || writing.get() == Writing::Streaming
                >
                    {move || text_in(interface.get(), if writing.get() == Writing::Streaming { "horoscope-writing" } else { "horoscope-generate" })}
                </button>
                <Show when=move || writing.get() == Writing::Streaming>
                    <button id="stop" type="button" class="secondary stop" on:click=stop>{t("horoscope-stop")}</button>
                </Show>
                <RunWhere />
            </section>
            <section class="card result" aria-live="polite">
                <h2>
                    {move || match sign.get() {
                        Some(s) => format!("{} {}", s.glyph(), sign_name(interface.get(), s)),
                        None => text_in(interface.get(), "horoscope-result"),
                    }}
                </h2>
                <ModelNotice tasks=&[ModelKind::TextGeneration] what="notice-horoscope" />
                {move || match writing.get() {
                    Writing::Idle => view! { <p class="muted">{t("horoscope-idle")}</p> }.into_any(),
                    Writing::Failed(message) => view! { <p class="error" role="alert">{message}</p> }.into_any(),
                    Writing::Streaming => view! {
                        {move || queue.get().map(|q| view! {
                            <p class="muted" id="queue-status">{queue_words(interface.get(), &q)}</p>
                        })}
                        <p class="horoscope streaming" id="horoscope-text">{move || text.get()}<span class="caret"></span></p>
                    }.into_any(),
                    Writing::Stopped => view! {
                        <p class="horoscope" id="horoscope-text">{move || text.get()}</p>
                        <p class="meta" id="stopped">{t("horoscope-stopped")}</p>
                    }.into_any(),
                    Writing::Done(h) => view! {
                        <p class="horoscope" id="horoscope-text">{move || text.get()}</p>
                        <p class="meta">{move || text_with(interface.get(), "horoscope-meta", &[
                            ("date", h.date.to_string().into()),
                            ("tokens", h.tokens.into()),
                            ("speed", format!("{:.1}", h.tokens_per_s).into()),
                            ("model", h.model.clone().into()),
                        ])}</p>
                        <FlagButton task=Task::Horoscope input=flag_input output=flag_output />
                    }.into_any(),
                }}
            </section>
        </div>
    }
}
