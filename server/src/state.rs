//! What every handler can reach: passed explicitly as axum state.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use candle_core::Device;
use leptos::config::LeptosOptions;
use sha2::{Digest, Sha256};
use starcast_api::{ApiEndpoint, ModelInfo};
use starcast_app::api::ssr::Catalogue;
use starcast_model::ServedModels;
use starcast_pipeline::{ExamplePhotos, FlagStore, ModelUploads};

use crate::admission::Admission;
use crate::batching::{BatchSettings, PhotoWorker};
use crate::client::{RateLimit, StreamsPerClient, TrustedProxies};
use crate::metrics::Metrics;
use crate::model_check::ModelChecker;
use crate::prediction_log::PredictionLog;
use starcast_jobs::scheduler::Pipeline;

/// Limits that protect the server from its clients.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest upload accepted, in megabytes.
    pub max_upload_mb: usize,
    /// How long a request may take to produce its response head.
    pub request_timeout: Duration,
    /// How many requests are handled at once; more are refused with 503.
    pub max_concurrent_requests: usize,
    /// How many horoscopes are generated at once; more wait their turn, so
    /// the CPU cores are shared by a few generations instead of thrashed.
    pub max_concurrent_generations: usize,
    /// How many photos are in work at once: waiting for their batch,
    /// decoding (one per core at most) or in the forward pass.
    pub max_concurrent_classifications: usize,
    /// The most photos run through a classifier in one forward pass.
    pub max_batch: usize,
    /// The longest a photo waits for others to share its forward pass.
    pub batch_wait: Duration,
    /// How many requests of each kind may wait for a turn; more are
    /// refused at once with 503.
    pub max_queued: usize,
    /// How long a request may wait for its turn before it is refused.
    pub queue_wait: Duration,
    /// The most pixels a photo may have.
    pub max_photo_pixels: u64,
    /// How many horoscope streams one client address may hold open.
    pub max_streams_per_client: usize,
    /// The largest model an admin may upload, in megabytes.
    pub max_model_mb: usize,
}

impl Limits {
    pub fn max_upload_bytes(&self) -> usize {
        self.max_upload_mb * 1024 * 1024
    }
}

/// Photos per forward pass unless told otherwise. On 2 cores, 8 clients
/// against resnet18 (bench/serving.sh, one run each): batches of 4 served
/// 4.23x Gradio's requests/s at 0.25x its p99, batches of 8 3.76x at 0.38x
/// (a request waits for a whole batch ahead of it) with a higher peak.
pub const DEFAULT_MAX_BATCH: usize = 4;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_mb: 10,
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 256,
            max_concurrent_generations: 2,
            max_concurrent_classifications: 2 * DEFAULT_MAX_BATCH,
            max_batch: DEFAULT_MAX_BATCH,
            batch_wait: Duration::from_millis(5),
            max_queued: 32,
            queue_wait: Duration::from_secs(10),
            max_photo_pixels: starcast_model::photo::MAX_PIXELS,
            max_streams_per_client: 4,
            max_model_mb: 512,
        }
    }
}

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub models: ServedModels,
    pub flags: FlagStore,
    pub examples: ExamplePhotos,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// Turns for generation, `limits.max_concurrent_generations` at once.
    #[from_ref(skip)]
    pub generate: Admission,
    /// Turns for classification, `limits.max_concurrent_classifications` at once.
    #[from_ref(skip)]
    pub classify: Admission,
    /// Where admitted photos are decoded and recognised, in batches.
    #[from_ref(skip)]
    pub photos: PhotoWorker,
    /// Open horoscope streams per client address.
    pub streams: StreamsPerClient,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// Flags per client address.
    #[from_ref(skip)]
    pub flag_rate: RateLimit,
    /// Wrong admin tokens per client address.
    #[from_ref(skip)]
    pub admin_failures: RateLimit,
    /// Model uploads and pipeline runs on demand; `None` keeps them off.
    pub admin: Option<Admin>,
    /// The daily loop and its run records; `None` when not configured.
    pub pipeline: Option<Pipeline>,
    /// Where the served models run, uploads included.
    pub device: Device,
    /// The log of answered photos in the records database; `None` keeps none.
    #[from_ref(skip)]
    pub predictions: Option<PredictionLog>,
}

