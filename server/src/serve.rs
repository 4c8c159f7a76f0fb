//! `starcast serve`: start the web app.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use candle_core::Device;
use leptos::config::{Env, LeptosOptions};
use starcast_app::OUTPUT_NAME;
use starcast_jobs::defaults;
use starcast_jobs::device::{DeviceChoice, device_name};
use starcast_jobs::scheduler::{Pipeline, follow_schedule, parse_schedule};
use starcast_model::hub::local_model;
use starcast_model::text::load_horoscope_writer;
use starcast_model::vision::ClassifierOptions;
use starcast_model::{
    HoroscopeWriter, Language, Models, ServedModels, load_actor_recognizer, writes,
};
use starcast_pipeline::flags;
use starcast_pipeline::records::{self, Records};
use starcast_pipeline::registry::{Registry, Task, Version};
use starcast_pipeline::store::Location;
use starcast_pipeline::{ExamplePhotos, FlagStore, ModelUploads};

use crate::connections::{self, ConnectionLimits};
use crate::model_check::ModelChecker;
use crate::prediction_log::PredictionLog;
use crate::reload::{follow_registry, load_version};
use crate::state::{Admin, AppState, DEFAULT_MAX_BATCH, Limits};

/// How long shutdown waits for requests in flight (streams included).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "STARCAST_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// The port to listen on (Hugging Face Spaces expects 7860).
    #[arg(long, short, env = "PORT", default_value_t = 7860)]
    pub port: u16,
    /// The data folder: example photos in `examples/`, flagged photos in
    /// `flags/`, the records database `records.db`.
    #[arg(long, env = "STARCAST_DATA", default_value = "data")]
    pub data: PathBuf,
    /// The built front end: `pkg/` with the WASM bundle and CSS, plus the public files.
    #[arg(long, env = "STARCAST_SITE", default_value = "target/site")]
    pub site: PathBuf,
    /// The largest upload accepted, in megabytes.
    #[arg(long, env = "STARCAST_MAX_UPLOAD_MB", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_upload_mb: u16,
    /// A horoscope model folder or `hf://user/repo[@revision]`, once per
    /// language (its config.json says which; English when it doesn't).
    /// Without it, `<data>/models/smollm2-135m-instruct` (English) and
    /// `<data>/models/gemma-3-270m` (Russian) where they exist
    /// (scripts/fetch-defaults.sh puts them there).
    #[arg(long, env = "STARCAST_HOROSCOPE_MODEL", value_delimiter = ',')]
    pub horoscope_model: Vec<PathBuf>,
    /// The actor model: a face-gallery folder, a classifier folder, a
    /// weights file (.pth, .safetensors) or `hf://user/repo[@revision]`; without it, `<data>/models/face-gallery`
    /// when that exists (scripts/fetch-defaults.sh puts it there).
    #[arg(long, env = "STARCAST_ACTORS_MODEL")]
    pub actors_model: Option<PathBuf>,
    /// The model registry (default `<data>/registry`): a folder, or
    /// `s3://bucket/prefix` shared by every replica. Without --actors-model,
    /// the actor version it serves is loaded, and each version promoted later
    /// is swapped in while serving.
    #[arg(long, env = "STARCAST_REGISTRY", value_parser = Registry::open)]
    pub registry: Option<Registry>,
    /// Seconds between checks of the registry for a newly promoted version.
    #[arg(long, env = "STARCAST_REGISTRY_POLL", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub registry_poll: u64,
    /// The records database every replica shares: `sqlite://PATH` or
    /// `postgres://USER:PASSWORD@HOST/DATABASE` (default
    /// `sqlite://<data>/records.db`). It holds the review queue of flagged
    /// results, the daily loop's runs and the prediction log that
    /// `/metrics` reads the served model's recent confidence from.
    #[arg(long, env = "STARCAST_RECORDS", hide_env_values = true)]
    pub records: Option<String>,
    /// Where flagged results' photos are kept: a folder (default
    /// `<data>/flags`) or `s3://bucket/prefix`, which replicas sharing
    /// --records should share too.
    #[arg(long, env = "STARCAST_FLAG_PHOTOS", value_parser = Location::parse)]
    pub flag_photos: Option<Location>,
    /// When the daily loop runs, in cron syntax (UTC), e.g. "0 3 * * *"; off without it.
    /// An admin can start a run from the Pipeline page either way.
    #[arg(long, env = "STARCAST_SCHEDULE")]
    pub schedule: Option<String>,
    /// Minutes a step of the daily loop may run before it is stopped (its
    /// whole process group killed).
    #[arg(long, env = "STARCAST_STEP_TIMEOUT_MINUTES", default_value_t = 360, value_parser = clap::value_parser!(u64).range(1..))]
    pub step_timeout_minutes: u64,
    /// The horoscope sites the daily loop collects from.
    #[arg(
        long,
        env = "STARCAST_SOURCES",
        default_value = "pipeline/sources.toml"
    )]
    pub sources: PathBuf,
    /// The classifier's architecture, when neither config.json nor the weights' tensor names tell.
    #[arg(long, env = "STARCAST_ACTORS_ARCH")]
    pub actors_arch: Option<String>,
    /// The classifier's labels in class order, comma-separated, when its folder has no config.json labels or labels.txt.
    #[arg(long, env = "STARCAST_ACTORS_LABELS", value_delimiter = ',')]
    pub actors_labels: Option<Vec<String>>,
    /// The token an admin sends (`Authorization: Bearer ...`) to upload a new
    /// actor model; without it, uploads are off.
    #[arg(long, env = "STARCAST_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The largest model an admin may upload, in megabytes.
    #[arg(long, env = "STARCAST_MAX_MODEL_MB", default_value_t = 512, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_model_mb: u16,
    /// How many horoscopes are generated at once; more wait their turn.
    #[arg(long, env = "STARCAST_MAX_GENERATIONS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_generations: u16,
    /// How many photos are in work at once: waiting for a batch, decoding
    /// or classified (default: two batches' worth). Decoding runs one
    /// photo per core whatever this is.
    #[arg(long, env = "STARCAST_MAX_CLASSIFICATIONS", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_classifications: Option<u16>,
    /// The most photos a classifier runs in one forward pass; photos that
    /// arrive together share one, each answered as if alone. 1 turns
    /// batching off.
    #[arg(long, env = "STARCAST_MAX_BATCH", default_value_t = DEFAULT_MAX_BATCH as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_batch: u16,
    /// Milliseconds the first photo of a batch may wait for others, and
    /// only while other photo requests are on their way.
    #[arg(long, env = "STARCAST_BATCH_WAIT_MS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub batch_wait_ms: u64,
    /// How many requests of each kind (photos, horoscopes) may wait for a
    /// turn; more are refused at once with 503 and Retry-After.
    #[arg(long, env = "STARCAST_MAX_QUEUED", default_value_t = 32)]
    pub max_queued: u16,
    /// Seconds a request may wait for its turn before it is refused with 503.
    #[arg(long, env = "STARCAST_QUEUE_WAIT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub queue_wait: u64,
    /// The most megapixels an uploaded photo may have (checked from its
    /// header, before decoding).
    #[arg(long, env = "STARCAST_MAX_PHOTO_MEGAPIXELS", default_value_t = 40, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_photo_megapixels: u16,
    /// How many connections may be open at once; more wait to be accepted.
    #[arg(long, env = "STARCAST_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_connections: u16,
    /// Seconds a client has to send a request's headers before its
    /// connection is closed.
    #[arg(long, env = "STARCAST_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// How many horoscope streams one client may hold open at once.
    #[arg(long, env = "STARCAST_MAX_STREAMS_PER_CLIENT", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_streams_per_client: u16,
    /// Proxies (IP addresses, comma-separated) whose `X-Forwarded-For`
    /// names the client, as the proxy in front of a Space does; from anyone
    /// else the header is ignored.
    #[arg(long, env = "STARCAST_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<IpAddr>,
    /// Seconds a request may take before it is answered with 504.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,
    /// Where the models run: classifiers and horoscope models alike (the
    /// face gallery stays on the CPU).
    #[arg(long, env = "STARCAST_DEVICE", value_enum, default_value_t)]
    pub device: DeviceChoice,
}

