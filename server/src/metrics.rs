//! Prometheus metrics: requests and latency per route, and per model
//! version: calls by outcome, latency and the confidence of its answers
//! (a drifting confidence is the first sign a model needs retraining).
//! Rendered in the text format at `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::Registry;
use starcast_api::{ModelInfo, Task};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    task: &'static str,
    model: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    task: &'static str,
    model: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn confidence_histogram() -> Histogram {
    Histogram::new(linear_buckets(0.1, 0.1, 10))
}

/// What a counted call was: a task's model answering, or a flag stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Model(Task),
    Flag,
}

impl Call {
    fn label(self) -> &'static str {
        match self {
            Call::Model(task) => task.as_str(),
            Call::Flag => "flags",
        }
    }
}

/// `name@version`, or `none` when no model answered.
fn model_label(model: Option<&ModelInfo>) -> String {
    model.map_or_else(|| "none".into(), |m| format!("{}@{}", m.name, m.version))
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The server's metrics registry and the metrics in it.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<RouteLabels>,
    /// Calls by task (`actors`, `horoscope`, `flags`), model and outcome.
    outcomes: Family<OutcomeLabels, Counter>,
    model_latency: HistogramFamily<ModelLabels>,
    confidence: HistogramFamily<ModelLabels>,
    photo_batches: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("starcast");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        let model_latency = HistogramFamily::<ModelLabels>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let confidence = HistogramFamily::<ModelLabels>::new_with_constructor(
            confidence_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head, by route",
            latency.clone(),
        );
        registry.register(
            "model_calls",
            "Model calls by task, model version and outcome",
            outcomes.clone(),
        );
        registry.register(
            "model_duration_seconds",
            "Time a model took to answer, by task and model version",
            model_latency.clone(),
        );
        registry.register(
            "prediction_confidence",
            "The top label's score of each answer, by task and model version",
            confidence.clone(),
        );
        let photo_batches = Histogram::new(exponential_buckets(1.0, 2.0, 7));
        registry.register(
            "photo_batch_size",
            "Photos per forward pass of the served classifier",
            photo_batches.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            outcomes,
            model_latency,
            confidence,
            photo_batches,
        }
    }
}

impl Metrics {
    /// Counts a call of `model` (none when no model was there to answer).
    pub fn count(&self, call: Call, model: Option<&ModelInfo>, outcome: &'static str) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                task: call.label(),
                model: model_label(model),
                outcome,
            })
            .inc();
    }

    /// Records how long a model took, and how sure it was of its answer.
    pub fn observe(&self, task: Task, model: &ModelInfo, seconds: f64, confidence: Option<f32>) {
        let labels = ModelLabels {
            task: task.as_str(),
            model: model_label(Some(model)),
        };
        self.model_latency.get_or_create(&labels).observe(seconds);
        if let Some(score) = confidence {
            self.confidence
                .get_or_create(&labels)
                .observe(f64::from(score));
        }
    }

    /// Records one forward pass of the classifier over `photos` photos.
    pub fn observe_batch(&self, photos: usize) {
        self.photo_batches.observe(photos as f64);
    }

    /// The metrics in Prometheus's text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String never fails");
        text
    }
}

/// Middleware recording every request. The route is the matched pattern,
/// never the raw path, so label values stay few.
/// The method as a label: the standard ones by name, any other as `other`,
/// so made-up methods can't grow the metrics without bound.
fn method_label(method: &Method) -> &'static str {
    static KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let method = method_label(request.method()).to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    // The files the fallback serves (the bundle, styles, pictures) share one
    // label; every other path no route knows shares another.
    let route = matched.unwrap_or_else(|| {
        let status = response.status();
        let served = status.is_success() || status == StatusCode::NOT_MODIFIED;
        (if served { "static" } else { "unmatched" }).to_string()
    });
    metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
