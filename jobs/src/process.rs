//! `starcast process horoscopes`: collected raw rows -> a training set.

use std::time::Instant;

use anyhow::Context;

use crate::step_metrics;
use starcast_pipeline::horoscopes::{FEWER_THAN, MORE_THAN, process_horoscopes_at};

#[derive(Debug, clap::Args)]
pub struct HoroscopesArgs {
    /// A raw CSV file, or a folder of them (`raw/date=YYYY-MM-DD/<source>.csv`),
    /// with the columns date, sign, text and source: a local path or
    /// `s3://bucket/prefix` (AWS_* variables as usual).
    #[arg(long)]
    pub input: String,
    /// The processed file, `.csv` (header date,sign,text,source) or
    /// `.parquet`: a local path or `s3://bucket/key`.
    #[arg(long)]
    pub output: String,
}

/// Runs the rules and prints how many rows each removed.
pub fn horoscopes(args: HoroscopesArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let counts = process_horoscopes_at(&args.input, &args.output)
        .with_context(|| format!("could not process {}", args.input))?;
    let seconds = start.elapsed().as_secs_f64();
    println!("{:>12}  rows read", counts.read);
    println!(
        "{:>12}  a. removed: an empty date, sign, text or source",
        counts.empty_field
    );
    println!(
        "{:>12}  b. removed: the sign is none of the 12",
        counts.unknown_sign
    );
    println!("{:>12}  c. (texts cleaned in place)", "");
    println!(
        "{:>12}  d. removed: the same date, sign and text came before",
        counts.duplicate
    );
    println!(
        "{:>12}  e. removed: not more than {MORE_THAN} and fewer than {FEWER_THAN} characters",
        counts.wrong_length
    );
    println!("{:>12}  rows kept in {}", counts.kept, args.output);
    println!(
        "{seconds:.2} s, {:.0} rows/s",
        counts.read as f64 / seconds.max(1e-9)
    );
    step_metrics::report(&[
        ("rows_read", counts.read as f64),
        ("rows_kept", counts.kept as f64),
        ("duplicates", counts.duplicate as f64),
        ("wrong_length", counts.wrong_length as f64),
    ])
}
