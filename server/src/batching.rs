//! The photo worker: every admitted photo is decoded and recognised here,
//! in batches, one decoding while the one before runs its forward pass.
//! Photos that arrive together for a classifier run
//! through one forward pass (up to `max_batch`, waiting at most `wait` for
//! more, and only while more are on their way); each answer is the one the
//! photo gets alone. Decoding runs on rayon's pool, one photo per core, so
//! however many requests are admitted, only that many photos are decoded
//! at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use starcast_model::photo::decode_photo_within;
use starcast_model::{ActorRecognizer, ActorReport, ModelError, Recognition};
use tokio::sync::oneshot;

use crate::admission::{Abandon, Turn};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// How photos are gathered into batches.
#[derive(Clone, Copy, Debug)]
pub struct BatchSettings {
    /// The most photos in one forward pass; 1 runs each alone.
    pub max_batch: usize,
    /// The longest the first photo of a batch waits for others.
    pub wait: Duration,
    /// The most pixels a photo may have.
    pub max_pixels: u64,
}

/// The worker's inbox. Cheap to clone: clones share the worker.
#[derive(Clone, Debug)]
pub struct PhotoWorker {
    /// Unbounded: every job holds an admission turn, and those are bounded.
    jobs: mpsc::Sender<Job>,
    /// Photo requests in the server now, from their first byte.
    arriving: Arc<AtomicUsize>,
}

/// Counts a photo request as on its way to the worker while it lives.
#[derive(Debug)]
pub struct Arriving(Arc<AtomicUsize>);

impl Drop for Arriving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Job {
    model: Arc<dyn ActorRecognizer>,
    bytes: Vec<u8>,
    abandon: Abandon,
    /// Held until the answer is sent: admission counts the photo in work.
    _turn: Turn,
    reply: oneshot::Sender<Result<ActorReport, ApiError>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("model", &self.model.info().name)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl PhotoWorker {
    /// Starts the worker's thread; it ends when the last clone is dropped.
    pub fn start(settings: BatchSettings, metrics: Arc<Metrics>) -> Self {
        let (jobs, inbox) = mpsc::channel();
        let arriving = Arc::new(AtomicUsize::new(0));
        let counter = arriving.clone();
        std::thread::Builder::new()
            .name("starcast-photos".into())
            .spawn(move || run(inbox, settings, counter, metrics))
            .expect("the photo worker's thread starts");
        PhotoWorker { jobs, arriving }
    }

    /// Marks a photo request as coming, so a batch being gathered waits
    /// for it; hold the guard for the whole request.
    pub fn arriving(&self) -> Arriving {
        self.arriving.fetch_add(1, Ordering::SeqCst);
        Arriving(self.arriving.clone())
    }

    /// Decodes and recognises one photo with `model`, holding `turn` until
    /// the answer is ready. The work is skipped once `abandon` is raised.
    pub async fn recognize(
        &self,
        model: Arc<dyn ActorRecognizer>,
        bytes: Vec<u8>,
        abandon: Abandon,
        turn: Turn,
    ) -> Result<ActorReport, ApiError> {
        let (reply, answer) = oneshot::channel();
        let stopped = ModelError::new(
            model.info().name.clone(),
            "recognition stopped unexpectedly: try again, or with another photo",
        );
        let job = Job {
            model,
            bytes,
            abandon,
            _turn: turn,
            reply,
        };
        self.jobs.send(job).map_err(|_| ApiError::Abandoned)?;
        answer.await.map_err(|_| ApiError::Model(stopped))?
    }
}

/// Gathers and decodes batches; their forward passes run on a thread of
/// their own, one batch behind, so the next batch decodes while one is in
/// its forward pass (whose single-threaded steps leave cores idle).
fn run(
    inbox: mpsc::Receiver<Job>,
    settings: BatchSettings,
    arriving: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
) {
    let (to_forward, decoded) = mpsc::sync_channel::<Decoded>(1);
    let answering = Arc::new(AtomicUsize::new(0));
    let forwarding = answering.clone();
    let forward = std::thread::Builder::new()
        .name("starcast-forward".into())
        .spawn(move || {
            for batch in decoded {
                let photos = batch.jobs.len();
                // A model that panics fails its batch's requests, not the worker.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    answer(batch, &metrics)
                }));
                if ran.is_err() {
                    tracing::error!("recognising a batch of photos panicked; its requests failed");
                }
                forwarding.fetch_sub(photos, Ordering::SeqCst);
            }
        })
        .expect("the forward pass's thread starts");
    let mut carried = None;
    while let Some(batch) = gather(&inbox, &mut carried, settings, &arriving, &answering) {
        let photos = batch.len();
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decode(batch, settings.max_pixels)
        }));
        let Ok(decoded) = decoded else {
            tracing::error!("decoding a batch of photos panicked; its requests failed");
            continue;
        };
        answering.fetch_add(photos, Ordering::SeqCst);
        if to_forward.send(decoded).is_err() {
            break;
        }
    }
    drop(to_forward);
    let _ = forward.join();
}

