//! Horoscope data: collecting raw rows from sites, and processing them
//! into a training set.

mod collect;
mod process;
mod read;
mod rules;

pub use collect::{CollectError, CollectedRow, Source, SourceOutcome, Sources, collect_horoscopes};
pub use process::{ProcessError, input_files, process_horoscopes, process_horoscopes_at};
pub use read::{read_processed_at, records_fingerprint};
pub use rules::{Counts, FEWER_THAN, MORE_THAN, RawRecord, Record, Rules, clean_text};
