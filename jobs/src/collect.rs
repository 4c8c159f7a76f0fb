//! `starcast collect horoscopes|photos`: data from the web for the models.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::step_metrics;
use starcast_pipeline::horoscopes::{SourceOutcome, Sources, collect_horoscopes};
use starcast_pipeline::photos::{DownloadSettings, Endpoints, collect_photos};

#[derive(Debug, clap::Args)]
pub struct HoroscopesArgs {
    /// The sources file: each site's URLs, CSS selectors, encoding.
    #[arg(long, default_value = "pipeline/sources.toml")]
    pub sources: PathBuf,
    /// Where `raw/date=YYYY-MM-DD/<source>.csv` goes: a local folder or
    /// `s3://bucket/prefix`.
    #[arg(long, env = "STARCAST_STORE", default_value = "data")]
    pub store: String,
    /// The day the horoscopes are for, YYYY-MM-DD; today when absent.
    #[arg(long)]
    pub date: Option<chrono::NaiveDate>,
}

/// Collects every source; fails only when every source failed.
pub fn horoscopes(args: HoroscopesArgs) -> anyhow::Result<ExitCode> {
    let sources = Sources::read(&args.sources)?;
    let date = args
        .date
        .unwrap_or_else(|| chrono::Local::now().date_naive());
    let outcomes = collect_horoscopes(&sources, &args.store, date)
        .with_context(|| format!("could not collect into {}", args.store))?;
    let mut collected = 0;
    for (name, outcome) in &outcomes {
        match outcome {
            SourceOutcome::Collected { rows, location } => {
                collected += 1;
                println!("{name:>16}  {rows:>5} rows  {location}");
            }
            SourceOutcome::Failed(reason) => println!("{name:>16}  failed  {reason}"),
        }
    }
    println!(
        "{collected} of {} sources collected for {date}",
        outcomes.len()
    );
    let rows: usize = outcomes
        .iter()
        .map(|(_, outcome)| match outcome {
            SourceOutcome::Collected { rows, .. } => *rows,
            SourceOutcome::Failed(_) => 0,
        })
        .sum();
    step_metrics::report(&[
        ("sources_collected", collected as f64),
        ("sources_failed", (outcomes.len() - collected) as f64),
        ("rows", rows as f64),
    ])?;
    Ok(if collected == 0 && !outcomes.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Debug, clap::Args)]
pub struct PhotosArgs {
    /// The actor's name, as a search would be typed.
    #[arg(long)]
    pub actor: String,
    /// How many photos the actor's folder should hold.
    #[arg(long, default_value_t = 50)]
    pub count: usize,
    /// The dataset folder; photos go to `<out>/<actor>/`.
    #[arg(long, default_value = "data/datasets/actors")]
    pub out: PathBuf,
    /// Downloads at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub concurrency: u16,
    /// DuckDuckGo's address; empty to skip it.
    #[arg(
        long,
        env = "STARCAST_DUCKDUCKGO_URL",
        default_value = "https://duckduckgo.com"
    )]
    pub duckduckgo: String,
    /// The Wikimedia Commons API; empty to skip it.
    #[arg(
        long,
        env = "STARCAST_WIKIMEDIA_URL",
        default_value = "https://commons.wikimedia.org/w/api.php"
    )]
    pub wikimedia: String,
}

/// Downloads what is new for one actor and reports it.
pub fn photos(args: PhotosArgs) -> anyhow::Result<ExitCode> {
    let endpoints = Endpoints {
        duckduckgo: Some(args.duckduckgo).filter(|u| !u.is_empty()),
        wikimedia: Some(args.wikimedia).filter(|u| !u.is_empty()),
    };
    let settings = DownloadSettings {
        count: args.count,
        concurrency: usize::from(args.concurrency),
        ..DownloadSettings::default()
    };
    let progress = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos}/{len} photos {wide_bar} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let report = collect_photos(&args.actor, &args.out, &endpoints, &settings, &progress)
        .with_context(|| format!("could not collect photos of {}", args.actor))?;
    progress.finish_and_clear();
    for failure in &report.search_failures {
        println!("search failed: {failure}");
    }
    for (url, reason) in &report.failed {
        println!("skipped {url}: {reason}");
    }
    println!(
        "{} found, {} already there, {} added to {}",
        report.found,
        report.already_had,
        report.added,
        args.out.join(&args.actor).display()
    );
    Ok(ExitCode::SUCCESS)
}
