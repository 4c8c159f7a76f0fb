//! Horoscope data: processing raw collected rows into a training set.

mod process;
mod rules;

pub use process::{ProcessError, input_files, process_horoscopes, process_horoscopes_at};
pub use rules::{Counts, FEWER_THAN, MORE_THAN, RawRecord, Record, Rules, clean_text};
