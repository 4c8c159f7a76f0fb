//! The daily loop inside the server: collect -> process horoscopes ->
//! train -> evaluate -> promote the horoscope model, and the same for the
//! actor model when its photos changed.
//! Each step is a `starcast` subcommand run as a child process (what cron
//! or Airflow would run, and a crash in a step can't take the server down)
//! in a process group of its own, killed whole when the step runs past its
//! timeout or the run is dropped; steps are retried, runs never overlap
//! (not even across two servers on one data folder: a lock file), children
//! get no admin token, and every run is recorded in the records database
//! that every replica shares, under its data folder's runner id.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use croner::Cron;
use starcast_api::{PipelineRun, RunStatus, StepRun, Trigger};
use starcast_pipeline::dataset::fingerprint;
use starcast_pipeline::records::{Records, RecordsError};
use starcast_pipeline::registry::{Registry, Task};
use starcast_pipeline::runs::RunRecords;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::defaults;
use crate::step_metrics;

/// How much of a step's output a run keeps.
const LOG_TAIL_CHARS: usize = 4_000;
/// How many runs the Pipeline page lists.
pub const LISTED_RUNS: u32 = 20;

/// When a step has nothing to do.
#[derive(Clone, Debug)]
pub enum Guard {
    Always,
    /// Retrain only when the photos differ from those the served version
    /// was trained on.
    DatasetChanged {
        dataset: PathBuf,
        registry: Registry,
    },
    /// Check the served actor version against the photos users flagged
    /// and labelled, when there are any and the registry serves a version.
    FlaggedPhotos {
        dataset: PathBuf,
        registry: Registry,
    },
}

impl Guard {
    /// Why the step can be skipped, if it can.
    fn skip_reason(&self) -> Option<String> {
        match self {
            Guard::Always => None,
            Guard::DatasetChanged { dataset, registry } => {
                if !dataset.is_dir() {
                    return Some(format!("no dataset at {}", dataset.display()));
                }
                let served = registry.serving(Task::Actors).ok().flatten()?;
                let current = fingerprint(dataset).ok()?;
                (served.lineage.dataset_hash == current)
                    .then(|| format!("the photos are those {} was trained on", served.id))
            }
            Guard::FlaggedPhotos { dataset, registry } => {
                let labelled = std::fs::read_dir(dataset)
                    .map(|actors| actors.flatten().any(|actor| actor.path().is_dir()))
                    .unwrap_or(false);
                if !labelled {
                    return Some("no flagged photo says who is in it".into());
                }
                match registry.serving(Task::Actors) {
                    Ok(Some(_)) => None,
                    _ => Some("the registry serves no actor version".into()),
                }
            }
        }
    }
}

/// One step: a name, the subcommand's arguments, what it waits for.
#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    pub args: Vec<String>,
    /// A step that must have succeeded first.
    pub after: Option<String>,
    pub guard: Guard,
}

/// What the server knows and no step needs.
const WITHHELD_FROM_STEPS: [&str; 1] = ["STARCAST_ADMIN_TOKEN"];
/// How long a step may run before its process group is killed.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("a pipeline run is already going: wait for it to finish")]
    AlreadyRunning,
    #[error("could not lock or mark the data folder's runs in {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not record the run: {0}")]
    Record(#[from] RecordsError),
}

/// The steps, where runs are recorded, and the lock that keeps runs apart.
#[derive(Clone)]
pub struct Pipeline {
    program: PathBuf,
    steps: Arc<Vec<Step>>,
    /// Holds the lock file and the runner id: one per data folder.
    folder: PathBuf,
    runs: RunRecords,
    busy: Arc<Mutex<()>>,
    retries: u32,
    retry_delay: Duration,
    step_timeout: Duration,
    /// Settings every step gets beyond the server's own environment: kept
    /// off the command line, which the Pipeline page shows.
    step_env: Arc<Vec<(String, String)>>,
}

