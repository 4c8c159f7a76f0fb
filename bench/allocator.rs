//! The allocator `starcast` runs with (server/src/main.rs), shared by the
//! bench binaries of every crate (each includes this file with `#[path]`),
//! so that their figures are those of the program people run. The bench
//! scripts set `MIMALLOC_PURGE_DELAY=-1`, the option `starcast` sets for
//! itself at start.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
