//! The allocator `starcast` runs with (server/src/main.rs), shared by the
//! bench binaries of every crate (each includes this file with `#[path]`),
//! so that their figures are those of the program people run. The bench
//! scripts run them through `as_starcast` (scripts/lib.sh), which sets the
//! options `starcast` sets for itself at start.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