fn text_args(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

impl Pipeline {
    /// Runs `steps` with `program`, locking `folder` while a run goes and
    /// recording runs in `records` under the folder's runner id.
    pub fn new(
        program: PathBuf,
        steps: Vec<Step>,
        folder: PathBuf,
        records: Records,
    ) -> Result<Self, PipelineError> {
        let runner = runner_id(&folder).map_err(|source| PipelineError::Folder {
            path: folder.clone(),
            source,
        })?;
        Ok(Pipeline {
            program,
            steps: Arc::new(steps),
            runs: RunRecords::new(records, runner),
            folder,
            busy: Arc::new(Mutex::new(())),
            retries: 2,
            retry_delay: Duration::from_secs(30),
            step_timeout: DEFAULT_STEP_TIMEOUT,
            step_env: Arc::default(),
        })
    }

    /// Gives every step these environment variables (a records URL that
    /// may hold a password, say).
    pub fn with_step_env(self, env: Vec<(String, String)>) -> Self {
        Pipeline {
            step_env: Arc::new(env),
            ..self
        }
    }

    /// Kills a step's process group when it runs longer than `timeout`.
    pub fn with_step_timeout(self, timeout: Duration) -> Self {
        Pipeline {
            step_timeout: timeout,
            ..self
        }
    }

    /// Closes the records of runs that were going when the server last
    /// stopped: they end as failed, the step that was running failed and
    /// the steps after it skipped, each saying why. Call it before any run
    /// starts.
    pub async fn close_interrupted(&self) -> Result<(), PipelineError> {
        let stopped = "the server stopped during this step";
        for mut run in self.runs.running_here().await? {
            run.status = RunStatus::Failed;
            for step in &mut run.steps {
                match step.status {
                    RunStatus::Running => {
                        step.status = RunStatus::Failed;
                        step.log = format!("{}\n{stopped}", step.log).trim().to_string();
                    }
                    RunStatus::Waiting => {
                        step.status = RunStatus::Skipped;
                        step.log = "the server stopped before this step".into();
                    }
                    _ => {}
                }
            }
            tracing::warn!(id = %run.id, "a pipeline run was cut short by a restart; recorded as failed");
            self.runs.keep(&run).await?;
        }
        Ok(())
    }

    /// Retries after a failure, and the pause before each.
    pub fn with_retries(self, retries: u32, delay: Duration) -> Self {
        Pipeline {
            retries,
            retry_delay: delay,
            ..self
        }
    }

    /// The daily loop over a data folder, run by `program` (this binary),
    /// its runs recorded in `records`.
    pub fn daily(
        program: PathBuf,
        data: &Path,
        registry: &Registry,
        sources: &Path,
        records: Records,
    ) -> Result<Self, PipelineError> {
        let path = |p: &Path| p.display().to_string();
        let raw = data.join("raw");
        let processed = data.join("processed").join("horoscopes.parquet");
        let actors = data.join("datasets").join("actors");
        let flagged = data.join("datasets").join("flagged");
        let steps = vec![
            Step {
                name: "collect horoscopes".into(),
                args: text_args(&[
                    "collect",
                    "horoscopes",
                    "--sources",
                    &path(sources),
                    "--store",
                    &path(data),
                ]),
                after: None,
                guard: Guard::Always,
            },
            Step {
                name: "process horoscopes".into(),
                args: text_args(&[
                    "process",
                    "horoscopes",
                    "--input",
                    &path(&raw),
                    "--output",
                    &path(&processed),
                ]),
                after: Some("collect horoscopes".into()),
                guard: Guard::Always,
            },
            Step {
                name: "train, evaluate and promote the horoscope model".into(),
                args: text_args(&[
                    "train",
                    "horoscope",
                    "--data",
                    &path(&processed),
                    "--base",
                    &path(&data.join("models").join(defaults::HOROSCOPE_MODEL)),
                    "--registry",
                    &registry.to_string(),
                    "--checkpoint",
                    &path(&data.join("checkpoints").join("horoscope")),
                ]),
                after: Some("process horoscopes".into()),
                guard: Guard::Always,
            },
            Step {
                name: "train, evaluate and promote the actor model".into(),
                args: text_args(&[
                    "train",
                    "actors",
                    "--data",
                    &path(&actors),
                    "--registry",
                    &registry.to_string(),
                    "--checkpoint",
                    &path(&data.join("checkpoints").join("actors")),
                ]),
                after: None,
                guard: Guard::DatasetChanged {
                    dataset: actors,
                    registry: registry.clone(),
                },
            },
            Step {
                name: "gather flagged photos".into(),
                args: text_args(&[
                    "dataset",
                    "flags",
                    "--data",
                    &path(data),
                    "--out",
                    &path(&flagged),
                ]),
                after: None,
                guard: Guard::Always,
            },
            Step {
                name: "evaluate the served actor model on flagged photos".into(),
                args: text_args(&[
                    "evaluate",
                    "--served",
                    Task::Actors.as_str(),
                    "--registry",
                    &registry.to_string(),
                    "--data",
                    &path(&flagged),
                    "--skip-unknown-actors",
                ]),
                after: Some("gather flagged photos".into()),
                guard: Guard::FlaggedPhotos {
                    dataset: flagged.clone(),
                    registry: registry.clone(),
                },
            },
        ];
        Pipeline::new(program, steps, data.join("runs"), records)
    }

    /// Starts a run in the background, unless one is going; answers with
    /// the run as it starts.
    pub async fn start(&self, trigger: Trigger) -> Result<PipelineRun, PipelineError> {
        let turn = self
            .busy
            .clone()
            .try_lock_owned()
            .map_err(|_| PipelineError::AlreadyRunning)?;
        let folder_lock = self.lock_folder()?;
        let run = self.new_run(trigger);
        self.runs.keep(&run).await?;
        let pipeline = self.clone();
        let started = run.clone();
        tokio::spawn(async move {
            let run = pipeline.finish(started, turn, &folder_lock).await;
            drop(folder_lock);
            tracing::info!(id = %run.id, status = ?run.status, seconds = run.seconds, "pipeline run finished");
        });
        Ok(run)
    }

    fn new_run(&self, trigger: Trigger) -> PipelineRun {
        let started = Utc::now();
        PipelineRun {
            id: started.format("%Y%m%dT%H%M%S%.3fZ").to_string(),
            trigger,
            started,
            seconds: 0.0,
            status: RunStatus::Running,
            steps: self
                .steps
                .iter()
                .map(|step| StepRun {
                    name: step.name.clone(),
                    command: format!("starcast {}", step.args.join(" ")),
                    status: RunStatus::Waiting,
                    attempts: 0,
                    seconds: 0.0,
                    log: String::new(),
                    metrics: Default::default(),
                })
                .collect(),
        }
    }

    async fn finish(
        &self,
        mut run: PipelineRun,
        _turn: OwnedMutexGuard<()>,
        folder_lock: &std::fs::File,
    ) -> PipelineRun {
        let clock = Instant::now();
        for (index, step) in self.steps.iter().enumerate() {
            let blocked = step.after.as_ref().filter(|needed| {
                !run.steps
                    .iter()
                    .any(|s| &s.name == *needed && s.status == RunStatus::Succeeded)
            });
            let guard = step.guard.clone();
            let skip = match blocked {
                Some(needed) => Some(format!("'{needed}' did not succeed")),
                None => tokio::task::spawn_blocking(move || guard.skip_reason())
                    .await
                    .unwrap_or(None),
            };
            match skip {
                Some(reason) => {
                    run.steps[index].status = RunStatus::Skipped;
                    run.steps[index].log = reason;
                }
                None => self.run_step(step, &mut run, index, folder_lock).await,
            }
            run.seconds = clock.elapsed().as_secs_f64();
            self.keep(&run).await;
        }
        run.status = if run.steps.iter().any(|s| s.status == RunStatus::Failed) {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        self.keep(&run).await;
        run
    }

    /// Runs a step's subcommand, retrying a failure; the run's record
    /// shows each try as it starts. The step holds the data folder's lock
    /// too (see [`share_lock`]).
    async fn run_step(
        &self,
        step: &Step,
        run: &mut PipelineRun,
        index: usize,
        folder_lock: &std::fs::File,
    ) {
        let clock = Instant::now();
        run.steps[index].status = RunStatus::Running;
        loop {
            run.steps[index].attempts += 1;
            let attempt = run.steps[index].attempts;
            self.keep(run).await;
            tracing::info!(step = %step.name, attempt, "pipeline step starting");
            let figures = tempfile::NamedTempFile::new().map(|f| f.into_temp_path());
            let mut command = tokio::process::Command::new(&self.program);
            command
                .args(&step.args)
                .kill_on_drop(true)
                .process_group(0)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            for secret in WITHHELD_FROM_STEPS {
                command.env_remove(secret);
            }
            command.envs(self.step_env.iter().map(|(name, value)| (name, value)));
            share_lock(&mut command, folder_lock);
            if let Ok(path) = &figures {
                command.env(step_metrics::ENV, path);
            }
            let (succeeded, log) = match command.spawn() {
                Ok(child) => self.wait_for(child).await,
                Err(error) => (
                    false,
                    format!("could not start {}: {error}", self.program.display()),
                ),
            };
            let record = &mut run.steps[index];
            record.log = tail(&log);
            record.metrics = figures
                .as_ref()
                .map(|path| step_metrics::read(path))
                .unwrap_or_default();
            record.seconds = clock.elapsed().as_secs_f64();
            if succeeded || attempt > self.retries {
                record.status = if succeeded {
                    RunStatus::Succeeded
                } else {
                    RunStatus::Failed
                };
                return;
            }
            tracing::warn!(step = %step.name, attempt, "pipeline step failed; retrying");
            self.keep(run).await;
            tokio::time::sleep(self.retry_delay).await;
        }
    }

    /// A step's outcome and output; past the timeout its whole process
    /// group is killed (a training's own children with it).
    async fn wait_for(&self, child: tokio::process::Child) -> (bool, String) {
        let mut group = ProcessGroup(child.id());
        let waited = tokio::time::timeout(self.step_timeout, child.wait_with_output()).await;
        match waited {
            Ok(Ok(output)) => {
                // Its leader is gone: the group's id may be reused.
                group.0 = None;
                let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
                log.push_str(&String::from_utf8_lossy(&output.stderr));
                (output.status.success(), log)
            }
            Ok(Err(error)) => (false, format!("could not read the step's output: {error}")),
            Err(_) => (
                false,
                format!(
                    "the step ran longer than {} s and was stopped",
                    self.step_timeout.as_secs()
                ),
            ),
        }
    }

    /// Takes `<folder>/.lock`: one run at a time per data folder, whichever
    /// server starts it.
    fn lock_folder(&self) -> Result<std::fs::File, PipelineError> {
        let error = |source| PipelineError::Folder {
            path: self.folder.clone(),
            source,
        };
        std::fs::create_dir_all(&self.folder).map_err(error)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.folder.join(".lock"))
            .map_err(error)?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(PipelineError::AlreadyRunning),
            Err(std::fs::TryLockError::Error(source)) => Err(error(source)),
        }
    }

    /// Records the run as it stands; a run goes on when its record can't be written.
    async fn keep(&self, run: &PipelineRun) {
        if let Err(error) = self.runs.keep(run).await {
            tracing::error!(%error, "could not record the pipeline run");
        }
    }

    /// The latest runs of every replica, newest first; unreadable records
    /// are skipped, and an unreachable database lists none.
    pub async fn history(&self, limit: u32) -> Vec<PipelineRun> {
        self.runs.latest(limit).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "could not read the pipeline runs");
            Vec::new()
        })
    }
}

