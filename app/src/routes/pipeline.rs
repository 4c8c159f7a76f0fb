//! The Pipeline page: how sure the served actor model has been lately, the
//! daily loop's runs (collect -> process -> train -> evaluate -> promote),
//! step by step, and an admin's button to start one.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use web_sys::SubmitEvent;

use starcast_api::{Language, Monitoring, PipelineRun, RunStatus, StepRun};

use crate::api::client;
use crate::i18n::{locale, t, text_in, text_with};

/// A status in the interface language.
fn status_words(language: Language, status: RunStatus) -> String {
    text_in(language, &format!("status-{}", status.as_str()))
}

#[component]
pub fn PipelinePage() -> impl IntoView {
    // The runs change while the page is open: read in the browser, not at render.
    let runs = LocalResource::new(client::pipeline_runs);
    view! {
        <Title text=t("pipeline-title") />
        <section class="intro">
            <h1>{t("pipeline-heading")}</h1>
            <p>{t("pipeline-intro")} " " <code>"starcast"</code> " " {t("pipeline-intro-commands")}</p>
        </section>
        <ServedConfidence />
        <StartRun runs />
        <Suspense fallback=|| view! { <p class="muted">{t("loading")}</p> }>
            {move || Suspend::new(async move {
                match runs.await {
                    Err(failure) => view! { <p class="error" role="alert">{failure.0}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p class="muted" id="no-runs">{t("pipeline-no-runs")}</p>
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
    let language = locale();
    let started = run.started.format("%Y-%m-%d %H:%M UTC").to_string();
    let trigger = run.trigger.to_string();
    let details = format!("{:.1} s · {}", run.seconds, run.id);
    view! {
        <section class="card run" data-status=run.status.as_str()>
            <h2>{move || format!("{started} · {}", status_words(language.get(), run.status))}</h2>
            <p class="muted">{move || text_with(language.get(), "pipeline-started-by", &[("trigger", trigger.clone().into())])} " · " {details}</p>
            <table>
                <thead><tr><th scope="col">{t("pipeline-step")}</th><th scope="col">{t("pipeline-status")}</th><th scope="col">{t("pipeline-tries")}</th><th scope="col">{t("pipeline-time")}</th></tr></thead>
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
        <tr data-status=step.status.as_str()>
            <th scope="row">
                <details><summary>{step.name}</summary><code>{step.command}</code><pre>{step.log}</pre></details>
                {(!step.metrics.is_empty()).then(|| view! { <p class="figures">{figures(&step.metrics)}</p> })}
            </th>
            <td>{move || status_words(locale().get(), step.status)}</td>
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

/// The served actor model's answers over the last hour, per tenth of
/// confidence: a model whose answers slide left is drifting. Left out
/// where no server answers (a static Space).
#[component]
fn ServedConfidence() -> impl IntoView {
    let monitoring = LocalResource::new(client::monitoring);
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                monitoring.await.ok().map(|monitoring| view! { <ConfidenceCard monitoring /> })
            })}
        </Suspense>
    }
}

#[component]
fn ConfidenceCard(monitoring: Monitoring) -> impl IntoView {
    let language = locale();
    let Monitoring {
        model,
        logged,
        hours,
        answers,
        mean_confidence,
        per_tenth,
    } = monitoring;
    let summary = move || {
        let language = language.get();
        match (&model, logged, mean_confidence) {
            (None, _, _) => text_in(language, "monitoring-no-model"),
            (Some(_), false, _) => text_in(language, "monitoring-not-logged"),
            (Some(model), true, Some(mean)) => text_with(
                language,
                "monitoring-summary",
                &[
                    ("model", model.clone().into()),
                    ("answers", answers.into()),
                    ("hours", hours.into()),
                    ("mean", format!("{mean:.2}").into()),
                ],
            ),
            (Some(model), true, None) => text_with(
                language,
                "monitoring-no-answers",
                &[("model", model.clone().into()), ("hours", hours.into())],
            ),
        }
    };
    let most = per_tenth.iter().copied().max().unwrap_or(0).max(1);
    let bars = per_tenth
        .into_iter()
        .enumerate()
        .map(|(tenth, count)| {
            let height = format!("height: {}%", count * 100 / most);
            let range = format!(
                "{:.1}-{:.1}",
                tenth as f64 / 10.0,
                (tenth + 1) as f64 / 10.0
            );
            let title = format!("{range}: {count}");
            view! {
                <li title=title>
                    <span class="bar" style=height></span>
                    <span class="range">{range}</span>
                </li>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <section class="card monitoring" id="served-confidence">
            <h2>{t("monitoring-heading")}</h2>
            <p class="muted">{summary}</p>
            {(answers > 0).then(|| view! { <ol class="confidence-bars" aria-label=t("monitoring-heading")>{bars}</ol> })}
        </section>
    }
    .into_any()
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
                    Ok(text_with(
                        locale().get_untracked(),
                        "pipeline-run-started",
                        &[("id", run.id.to_string().into())],
                    ))
                }
                Err(failure) => Err(failure.0),
            }));
        });
    };
    view! {
        <details class="card admin">
            <summary>{t("pipeline-start")}</summary>
            <form class="admin-form" on:submit=submit>
                <label>{t("admin-token")}<input type="password" id="pipeline-token" autocomplete="off" bind:value=token required /></label>
                <button type="submit">{t("pipeline-run")}</button>
            </form>
            {move || message.get().map(|m| match m {
                Ok(text) => view! { <p class="notice" role="status">{text}</p> }.into_any(),
                Err(text) => view! { <p class="error" role="alert">{text}</p> }.into_any(),
            })}
        </details>
    }
}
