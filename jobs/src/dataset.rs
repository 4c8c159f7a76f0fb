//! `starcast dataset import|clean`: the lab's photo dataset, made usable.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use starcast_model::faces::FaceTools;
use starcast_model::folder::Files;
use starcast_pipeline::FlagStore;
use starcast_pipeline::dataset::{
    CleanSettings, apply_verdicts, import_dataset, judge_dataset, quarantine_of, report_of,
};
use starcast_pipeline::flags;
use starcast_pipeline::records::{self, Records};
use starcast_pipeline::store::Location;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// `dataset.zip` as the lab made it, or a folder of `<actor>/<photo>`.
    pub source: PathBuf,
    /// The dataset folder to create (replaced if it exists).
    #[arg(long, default_value = "data/datasets/actors")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct FlagsArgs {
    /// The server's data folder: its records database (`records.db`) and
    /// flagged photos (`flags/`), unless --records or --flag-photos name others.
    #[arg(long, env = "STARCAST_DATA", default_value = "data")]
    pub data: PathBuf,
    /// The records database the server keeps its flags in, as `starcast
    /// serve --records` takes it.
    #[arg(long, env = "STARCAST_RECORDS", hide_env_values = true)]
    pub records: Option<String>,
    /// Where the server keeps flagged photos, as `starcast serve
    /// --flag-photos` takes it.
    #[arg(long, env = "STARCAST_FLAG_PHOTOS", value_parser = Location::parse)]
    pub flag_photos: Option<Location>,
    /// The evaluation set to write: `<actor>/<flag id>.<ext>`.
    #[arg(long, default_value = "data/datasets/flagged")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// The dataset folder: `<actor>/<photo>`.
    pub dataset: PathBuf,
    /// A face-gallery model folder, for its face detector and descriptor network.
    #[arg(long, default_value = "data/models/face-gallery")]
    pub faces: PathBuf,
    /// The smallest face side kept, in pixels.
    #[arg(long, default_value_t = CleanSettings::default().min_face)]
    pub min_face: u32,
    /// Only report; move nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let imported = import_dataset(&args.source, &args.out)
        .with_context(|| format!("could not import {}", args.source.display()))?;
    for (actor, photos) in &imported.classes {
        println!("{photos:>6}  {actor}");
    }
    println!(
        "{} actors imported into {}",
        imported.classes.len(),
        imported.target.display()
    );
    Ok(())
}

/// Flagged photos whose users said who is in them, as an evaluation set.
pub fn flags(args: FlagsArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let found = runtime.block_on(async {
        let url = args
            .records
            .unwrap_or_else(|| records::default_url(&args.data));
        let records = Records::open(&url).await?;
        let photos = args
            .flag_photos
            .unwrap_or_else(|| flags::default_photos(&args.data));
        let store = FlagStore::open(records, photos).await?;
        anyhow::Ok(store.export_labelled(&args.out).await?)
    })?;
    for (actor, photos) in &found.per_label {
        println!("{photos:>6}  {actor}");
    }
    println!(
        "{} flags in the review queue; {} labelled photos in {}; evaluate a model on them with `starcast evaluate MODEL --data {}`",
        found.queued,
        found.per_label.values().sum::<usize>(),
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

pub fn clean(args: CleanArgs) -> anyhow::Result<()> {
    let faces = FaceTools::load(&Files::Disk, &args.faces).with_context(|| {
        format!(
            "could not load the face model in {}: run scripts/fetch-defaults.sh data or pass --faces",
            args.faces.display()
        )
    })?;
    let settings = CleanSettings {
        min_face: args.min_face,
        ..CleanSettings::default()
    };
    let verdicts = judge_dataset(&args.dataset, &faces, &settings)?;
    let mut table: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for verdict in &verdicts {
        let kind = verdict.rejected.as_ref().map_or("kept", |r| r.kind());
        *table
            .entry(&verdict.actor)
            .or_default()
            .entry(kind)
            .or_default() += 1;
        if let Some(reason) = &verdict.rejected {
            println!("  {}: {reason}", verdict.path.display());
        }
    }
    for (actor, kinds) in &table {
        let counts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!("{actor:>24}  {}", counts.join(", "));
    }
    if args.dry_run {
        println!("dry run: nothing moved");
        return Ok(());
    }
    apply_verdicts(&args.dataset, &verdicts)?;
    println!(
        "rejected photos moved to {}; report: {}",
        quarantine_of(&args.dataset).display(),
        report_of(&args.dataset).display()
    );
    Ok(())
}