impl Catalogue for AppState {
    fn served_models(&self) -> Vec<ModelInfo> {
        self.models.infos()
    }

    fn example_photos(&self) -> std::io::Result<Vec<String>> {
        self.examples.list()
    }

    fn api_endpoints(&self) -> Vec<ApiEndpoint> {
        crate::api::reference::ENDPOINTS.clone()
    }
}

/// The fewest characters an admin token may have: guessing 32 random
/// characters over the network is hopeless; guessing a word is not.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// An admin token too short to protect a public server.
#[derive(Debug, thiserror::Error)]
#[error(
    "the admin token has {0} characters; use at least {MIN_ADMIN_TOKEN_CHARS} (e.g. the output of `openssl rand -hex 32`)"
)]
pub struct WeakToken(pub usize);

/// What an admin may do, and the token that proves one is (kept as its
/// SHA-256 digest).
#[derive(Clone)]
pub struct Admin {
    digest: [u8; 32],
    pub uploads: ModelUploads,
    /// Loads each upload in a child process first; `None` loads it here.
    pub checker: Option<ModelChecker>,
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl Admin {
    pub fn new(token: &str, uploads: ModelUploads) -> Result<Self, WeakToken> {
        let chars = token.trim().chars().count();
        if chars < MIN_ADMIN_TOKEN_CHARS {
            return Err(WeakToken(chars));
        }
        Ok(Admin {
            digest: digest(token.trim()),
            uploads,
            checker: None,
        })
    }

    /// Checks uploads with `checker` before loading them.
    pub fn with_checker(self, checker: ModelChecker) -> Self {
        Admin {
            checker: Some(checker),
            ..self
        }
    }

    /// Whether `Authorization: Bearer <token>` carries the token. Digests
    /// are compared, every byte of them, so neither the time taken nor the
    /// given token's length says how close a guess was.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        let Some(given) = authorization.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let given = digest(given.trim());
        given
            .iter()
            .zip(&self.digest)
            .fold(0u8, |d, (a, b)| d | (a ^ b))
            == 0
    }
}

impl AppState {
    /// A fresh state: new metrics, and generation turns as `limits` says.
    pub fn new(
        leptos_options: LeptosOptions,
        models: ServedModels,
        flags: FlagStore,
        examples: ExamplePhotos,
        limits: Limits,
    ) -> Self {
        let metrics = Arc::new(Metrics::default());
        let settings = BatchSettings {
            max_batch: limits.max_batch,
            wait: limits.batch_wait,
            max_pixels: limits.max_photo_pixels,
        };
        AppState {
            leptos_options,
            models,
            flags,
            examples,
            photos: PhotoWorker::start(settings, metrics.clone()),
            metrics,
            generate: Admission::new(
                "horoscope",
                limits.max_concurrent_generations,
                limits.max_queued,
                limits.queue_wait,
            ),
            classify: Admission::new(
                "photo",
                limits.max_concurrent_classifications,
                limits.max_queued,
                limits.queue_wait,
            ),
            streams: StreamsPerClient::new(limits.max_streams_per_client),
            trusted_proxies: TrustedProxies::default(),
            flag_rate: RateLimit::new("flags", 30, 10),
            admin_failures: RateLimit::new("wrong admin tokens", 5, 5),
            limits,
            admin: None,
            pipeline: None,
            device: Device::Cpu,
            predictions: None,
        }
    }

    /// Logs each answered photo to the records database.
    pub fn with_prediction_log(self, log: PredictionLog) -> Self {
        AppState {
            predictions: Some(log),
            ..self
        }
    }

    /// Believes `X-Forwarded-For` from these proxies.
    pub fn with_trusted_proxies(self, proxies: Vec<std::net::IpAddr>) -> Self {
        AppState {
            trusted_proxies: TrustedProxies(Arc::new(proxies)),
            ..self
        }
    }

    /// Says the models run on `device`, and loads uploads there.
    pub fn with_device(self, device: Device) -> Self {
        AppState { device, ..self }
    }

    /// Records and runs the daily loop.
    pub fn with_pipeline(self, pipeline: Pipeline) -> Self {
        AppState {
            pipeline: Some(pipeline),
            ..self
        }
    }

    /// Turns model uploads on.
    pub fn with_admin(self, admin: Admin) -> Self {
        AppState {
            admin: Some(admin),
            ..self
        }
    }
}