impl ServeArgs {
    /// This binary as the checker of uploads: a minute to load one, in
    /// at most 16 times the largest upload's size of memory (4 GB at least).
    fn model_checker(&self) -> anyhow::Result<ModelChecker> {
        let program = std::env::current_exe()
            .context("could not find the starcast binary to check uploads with")?;
        let memory = (self.max_model_mb as u64 * 16) << 20;
        Ok(ModelChecker::new(
            program,
            Duration::from_secs(60),
            memory.max(4 << 30),
        ))
    }

    /// The records database: the one named with --records, else
    /// `sqlite://<data>/records.db`.
    pub async fn records(&self) -> anyhow::Result<Records> {
        let default = records::default_url(&self.data);
        let url = self.records.as_deref().unwrap_or(&default);
        Records::open(url).await.with_context(|| match &self.records {
            Some(_) => "check --records (STARCAST_RECORDS)".to_string(),
            None => format!(
                "the data folder {} is not writable: pass --data with a writable folder, or --records",
                self.data.display()
            ),
        })
    }

    /// Where flagged photos are kept: --flag-photos, else `<data>/flags`.
    fn flag_photos(&self) -> Location {
        self.flag_photos
            .clone()
            .unwrap_or_else(|| flags::default_photos(&self.data))
    }

