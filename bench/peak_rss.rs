//! The process's peak resident memory, shared by the bench binaries of
//! every crate (each includes this file with `#[path]`).

/// VmHWM from /proc/self/status, in megabytes (NaN where there is none).
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
