//! Reading a processed horoscope file back (what training and evaluation
//! take): `.csv` or `.parquet`, a local path or `s3://bucket/key`.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::RowAccessor;
use sha2::{Digest, Sha256};

use super::process::ProcessError;
use super::rules::Record;
use crate::store::{self, Location};

/// Every row of a processed file, in file order.
pub fn read_processed_at(location: &str) -> Result<Vec<Record>, ProcessError> {
    let parsed = Location::parse(location)?;
    let name = parsed.file_name();
    let parquet = name.to_ascii_lowercase().ends_with(".parquet");
    if !parquet && !name.to_ascii_lowercase().ends_with(".csv") {
        return Err(ProcessError::OutputFormat(PathBuf::from(location)));
    }
    let scratch = tempfile::tempdir().map_err(|source| ProcessError::Read {
        path: std::env::temp_dir(),
        source,
    })?;
    let extension = if parquet { ".parquet" } else { ".csv" };
    let mut path = store::fetch(&parsed, extension, scratch.path())?;
    if path.is_dir() {
        path = path.join(&name);
    }
    if parquet {
        read_parquet(&path)
    } else {
        read_csv(&path)
    }
}

/// A SHA-256 of the rows, in order: equal hashes, same training data, as
/// the registry's lineage records it.
pub fn records_fingerprint(records: &[Record]) -> String {
    let mut hasher = Sha256::new();
    for record in records {
        for field in [&record.date, &record.sign, &record.text, &record.source] {
            hasher.update(field.as_bytes());
            hasher.update([0]);
        }
    }
    format!("{:x}", hasher.finalize())
}

fn read_csv(path: &Path) -> Result<Vec<Record>, ProcessError> {
    let csv_error = |reason: String| ProcessError::Csv {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(e.to_string()))?;
    reader
        .deserialize()
        .enumerate()
        .map(|(index, row)| row.map_err(|e| csv_error(format!("row {}: {e}", index + 2))))
        .collect()
}

fn read_parquet(path: &Path) -> Result<Vec<Record>, ProcessError> {
    let parquet_error = |reason: String| ProcessError::Csv {
        path: path.to_path_buf(),
        reason: format!("not a processed Parquet file: {reason}"),
    };
    let file = File::open(path).map_err(|source| ProcessError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| parquet_error(e.to_string()))?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| parquet_error(e.to_string()))?;
    rows.map(|row| {
        let row = row.map_err(|e| parquet_error(e.to_string()))?;
        let field = |index: usize| {
            row.get_string(index)
                .cloned()
                .map_err(|e| parquet_error(e.to_string()))
        };
        Ok(Record {
            date: field(0)?,
            sign: field(1)?,
            text: field(2)?,
            source: field(3)?,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::horoscopes::process_horoscopes;

    #[test]
    fn csv_and_parquet_read_back_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.csv");
        let text = "Today the stars favour patience: finish what you started, then rest. \
                    A friend brings news that makes the evening brighter than you expect, \
                    so keep your plans open and your phone on. Money matters look steady; \
                    avoid impulse buys and you will thank yourself at the end of the week. \
                    In love, a quiet word says more than a grand gesture tonight.";
        std::fs::write(
            &raw,
            format!("date,sign,text,source\n2026-11-22,leo,\"{text}\",site\n"),
        )
        .unwrap();
        let mut read = Vec::new();
        for name in ["out.csv", "out.parquet"] {
            let output = dir.path().join(name);
            process_horoscopes(&raw, &output).unwrap();
            read.push(read_processed_at(output.to_str().unwrap()).unwrap());
        }
        assert_eq!(read[0].len(), 1);
        assert_eq!(read[0], read[1]);
        assert_eq!(read[0][0].sign, "leo");
        assert_eq!(records_fingerprint(&read[0]), records_fingerprint(&read[1]));
        assert_ne!(records_fingerprint(&read[0]), records_fingerprint(&[]));
        let err = read_processed_at("rows.txt").unwrap_err();
        assert!(err.to_string().contains(".csv or .parquet"), "{err}");
    }
}
