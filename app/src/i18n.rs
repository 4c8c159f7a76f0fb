//! The interface's language: English or Russian, chosen from the visitor's
//! cookie, else their browser's `Accept-Language`, switchable and
//! remembered. The words live in Fluent files (`app/locales/<lang>/`),
//! compiled into both the server and the WASM bundle, so a hydrated page
//! reads as the server rendered it.

use std::borrow::Cow;
use std::collections::HashMap;

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader, langid, static_loader};
use leptos::prelude::*;
use starcast_api::{Language, ZodiacSign};
use wasm_bindgen::JsCast;

static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        // Fluent's isolation marks around arguments would show in the page.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// The cookie the language switch sets.
pub const COOKIE: &str = "starcast-lang";

fn identifier(language: Language) -> LanguageIdentifier {
    match language {
        Language::En => langid!("en"),
        Language::Ru => langid!("ru"),
    }
}

/// The interface language, shared by every component.
#[derive(Clone, Copy)]
pub struct Locale(pub RwSignal<Language>);

/// The interface language's signal (English outside an app).
pub fn locale() -> RwSignal<Language> {
    use_context::<Locale>().map_or_else(|| RwSignal::new(Language::En), |l| l.0)
}

/// The text of `key` in `language`.
pub fn text_in(language: Language, key: &str) -> String {
    LOCALES.lookup(&identifier(language), key)
}

/// The text of `key` with `arguments`, in `language`.
pub fn text_with(language: Language, key: &str, arguments: &[(&str, FluentValue)]) -> String {
    let arguments: HashMap<Cow<'static, str>, FluentValue> = arguments
        .iter()
        .map(|(name, value)| (Cow::Owned(name.to_string()), value.clone()))
        .collect();
    LOCALES.lookup_with_args(&identifier(language), key, &arguments)
}

/// The text of `key` with `arguments` in `language`, when the locale
/// files have it there (or in the fallback, English).
pub fn try_text_with(
    language: Language,
    key: &str,
    arguments: &[(&str, FluentValue)],
) -> Option<String> {
    let arguments: HashMap<Cow<'static, str>, FluentValue> = arguments
        .iter()
        .map(|(name, value)| (Cow::Owned(name.to_string()), value.clone()))
        .collect();
    LOCALES.try_lookup_with_args(&identifier(language), key, &arguments)
}

/// The text of `key` in the interface language, following it.
pub fn t(key: &'static str) -> impl Fn() -> String + Copy + Send + Sync + 'static {
    let language = locale();
    move || text_in(language.get(), key)
}

/// A sign's name in `language`.
pub fn sign_name(language: Language, sign: ZodiacSign) -> &'static str {
    match language {
        Language::En => sign.name(),
        Language::Ru => sign.russian_name(),
    }
}

/// A sign's days in `language`: "Jul 23 – Aug 22", "23 июля – 22 августа".
pub fn sign_dates(language: Language, sign: ZodiacSign) -> String {
    let ((from_month, from_day), (to_month, to_day)) = sign.days();
    let month = |m: u32| text_in(language, &format!("month-{m}"));
    text_with(
        language,
        "sign-dates",
        &[
            ("from-day", from_day.into()),
            ("from-month", month(from_month).into()),
            ("to-day", to_day.into()),
            ("to-month", month(to_month).into()),
        ],
    )
}

/// The language a cookie header names, if it names one.
pub fn from_cookies(cookies: &str) -> Option<Language> {
    cookies
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| value.parse().ok())
}

/// The language of the request being rendered: its cookie, else its
/// `Accept-Language`, else English.
#[cfg(feature = "ssr")]
pub fn request_language() -> Language {
    let Some(parts) = use_context::<http::request::Parts>() else {
        return Language::En;
    };
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    from_cookies(header(http::header::COOKIE))
        .or_else(|| Language::from_accept_language(header(http::header::ACCEPT_LANGUAGE)))
        .unwrap_or_default()
}

/// The language the server rendered the page in, from `<html lang>`.
#[cfg(not(feature = "ssr"))]
pub fn request_language() -> Language {
    document()
        .document_element()
        .and_then(|root| root.get_attribute("lang"))
        .and_then(|lang| lang.parse().ok())
        .unwrap_or_default()
}

/// The visitor's language as the browser knows it: the switch's cookie,
/// else the browser's languages. A static Space's pages are rendered in
/// English ahead of any visit; this is the language they switch to.
pub fn browser_language() -> Option<Language> {
    let cookies = document()
        .dyn_into::<web_sys::HtmlDocument>()
        .ok()
        .and_then(|d| d.cookie().ok())
        .unwrap_or_default();
    from_cookies(&cookies).or_else(|| {
        let languages: Vec<String> = window()
            .navigator()
            .languages()
            .iter()
            .filter_map(|l| l.as_string())
            .collect();
        Language::from_accept_language(&languages.join(","))
    })
}

/// Shows the page in `language`.
pub fn show_in(language: Language) {
    locale().set(language);
    if let Some(root) = document().document_element() {
        let _ = root.set_attribute("lang", language.code());
    }
}

/// Shows the page in `language` and remembers the choice for a year.
pub fn switch_to(language: Language) {
    show_in(language);
    if let Ok(document) = document().dyn_into::<web_sys::HtmlDocument>() {
        let _ = document.set_cookie(&format!(
            "{COOKIE}={}; path=/; max-age=31536000; samesite=lax",
            language.code()
        ));
    }
}

/// English and Русский, the current one marked; a click switches the
/// page's words at once and remembers the choice for a year.
#[component]
pub fn LanguageSwitch() -> impl IntoView {
    let language = locale();
    let choose = switch_to;
    view! {
        <div class="language-switch" role="group" aria-label=t("language-switch")>
            {Language::ALL
                .into_iter()
                .map(|l| {
                    view! {
                        <button
                            type="button"
                            class="language"
                            id=format!("language-{}", l.code())
                            lang=l.code()
                            aria-pressed=move || (language.get() == l).to_string()
                            on:click=move |_| choose(l)
                        >
                            {l.code().to_uppercase()}
                        </button>
                    }
                })
                .collect::<Vec<_>>()}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_both_languages() {
        let english = include_str!("../locales/en/main.ftl");
        let russian = include_str!("../locales/ru/main.ftl");
        let keys = |file: &str| -> Vec<String> {
            file.lines()
                .filter_map(|l| l.split_once(" =").map(|(k, _)| k.trim().to_string()))
                .filter(|k| !k.starts_with('#') && !k.is_empty() && !k.starts_with(' '))
                .collect()
        };
        assert_eq!(
            keys(english),
            keys(russian),
            "the same keys, in the same order"
        );
        assert_eq!(text_in(Language::Ru, "nav-actors"), "Актёры");
        assert_eq!(text_in(Language::En, "nav-actors"), "Actors");
    }

    #[test]
    fn sign_days_read_in_each_language() {
        assert_eq!(sign_dates(Language::En, ZodiacSign::Leo), "Jul 23 – Aug 22");
        assert_eq!(
            sign_dates(Language::Ru, ZodiacSign::Leo),
            "23 июля – 22 августа"
        );
    }

    #[test]
    fn the_cookie_is_read() {
        assert_eq!(from_cookies("a=1; starcast-lang=ru"), Some(Language::Ru));
        assert_eq!(from_cookies("starcast-lang=de"), None);
        assert_eq!(from_cookies(""), None);
    }
}