/// The next batch: jobs for one model, at most `max_batch`, waiting up to
/// `wait` for more while other photo requests are on their way (in the
/// server, and neither in this batch nor among the `answering` ones) when
/// the model batches. A job for another model is carried over to start the
/// next batch. `None` once the server is gone.
fn gather(
    inbox: &mpsc::Receiver<Job>,
    carried: &mut Option<Job>,
    settings: BatchSettings,
    arriving: &AtomicUsize,
    answering: &AtomicUsize,
) -> Option<Vec<Job>> {
    let first = match carried.take() {
        Some(job) => job,
        None => inbox.recv().ok()?,
    };
    let batches = first.model.batching().is_some();
    let mut batch = vec![first];
    let until = Instant::now() + settings.wait;
    while batch.len() < settings.max_batch {
        let job = match inbox.try_recv() {
            Ok(job) => job,
            Err(mpsc::TryRecvError::Disconnected) => break,
            // A model that runs photos one by one gains nothing by
            // waiting; the photos already here still decode side by side.
            Err(mpsc::TryRecvError::Empty) if !batches => break,
            Err(mpsc::TryRecvError::Empty) => {
                let left = until.saturating_duration_since(Instant::now());
                let coming = arriving.load(Ordering::SeqCst);
                let here = batch.len() + answering.load(Ordering::SeqCst);
                if coming <= here || left.is_zero() {
                    break;
                }
                match inbox.recv_timeout(left) {
                    Ok(job) => job,
                    Err(_) => break,
                }
            }
        };
        if !Arc::ptr_eq(&job.model, &batch[0].model) {
            *carried = Some(job);
            break;
        }
        batch.push(job);
    }
    Some(batch)
}

/// A photo decoded (and, for a batching model, made its input), or why not.
enum Prepared {
    Input {
        input: candle_core::Tensor,
        width: u32,
        height: u32,
    },
    Answered(Result<ActorReport, ApiError>),
}

/// A batch decoded, waiting for its forward pass.
struct Decoded {
    jobs: Vec<Job>,
    prepared: Vec<Prepared>,
    model: Arc<dyn ActorRecognizer>,
    started: Instant,
}

/// Decodes the batch's photos on rayon's pool, each made its network's
/// input (or answered, for a model that does not batch).
fn decode(jobs: Vec<Job>, max_pixels: u64) -> Decoded {
    let started = Instant::now();
    let model = jobs[0].model.clone();
    let prepared = jobs
        .par_iter()
        .map(|job| {
            // One photo that panics its decoder or model fails alone.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                prepare(job, model.as_ref(), max_pixels, started)
            }))
            .unwrap_or_else(|_| {
                let stopped = ModelError::new(model.info().name.clone(), "recognition panicked");
                Prepared::Answered(Err(ApiError::Model(stopped)))
            })
        })
        .collect();
    Decoded {
        jobs,
        prepared,
        model,
        started,
    }
}

/// Runs a decoded batch's inputs through one forward pass and answers
/// every job.
fn answer(batch: Decoded, metrics: &Metrics) {
    let Decoded {
        jobs,
        prepared,
        model,
        started,
    } = batch;
    let inputs: Vec<_> = prepared
        .iter()
        .filter_map(|p| match p {
            Prepared::Input { input, .. } => Some(input.clone()),
            Prepared::Answered(_) => None,
        })
        .collect();
    if model.batching().is_some() && !inputs.is_empty() {
        metrics.observe_batch(inputs.len());
    }
    let mut recognitions = match model.batching() {
        Some(batching) if !inputs.is_empty() => batching
            .recognize_inputs(&inputs)
            .map(|r| r.into_iter().map(Ok).collect::<Vec<_>>())
            .unwrap_or_else(|e| inputs.iter().map(|_| Err(copy(&e))).collect()),
        _ => Vec::new(),
    }
    .into_iter();
    let name = model_label(model.as_ref());
    for (job, prepared) in jobs.into_iter().zip(prepared) {
        let answer = match prepared {
            Prepared::Answered(answer) => answer,
            Prepared::Input { width, height, .. } => recognitions
                .next()
                .expect("one recognition per input")
                .map(|recognition| ActorReport {
                    recognition,
                    width,
                    height,
                    model: name.clone(),
                    elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
                })
                .map_err(ApiError::from),
        };
        // A client that left no longer takes the answer; nothing to do.
        let _ = job.reply.send(answer);
    }
}

/// The model an answer names: its name and version.
fn model_label(model: &dyn ActorRecognizer) -> String {
    let info = model.info();
    format!("{} {}", info.name, info.version)
}

fn prepare(job: &Job, model: &dyn ActorRecognizer, max_pixels: u64, started: Instant) -> Prepared {
    if job.abandon.abandoned() {
        return Prepared::Answered(Err(ApiError::Abandoned));
    }
    let photo = match decode_photo_within(&job.bytes, max_pixels) {
        Ok(photo) => photo.image,
        Err(e) => return Prepared::Answered(Err(e.into())),
    };
    let (width, height) = (photo.width(), photo.height());
    let Some(batching) = model.batching() else {
        let report = |recognition: Recognition| ActorReport {
            recognition,
            width,
            height,
            model: model_label(model),
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        return Prepared::Answered(model.recognize(&photo).map(report).map_err(Into::into));
    };
    match batching.input(&photo) {
        Ok(input) => Prepared::Input {
            input,
            width,
            height,
        },
        Err(e) => Prepared::Answered(Err(e.into())),
    }
}

/// A batch's failure, told to each of its photos.
fn copy(error: &ModelError) -> ModelError {
    ModelError::new(error.model.clone(), error.reason.clone())
}