    /// What the daily loop's steps need to reach the records and flagged
    /// photos this server uses, when they are not the data folder's own.
    fn step_env(&self) -> Vec<(String, String)> {
        let records = self.records.clone().map(|url| ("STARCAST_RECORDS", url));
        let photos = self
            .flag_photos
            .as_ref()
            .map(|l| ("STARCAST_FLAG_PHOTOS", l.to_string()));
        records
            .into_iter()
            .chain(photos)
            .map(|(name, value)| (name.to_string(), value))
            .collect()
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    fn registry(&self) -> Registry {
        self.registry
            .clone()
            .unwrap_or_else(|| Registry::new(self.data.join("registry")))
    }

    /// The registry to follow while serving: only when no actor model is
    /// pinned with --actors-model.
    pub fn followed_registry(&self) -> Option<Registry> {
        self.actors_model.is_none().then(|| self.registry())
    }

    /// The version of `task` the registry serves, when no model is
    /// `pinned` on the command line and the version loads.
    fn registry_model<M>(
        &self,
        task: Task,
        pinned: bool,
        load: impl FnOnce(&Version) -> anyhow::Result<M>,
    ) -> Option<(String, M)> {
        if pinned {
            return None;
        }
        let version = match self.registry().serving(task) {
            Ok(version) => version?,
            Err(error) => {
                tracing::warn!(%error, %task, "could not read the registry; serving the default model");
                return None;
            }
        };
        match load(&version) {
            Ok(model) => {
                tracing::info!(%task, version = %version.id, path = %version.path.display(), "model loaded from the registry");
                Some((version.id, model))
            }
            Err(error) => {
                tracing::error!(%task, version = %version.id, error = %format!("{error:#}"), "the registry's model does not load; serving the default one");
                None
            }
        }
    }

    /// The server state these options describe, serving `models`, its
    /// flags and prediction log in `records`.
    pub async fn state(&self, models: ServedModels, records: Records) -> anyhow::Result<AppState> {
        let bundle = self.site.join("pkg").join(format!("{OUTPUT_NAME}_bg.wasm"));
        if !bundle.is_file() {
            tracing::warn!(
                "the front end is not built ({} is missing): pages render but stay static; run scripts/build.sh",
                bundle.display()
            );
        }
        let leptos_options = LeptosOptions::builder()
            .output_name(OUTPUT_NAME)
            .site_root(self.site.to_string_lossy().as_ref())
            .site_pkg_dir("pkg")
            .site_addr(self.address())
            .env(Env::PROD)
            .build();
        let flags = FlagStore::open(records.clone(), self.flag_photos())
            .await
            .context("could not open the review queue of flagged results")?;
        let limits = Limits {
            max_upload_mb: usize::from(self.max_upload_mb),
            request_timeout: Duration::from_secs(self.request_timeout),
            max_concurrent_generations: usize::from(self.max_generations),
            max_queued: usize::from(self.max_queued),
            queue_wait: Duration::from_secs(self.queue_wait),
            max_photo_pixels: u64::from(self.max_photo_megapixels) * 1_000_000,
            max_streams_per_client: usize::from(self.max_streams_per_client),
            max_model_mb: usize::from(self.max_model_mb),
            ..Limits::default()
        };
        let limits = Limits {
            max_concurrent_classifications: self
                .max_classifications
                .map_or(2 * usize::from(self.max_batch), usize::from),
            max_batch: usize::from(self.max_batch),
            batch_wait: Duration::from_millis(self.batch_wait_ms),
            ..limits
        };
        let state = AppState::new(
            leptos_options,
            models,
            flags,
            ExamplePhotos::new(self.data.join("examples")),
            limits,
        )
        .with_prediction_log(PredictionLog::start(records));
        Ok(
            match self.admin_token.as_deref().filter(|t| !t.is_empty()) {
                Some(token) => {
                    let uploads = ModelUploads::new(self.data.join("models").join("uploads"));
                    let admin =
                        Admin::new(token, uploads).context("STARCAST_ADMIN_TOKEN is refused")?;
                    state.with_admin(admin.with_checker(self.model_checker()?))
                }
                None => state,
            },
        )
    }
}

impl ServeArgs {
    /// Loads the models to serve onto `device`, and says which registry
    /// version of the actor model is among them. A model named on the
    /// command line must load; a missing default is only worth a warning.
    pub fn models(&self, device: &Device) -> anyhow::Result<(Models, Option<String>)> {
        let mut horoscopes = self.horoscopes_from_options(device)?;
        if let Some((_, writer)) = self.registry_model(
            Task::Horoscope,
            !self.horoscope_model.is_empty(),
            |version| Ok(load_horoscope_writer(&version.path, device)?),
        ) {
            // The registry's version stands in for the default of its language.
            horoscopes.retain(|served| writes(served.as_ref()) != writes(writer.as_ref()));
            horoscopes.insert(0, writer);
        }
        let options = ClassifierOptions {
            architecture: self.actors_arch.clone(),
            labels: self.actors_labels.clone(),
            device: device.clone(),
        };
        if let Some((version, actors)) =
            self.registry_model(Task::Actors, self.actors_model.is_some(), |version| {
                load_version(version, device)
            })
        {
            let models = Models {
                actors: Some(actors),
                horoscopes,
            };
            return Ok((models, Some(version)));
        }
        let actors = self
            .model_path(&self.actors_model, defaults::ACTORS_MODEL, "--actors-model")
            .map(|location| {
                let path = local_model(&location)?;
                let recognizer = load_actor_recognizer(&path, &options).with_context(|| {
                    format!("could not load the actor model in {}", path.display())
                })?;
                tracing::info!(model = %recognizer.info().name, path = %path.display(), "actor model loaded");
                anyhow::Ok(recognizer)
            })
            .transpose()?;
        Ok((Models { actors, horoscopes }, None))
    }

