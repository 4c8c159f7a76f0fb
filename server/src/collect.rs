//! `starcast collect horoscopes`: today's horoscopes from the declared sites.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use starcast_pipeline::horoscopes::{SourceOutcome, Sources, collect_horoscopes};

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
    Ok(if collected == 0 && !outcomes.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
