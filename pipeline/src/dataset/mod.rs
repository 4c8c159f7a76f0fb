//! Actor photo datasets: importing the lab's `dataset.zip`, and cleaning a
//! dataset the way the lab's student did by hand.

mod clean;
mod fingerprint;
mod import;

pub use clean::{
    CleanError, CleanSettings, Reason, Verdict, apply_verdicts, judge_dataset, quarantine_of,
    report_of,
};
pub use fingerprint::fingerprint;
pub use import::{ImportError, Imported, count_classes, import_dataset};
