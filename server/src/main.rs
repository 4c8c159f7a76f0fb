//! `starcast`: the web app and its pipeline, one binary. This file parses
//! the command line and dispatches: `serve` to this crate, every other
//! subcommand to starcast-jobs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use starcast_jobs::generate::{self, HoroscopeArgs};
use starcast_jobs::models::{self, EvaluateArgs, ModelsCommand, RegistryArgs};
use starcast_jobs::predict::{self, ActorsArgs};
use starcast_jobs::process::{self, HoroscopesArgs};
use starcast_jobs::{collect, dataset, train};
use starcast_server::export::{ExportArgs, export};
use starcast_server::serve::{ServeArgs, serve};
use tracing_subscriber::EnvFilter;

/// Training allocates and drops tensors of up to a hundred megabytes every
/// layer. glibc serves each from a fresh mmap (its threshold stops at
/// 32 MB), so every one was page-faulted and zeroed anew: a fifth of full
/// fine-tuning's time went to the kernel. mimalloc reuses the memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h; libmimalloc-sys names the options
/// on either side of it (14 and 16) but not this one.
const MIMALLOC_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Starcast: recognise actors in photos and write daily horoscopes, with
/// models served by candle.
#[derive(Debug, Parser)]
#[command(name = "starcast", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web app and the REST API.
    Serve(ServeArgs),
    /// Write the app as a static Hugging Face Space (free on every
    /// account): the pages, with both models run in the visitor's browser.
    ExportStatic(ExportArgs),
    /// Generate with a model from the command line.
    #[command(subcommand)]
    Generate(Generate),
    /// Recognise with a model from the command line.
    #[command(subcommand)]
    Predict(Predict),
    /// Collect data from the web.
    #[command(subcommand)]
    Collect(Collect),
    /// Turn collected data into training data.
    #[command(subcommand)]
    Process(Process),
    /// Actor photo datasets.
    #[command(subcommand)]
    Dataset(Dataset),
    /// Fine-tune a model on a dataset and register it as a new version.
    #[command(subcommand)]
    Train(Train),
    /// A model's accuracy, per-class precision and recall and confusion
    /// matrix on labelled photos.
    Evaluate(EvaluateArgs),
    /// The model registry: versions, what is served, promotion and rollback.
    Models {
        #[command(flatten)]
        registry: RegistryArgs,
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum Train {
    /// The actor classifier, from a pretrained ImageNet network.
    Actors(train::ActorsArgs),
    /// The horoscope language model, on processed horoscopes: LoRA
    /// adapters or every weight.
    Horoscope(train::horoscope::HoroscopeArgs),
}

#[derive(Debug, Subcommand)]
enum Dataset {
    /// Unpack the lab's dataset.zip (or copy a folder) as <actor>/<photo>.
    Import(dataset::ImportArgs),
    /// Quarantine undecodable, duplicate, faceless, blurred and mislabelled photos.
    Clean(dataset::CleanArgs),
    /// Flagged photos whose users said who is in them, as an evaluation set.
    Flags(dataset::FlagsArgs),
}

#[derive(Debug, Subcommand)]
enum Collect {
    /// Today's horoscopes from the sites of a sources file, one CSV per site.
    Horoscopes(collect::HoroscopesArgs),
    /// Photos of an actor from DuckDuckGo and Wikimedia Commons.
    Photos(collect::PhotosArgs),
}

#[derive(Debug, Subcommand)]
enum Process {
    /// Clean, map signs, deduplicate and length-filter collected horoscopes.
    Horoscopes(HoroscopesArgs),
}

#[derive(Debug, Subcommand)]
enum Predict {
    /// Say who is in each photo (JSON lines with --json).
    Actors(ActorsArgs),
}

#[derive(Debug, Subcommand)]
enum Generate {
    /// Write a horoscope for a sign and a day.
    Horoscope(HoroscopeArgs),
}

fn main() -> ExitCode {
    keep_candles_pool_idle();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info")),
        )
        .init();
    match cli.command {
        Command::Train(_) => keep_freed_memory(),
        Command::Serve(_) => no_huge_pages(),
        _ => {}
    }
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", explain(&error));
            ExitCode::FAILURE
        }
    }
}

/// candle hands its element-wise operations to a pool of spinning threads
/// beside rayon's, which run the matrix products and our kernels; on a few
/// cores the spin-waits take the cores the products need. Without that
/// pool, on 2 cores (alternating runs of the benches): LoRA training ran
/// 1.3x faster, resnet18 answered a photo in 41-58 ms against 50-69,
/// horoscope generation was level or faster, actor training level within
/// the noise. A CANDLE_NUM_THREADS the user set wins.
fn keep_candles_pool_idle() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: main calls this before any other thread exists.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}

/// mimalloc hands freed memory back to the system a while after it is freed,
/// and the next tensor of that size faults it in and zeroes it again: LoRA
/// training ran 11% slower than on glibc that way (four alternating runs),
/// and level with it when the memory is kept, for a peak 21% higher. Only
/// training keeps it: a server that kept what loading a model freed stayed
/// at its loading peak for good.
fn keep_freed_memory() {
    // SAFETY: sets one of mimalloc's options to a value it documents (-1:
    // never purge); options may be set at any time, from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MIMALLOC_PURGE_DELAY, -1) };
}

/// mimalloc asks for transparent huge pages for its memory, and a server's
/// photos and activations come and go in it faster than it is handed back:
/// each 2 MB page any of them touched stayed resident. Without them, under
/// `bench/serving.sh` (two runs each way), the server's peak was 312-343
/// MB against 345-363, and p99 236-246 ms against 296-350. The processes
/// of the daily loop's steps inherit the setting.
fn no_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes one flag and reads no memory.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        // An old or locked-down kernel: the server runs as it did.
        let error = std::io::Error::last_os_error();
        tracing::warn!("transparent huge pages stay on: {error}");
    }
}

/// The error and its causes in one line. Library errors often quote their
/// cause already, so a cause whose words are there is not repeated.
fn explain(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message = format!("{message}: {cause}");
        }
    }
    message
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            tokio::runtime::Runtime::new()?.block_on(serve(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ExportStatic(args) => {
            tokio::runtime::Runtime::new()?.block_on(export(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(Generate::Horoscope(args)) => {
            generate::horoscope(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Predict(Predict::Actors(args)) => predict::actors(args),
        Command::Collect(Collect::Horoscopes(args)) => collect::horoscopes(args),
        Command::Collect(Collect::Photos(args)) => collect::photos(args),
        Command::Dataset(Dataset::Import(args)) => {
            dataset::import(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dataset(Dataset::Clean(args)) => {
            dataset::clean(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dataset(Dataset::Flags(args)) => {
            dataset::flags(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Process(Process::Horoscopes(args)) => {
            process::horoscopes(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Train(Train::Actors(args)) => {
            train::actors(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Train(Train::Horoscope(args)) => {
            train::horoscope::horoscope(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Evaluate(args) => {
            models::evaluate(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Models { registry, command } => {
            models::models(registry, command)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