    /// The horoscope models --horoscope-model names, else the default of
    /// each language that is there, on `device`; at most one a language.
    fn horoscopes_from_options(
        &self,
        device: &Device,
    ) -> anyhow::Result<Vec<Arc<dyn HoroscopeWriter>>> {
        let locations: Vec<PathBuf> = if self.horoscope_model.is_empty() {
            Language::ALL
                .into_iter()
                .filter_map(|language| {
                    let default = defaults::horoscope_model(language);
                    self.model_path(&None, default, "--horoscope-model")
                })
                .collect()
        } else {
            self.horoscope_model.clone()
        };
        let mut writers: Vec<Arc<dyn HoroscopeWriter>> = Vec::new();
        for location in locations {
            let path = local_model(&location)?;
            let writer = load_horoscope_writer(&path, device).with_context(|| {
                format!("could not load the horoscope model in {}", path.display())
            })?;
            let language = writes(writer.as_ref());
            if let Some(other) = writers.iter().find(|w| writes(w.as_ref()) == language) {
                anyhow::bail!(
                    "two horoscope models write {language}: {} and {}; pass one --horoscope-model per language",
                    other.info().source,
                    writer.info().source
                );
            }
            tracing::info!(model = %writer.info().name, %language, path = %path.display(), "horoscope model loaded");
            writers.push(writer);
        }
        Ok(writers)
    }

