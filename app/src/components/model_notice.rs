//! A notice, shown before anyone tries, that the page's model is missing.

use leptos::prelude::*;
use starcast_api::ModelKind;

use crate::api;

/// Says so when no served model does one of `tasks`; `what` names the
/// missing model for people ("actor recognition").
#[component]
pub fn ModelNotice(tasks: &'static [ModelKind], what: &'static str) -> impl IntoView {
    let models = Resource::new(|| (), |_| api::served_models());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let served = models.await.unwrap_or_default();
                let missing = !served.iter().any(|m| tasks.contains(&m.task));
                missing.then(|| view! {
                    <p class="notice-missing" role="note">
                        {format!("No {what} model is loaded on this server yet, so results can't be shown; your input is still checked.")}
                    </p>
                })
            })}
        </Suspense>
    }
}
