//! A notice, shown before anyone tries, that the page's model is missing.

use leptos::prelude::*;
use starcast_api::ModelKind;

use crate::api;
use crate::i18n::t;

/// Says so when no served model does one of `tasks`; `what` is the key of
/// the notice's words ("notice-actors").
#[component]
pub fn ModelNotice(tasks: &'static [ModelKind], what: &'static str) -> impl IntoView {
    let words = t(what);
    let models = Resource::new(|| (), |_| api::served_models());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let served = models.await.unwrap_or_default();
                let missing = !served.iter().any(|m| tasks.contains(&m.task));
                missing.then(|| view! {
                    <p class="notice-missing" role="note">
                        {words}
                    </p>
                })
            })}
        </Suspense>
    }
}
