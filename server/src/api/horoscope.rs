//! `POST /api/horoscope` and `GET /api/horoscope/stream`: a horoscope for a
//! sign and a day, whole or token by token.

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use starcast_api::{ErrorBody, Task};
use starcast_model::{Horoscope, HoroscopeQuery, HoroscopeRequest, HoroscopeWriter, Streamed};
use tokio_stream::wrappers::ReceiverStream;

use crate::admission::Abandon;
use crate::api::actors::{failure_kind, outcome};
use crate::client::ClientAddress;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::metrics::Call;
use crate::state::AppState;

/// How many events may wait for a slow reader before generation pauses.
const STREAM_BUFFER: usize = 64;
/// How often a waiting stream is told where it stands.
const QUEUE_REPORT: Duration = Duration::from_secs(2);

fn checked(
    state: &AppState,
    query: HoroscopeQuery,
) -> Result<(HoroscopeRequest, Arc<dyn HoroscopeWriter>), ApiError> {
    let request = query.validate(chrono::Utc::now().date_naive())?;
    let writer = state
        .models
        .horoscope(request.language)
        .ok_or_else(|| ApiError::no_horoscope_in(&state.models, request.language))?;
    Ok((request, writer))
}

/// A token as event-stream data: a carriage return can't be sent there
/// (axum refuses it), so line ends become `\n`, which the browser's
/// EventSource gives back as they were sent.
fn sse_text(piece: &str) -> String {
    piece.replace("\r\n", "\n").replace('\r', "\n")
}

/// Write a horoscope and return it whole.
#[utoipa::path(
    post,
    path = "/api/horoscope",
    tag = "horoscope",
    request_body = HoroscopeQuery,
    responses(
        (status = 200, description = "The horoscope", body = Horoscope),
        (status = 422, description = "Unknown sign (the message lists the 12), bad date, or sampling settings out of range", body = ErrorBody),
        (status = 503, description = "No horoscope model is loaded", body = ErrorBody),
    )
)]
pub async fn write(
    State(state): State<AppState>,
    ApiJson(query): ApiJson<HoroscopeQuery>,
) -> Result<Json<Horoscope>, ApiError> {
    let (request, writer) = checked(&state, query).inspect_err(|e| {
        state
            .metrics
            .count(Call::Model(Task::Horoscope), None, failure_kind(e))
    })?;
    let model = writer.info().clone();
    let turn = state.generate.turn().await?;
    let (abandon, _abandon_on_drop) = Abandon::within(state.limits.request_timeout);
    let start = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        // A client that left, or a request past its timeout, stops the
        // generation at the next token.
        writer.write(&request, &mut |_| {
            if abandon.abandoned() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
    })
    .await?
    .map_err(ApiError::from);
    state.generate.record(start.elapsed());
    state
        .metrics
        .count(Call::Model(Task::Horoscope), Some(&model), outcome(&result));
    if result.is_ok() {
        let seconds = start.elapsed().as_secs_f64();
        state
            .metrics
            .observe(Task::Horoscope, &model, seconds, None);
    }
    result.map(Json)
}

/// Write a horoscope as server-sent events: `token` events carry the text as
/// it is generated, `restart` says the text so far was an unusable sample
/// and another begins, then `done` carries the finished horoscope as JSON,
/// or `failure` a sentence. Closing the connection stops generation.
#[utoipa::path(
    get,
    path = "/api/horoscope/stream",
    tag = "horoscope",
    params(
        ("sign" = String, Query, description = "English or Russian name, any case, or the glyph", example = "leo"),
        ("date" = Option<String>, Query, description = "YYYY-MM-DD; today when absent"),
        ("temperature" = Option<f32>, Query, description = "Above 0, at most 2; default 0.6"),
        ("top_p" = Option<f32>, Query, description = "Above 0, at most 1; default 0.7"),
        ("seed" = Option<u64>, Query, description = "Absent: the day's horoscope"),
    ),
    responses(
        (status = 200, description = "An event stream: `token`* (with `restart` before each new sample), then `done` or `failure`", content_type = "text/event-stream", body = String),
        (status = 422, description = "Invalid request", body = ErrorBody),
        (status = 429, description = "This client already holds its most streams open", body = ErrorBody),
        (status = 503, description = "No horoscope model is loaded, or the queue is full (see `Retry-After`)", body = ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddress>,
    ApiQuery(query): ApiQuery<HoroscopeQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (request, writer) = checked(&state, query).inspect_err(|e| {
        state
            .metrics
            .count(Call::Model(Task::Horoscope), None, failure_kind(e))
    })?;
    let model = writer.info().clone();
    let (events, receiver) = tokio::sync::mpsc::channel(STREAM_BUFFER);
    let metrics = state.metrics.clone();
    // A full queue is refused now; a queued stream answers at once and
    // waits for its turn in the background, until its client leaves.
    let open_stream = state.streams.open(client)?;
    let admitted = state.generate.enter()?;
    let admission = state.generate.clone();
    tokio::spawn(async move {
        let _open_stream = open_stream;
        let watch = admitted.watch();
        let mut waiting = std::pin::pin!(admitted.turn());
        let turn = loop {
            if let Some(watch) = &watch {
                let queued = Event::default()
                    .event("queued")
                    .json_data(watch.status())
                    .expect("a queue status always serialises");
                let _ = events.send(queued).await;
            }
            tokio::select! {
                turn = &mut waiting => break turn,
                () = events.closed() => return,
                () = tokio::time::sleep(QUEUE_REPORT), if watch.is_some() => {}
            }
        };
        let turn = match turn {
            Ok(turn) => turn,
            Err(error) => {
                let busy = Event::default().event("failure").data(error.sentence());
                let _ = events.send(busy).await;
                return;
            }
        };
        let generation = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let start = Instant::now();
            let written = writer.write(&request, &mut |streamed| {
                let event = match streamed {
                    Streamed::Text(piece) => Event::default().event("token").data(sse_text(piece)),
                    Streamed::Restart => Event::default().event("restart").data(""),
                };
                match events.blocking_send(event) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            });
            admission.record(start.elapsed());
            let last = match written {
                Ok(horoscope) => {
                    metrics.count(Call::Model(Task::Horoscope), Some(&model), "ok");
                    let seconds = start.elapsed().as_secs_f64();
                    metrics.observe(Task::Horoscope, &model, seconds, None);
                    Event::default()
                        .event("done")
                        .json_data(&horoscope)
                        .expect("a horoscope always serialises")
                }
                Err(error) => {
                    metrics.count(Call::Model(Task::Horoscope), Some(&model), "error");
                    tracing::error!(%error, "horoscope generation failed");
                    Event::default()
                        .event("failure")
                        .data("The model failed while writing; the error was logged. Try again.")
                }
            };
            let _ = events.blocking_send(last);
        });
        if let Err(error) = generation.await {
            tracing::error!(%error, "horoscope generation crashed");
        }
    });
    let stream = futures::StreamExt::map(ReceiverStream::new(receiver), Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carriage_returns_in_a_token_cannot_break_the_stream() {
        let piece = "one\r\ntwo\rthree";
        assert_eq!(sse_text(piece), "one\ntwo\nthree");
        let event = Event::default().event("token").data(sse_text(piece));
        assert!(format!("{event:?}").contains("token"));
    }
}
