//! Starcast's batch work: the logic of every subcommand but `serve`, and
//! the daily loop that runs those subcommands as child processes. The
//! binary (`server/src/main.rs`) parses the command line and calls in
//! here; the web server reaches only the daily loop and `--device`.

pub mod collect;
pub mod dataset;
pub mod defaults;
pub mod device;
pub mod generate;
pub mod models;
pub mod predict;
pub mod process;
pub mod scheduler;
pub mod step_metrics;
pub mod train;
