//! The Pipeline page: the daily loop's runs (collect -> process -> train ->
//! evaluate -> promote), step by step, and an admin's button to start one.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use web_sys::SubmitEvent;

use starcast_api::{PipelineRun, RunStatus, StepRun};

use crate::api::client;

fn status_word(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Waiting => "waiting",
        RunStatus::Running => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Skipped => "skipped",
    }
}

#[component]
pub fn PipelinePage() -> impl IntoView {
    // The runs change while the page is open: read in the browser, not at render.
    let runs = LocalResource::new(client::pipeline_runs);
    view! {
        <Title text="Pipeline" />
        <section class="intro">
            <h1>"Pipeline runs"</h1>
            <p>
                "Each run collects horoscopes, processes them and retrains the horoscope model on them, and retrains the actor model when its photos changed; "
                "a new version is served only when it beats the served one. The same steps run as "
                <code>"starcast"</code>" subcommands from cron or Airflow."
            </p>
        </section>
        <StartRun runs />
        <Suspense fallback=|| view! { <p class="muted">"Loading runs…"</p> }>
            {move || Suspend::new(async move {
                match runs.await {
                    Err(failure) => view! { <p class="error" role="alert">{failure.0}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p class="muted" id="no-runs">"No run yet: the schedule is off, or its first time hasn't come."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <div class="run-list">{list.into_iter().map(|run| view! { <RunCard run /> }).collect::<Vec<_>>()}</div>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn RunCard(run: PipelineRun) -> impl IntoView {
    let status = status_word(run.status);
    view! {
        <section class="card run" data-status=status>
            <h2>{format!("{} · {}", run.started.format("%Y-%m-%d %H:%M UTC"), status)}</h2>
            <p class="muted">{format!("Started by {} · {:.1} s · {}", run.trigger, run.seconds, run.id)}</p>
            <table>
                <thead><tr><th scope="col">"Step"</th><th scope="col">"Status"</th><th scope="col">"Tries"</th><th scope="col">"Time"</th></tr></thead>
                <tbody>{run.steps.into_iter().map(|step| view! { <StepRow step /> }).collect::<Vec<_>>()}</tbody>
            </table>
        </section>
    }
    // Erased: nested in the page's Suspense, the full view type is too deep for the compiler.
    .into_any()
}

#[component]
fn StepRow(step: StepRun) -> impl IntoView {
    view! {
        <tr data-status=status_word(step.status)>
            <th scope="row">
                <details><summary>{step.name}</summary><code>{step.command}</code><pre>{step.log}</pre></details>
                {(!step.metrics.is_empty()).then(|| view! { <p class="figures">{figures(&step.metrics)}</p> })}
            </th>
            <td>{status_word(step.status)}</td>
            <td>{step.attempts}</td>
            <td>{format!("{:.1} s", step.seconds)}</td>
        </tr>
    }
    .into_any()
}

/// A step's figures in a line: counts as whole numbers, the rest to three places.
fn figures(metrics: &std::collections::BTreeMap<String, f64>) -> String {
    metrics
        .iter()
        .map(|(name, value)| {
            if value.fract() == 0.0 && value.abs() < 1e15 {
                format!("{} {value:.0}", name.replace('_', " "))
            } else {
                format!("{} {value:.3}", name.replace('_', " "))
            }
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// An admin's form to start a run now.
#[component]
fn StartRun(runs: LocalResource<Result<Vec<PipelineRun>, client::Failure>>) -> impl IntoView {
    let token = RwSignal::new(String::new());
    let message = RwSignal::new(None::<Result<String, String>>);
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let token = token.get_untracked();
        spawn_local(async move {
            message.set(Some(match client::start_pipeline_run(&token).await {
                Ok(run) => {
                    runs.refetch();
                    Ok(format!(
                        "Run {} started; it goes on in the background.",
                        run.id
                    ))
                }
                Err(failure) => Err(failure.0),
            }));
        });
    };
    view! {
        <details class="card admin">
            <summary>"Start a run now (admin)"</summary>
            <form class="admin-form" on:submit=submit>
                <label>"Admin token"<input type="password" id="pipeline-token" autocomplete="off" bind:value=token required /></label>
                <button type="submit">"Run the pipeline"</button>
            </form>
            {move || message.get().map(|m| match m {
                Ok(text) => view! { <p class="notice" role="status">{text}</p> }.into_any(),
                Err(text) => view! { <p class="error" role="alert">{text}</p> }.into_any(),
            })}
        </details>
    }
}