    /// The model named by an option, else the default folder when it exists.
    fn model_path(&self, named: &Option<PathBuf>, default: &str, option: &str) -> Option<PathBuf> {
        if let Some(path) = named {
            return Some(path.clone());
        }
        let default = self.data.join("models").join(default);
        if default.join("config.json").is_file() {
            return Some(default);
        }
        tracing::warn!(
            "no model in {}: run scripts/fetch-defaults.sh or pass {option}",
            default.display()
        );
        None
    }
}

/// Serves until Ctrl-C or SIGTERM, then gives requests in flight a grace period.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let schedule = args
        .schedule
        .as_deref()
        .map(parse_schedule)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let device = args.device.open()?;
    let models = ServedModels::loading();
    let program = std::env::current_exe()
        .context("could not find the starcast binary to run the pipeline steps")?;
    let records = args.records().await?;
    let pipeline = Pipeline::daily(
        program,
        &args.data,
        &args.registry(),
        &args.sources,
        records.clone(),
    )?
    .with_step_timeout(Duration::from_secs(args.step_timeout_minutes * 60))
    .with_step_env(args.step_env());
    pipeline
        .close_interrupted()
        .await
        .context("could not close the pipeline runs the last stop cut short")?;
    let state = args
        .state(models.clone(), records)
        .await?
        .with_pipeline(pipeline.clone())
        .with_device(device.clone())
        .with_trusted_proxies(args.trusted_proxy.clone());
    if let Some(schedule) = schedule {
        tokio::spawn(follow_schedule(pipeline, schedule));
    }
    let address = args.address();
    let listener = tokio::net::TcpListener::bind(address).await.with_context(|| {
        format!("could not listen on {address}: is another program using port {}? Choose another with --port", args.port)
    })?;
    tracing::info!(
        device = %device_name(&device),
        kernels = %starcast_model::kernels::active(),
        "Starcast is serving on http://{address}"
    );
    tokio::spawn(load_models(args.clone(), models, device.clone()));
    let limits = ConnectionLimits {
        max_open: usize::from(args.max_connections),
        header_timeout: Duration::from_secs(args.header_timeout),
    };
    connections::serve(
        listener,
        crate::router(state),
        limits,
        shutdown_signal(),
        SHUTDOWN_GRACE,
    )
    .await;
    Ok(())
}

/// Loads the first models while pages are already served (`/healthz`
/// says 503 until they are in), then follows the registry. A model named
/// on the command line must load: the server exits when one doesn't, as
/// it would have before listening.
async fn load_models(args: ServeArgs, models: ServedModels, device: Device) {
    let loading = {
        let (args, device) = (args.clone(), device.clone());
        tokio::task::spawn_blocking(move || args.models(&device)).await
    };
    let (loaded, registry_version) = match loading {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(error)) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
        Err(error) => {
            tracing::error!(%error, "loading the models failed");
            std::process::exit(1);
        }
    };
    models.finish_loading(loaded);
    tracing::info!(models = models.infos().len(), "the models are loaded");
    if let Some(registry) = args.followed_registry() {
        let poll = Duration::from_secs(args.registry_poll);
        follow_registry(registry, models, registry_version, poll, device).await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