/// The data folder's runner id, made once (kept in `<folder>/runner`): it
/// tells this folder's runs from other replicas' in the shared records.
fn runner_id(folder: &Path) -> std::io::Result<String> {
    let file = folder.join("runner");
    if let Ok(id) = std::fs::read_to_string(&file) {
        return Ok(id.trim().to_string());
    }
    std::fs::create_dir_all(folder)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let id = format!("{:x}-{:x}", nanos, std::process::id());
    let written = tempfile::NamedTempFile::new_in(folder)?;
    std::fs::write(written.path(), &id)?;
    written.as_file().sync_all()?;
    // A link appears whole or not at all; another server on this folder
    // may have made its own first.
    match std::fs::hard_link(written.path(), &file) {
        Ok(()) => Ok(id),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&file)?.trim().to_string())
        }
        Err(e) => Err(e),
    }
}

/// Lets the step inherit the data folder's lock file, open: the lock is
/// the open file's, so it holds while any process has it open. A server
/// killed with `kill -9` leaves its step running, and a restarted server
/// must not start a run beside it; its lock then lasts as long as the step.
fn share_lock(command: &mut tokio::process::Command, folder_lock: &std::fs::File) {
    use std::os::fd::AsRawFd;
    let fd = folder_lock.as_raw_fd();
    // SAFETY: between fork and exec the closure only calls fcntl, which
    // is async-signal-safe, on a descriptor the parent holds open.
    unsafe {
        command.pre_exec(move || {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A step's process group, killed whole when dropped: on a timeout, or when
/// the run itself is dropped (the server stopping).
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let Some(id) = self.0.and_then(|id| libc::pid_t::try_from(id).ok()) else {
            return;
        };
        // SAFETY: killpg only sends a signal; the group is the step's own
        // (process_group(0) made the child its leader).
        unsafe {
            libc::killpg(id, libc::SIGKILL);
        }
    }
}

fn tail(log: &str) -> String {
    let count = log.chars().count();
    log.chars()
        .skip(count.saturating_sub(LOG_TAIL_CHARS))
        .collect()
}

/// Parses a cron schedule (`minute hour day month weekday`, UTC).
pub fn parse_schedule(text: &str) -> Result<Cron, String> {
    text.parse::<Cron>().map_err(|e| {
        format!(
            "'{text}' is not a cron schedule ({e}): write e.g. \"0 3 * * *\" for 03:00 UTC daily"
        )
    })
}

/// Starts a run at every time of the schedule, for as long as the server runs.
pub async fn follow_schedule(pipeline: Pipeline, schedule: Cron) {
    loop {
        let now = Utc::now();
        let Ok(next) = schedule.find_next_occurrence(&now, false) else {
            tracing::warn!("the schedule has no next time; the scheduler stops");
            return;
        };
        tracing::info!(next = %next, "next pipeline run");
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        if let Err(error) = pipeline.start(Trigger::Schedule).await {
            tracing::warn!(%error, "the scheduled run did not start");
        }
    }
}
