//! Figures a subcommand reports to the pipeline run that started it. The
//! scheduler names a file in `STARCAST_STEP_METRICS` for each try of a
//! step; a subcommand with figures writes them there as a JSON object of
//! numbers, and the run's record shows them beside the step. Run by hand,
//! cron or Airflow, the variable is unset and nothing is written.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

pub const ENV: &str = "STARCAST_STEP_METRICS";

/// Writes `figures` for the pipeline run, when there is one.
pub fn report(figures: &[(&str, f64)]) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os(ENV) else {
        return Ok(());
    };
    let object: BTreeMap<&str, f64> = figures.iter().copied().collect();
    std::fs::write(&path, serde_json::to_string(&object)?)
        .with_context(|| format!("could not write the step's figures to {path:?} ({ENV})"))
}

/// The figures a step wrote; none when it wrote nothing readable.
pub fn read(path: &Path) -> BTreeMap<String, f64> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}
