//! `starcast process horoscopes`: raw CSV files in, one processed CSV or
//! Parquet file out, streaming: rows are read, judged and written one at a
//! time (Parquet in row groups), so a gigabyte of raw CSV takes little
//! memory beyond the duplicate check's 16 bytes per kept row.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::rules::{Counts, Record, Rules};
use crate::store::{self, Location, StoreError};

/// Rows per Parquet row group: enough for good compression, little memory.
const ROW_GROUP: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("could not read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a usable CSV file: {reason}")]
    Csv { path: PathBuf, reason: String },
    #[error("{0} holds no CSV files")]
    NoInput(PathBuf),
    #[error("the file {0} must end in .csv or .parquet")]
    OutputFormat(PathBuf),
    #[error("could not write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `process_horoscopes` between storage locations: local paths, or
/// `s3://bucket/prefix` for the input folder and the output file.
pub fn process_horoscopes_at(input: &str, output: &str) -> Result<Counts, ProcessError> {
    let input = Location::parse(input)?;
    let output = Location::parse(output)?;
    let scratch = tempfile::tempdir().map_err(|source| ProcessError::Read {
        path: std::env::temp_dir(),
        source,
    })?;
    let input_path = store::fetch(&input, ".csv", &scratch.path().join("input"))?;
    let output_path = match &output {
        Location::Local(path) => path.clone(),
        Location::Remote { .. } => scratch.path().join(output.file_name()),
    };
    let counts = process_horoscopes(&input_path, &output_path)?;
    store::publish(&output_path, &output)?;
    Ok(counts)
}

/// The CSV files an input names: the file itself, or every `.csv` under a
/// folder (as `collect horoscopes` lays them out), in path order.
pub fn input_files(input: &Path) -> Result<Vec<PathBuf>, ProcessError> {
    if input.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut folders = vec![input.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|source| ProcessError::Read {
            path: folder.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(ProcessError::NoInput(input.to_path_buf()));
    }
    Ok(files)
}

/// Where processed rows go.
trait Sink {
    fn push(&mut self, record: Record) -> Result<(), String>;
    fn finish(self: Box<Self>) -> Result<(), String>;
}

struct CsvSink(csv::Writer<BufWriter<File>>);

impl Sink for CsvSink {
    fn push(&mut self, record: Record) -> Result<(), String> {
        self.0.serialize(record).map_err(|e| e.to_string())
    }

    fn finish(mut self: Box<Self>) -> Result<(), String> {
        self.0.flush().map_err(|e| e.to_string())
    }
}

struct ParquetSink {
    writer: SerializedFileWriter<BufWriter<File>>,
    columns: [Vec<ByteArray>; 4],
}

impl ParquetSink {
    fn open(file: File) -> Result<Self, String> {
        let schema = parse_message_type(
            "message horoscope {
                REQUIRED BYTE_ARRAY date (UTF8);
                REQUIRED BYTE_ARRAY sign (UTF8);
                REQUIRED BYTE_ARRAY text (UTF8);
                REQUIRED BYTE_ARRAY source (UTF8);
            }",
        )
        .map_err(|e| e.to_string())?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let writer =
            SerializedFileWriter::new(BufWriter::new(file), Arc::new(schema), Arc::new(properties))
                .map_err(|e| e.to_string())?;
        Ok(ParquetSink {
            writer,
            columns: Default::default(),
        })
    }

    fn flush_group(&mut self) -> Result<(), String> {
        if self.columns[0].is_empty() {
            return Ok(());
        }
        let mut group = self.writer.next_row_group().map_err(|e| e.to_string())?;
        for values in &mut self.columns {
            let mut column = group
                .next_column()
                .map_err(|e| e.to_string())?
                .ok_or("the schema has fewer columns than a record")?;
            column
                .typed::<ByteArrayType>()
                .write_batch(values, None, None)
                .map_err(|e| e.to_string())?;
            column.close().map_err(|e| e.to_string())?;
            values.clear();
        }
        group.close().map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Sink for ParquetSink {
    fn push(&mut self, record: Record) -> Result<(), String> {
        let fields = [record.date, record.sign, record.text, record.source];
        for (column, value) in self.columns.iter_mut().zip(fields) {
            column.push(ByteArray::from(value.into_bytes()));
        }
        if self.columns[0].len() >= ROW_GROUP {
            self.flush_group()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), String> {
        self.flush_group()?;
        self.writer.close().map(|_| ()).map_err(|e| e.to_string())
    }
}

/// Processes every input file into `output` and says what each rule did.
/// The output is written beside its final name and renamed into place, so
/// a failed run leaves no half-written file.
pub fn process_horoscopes(input: &Path, output: &Path) -> Result<Counts, ProcessError> {
    let files = input_files(input)?;
    let parquet = match output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
    {
        Some(e) if e == "csv" => false,
        Some(e) if e == "parquet" => true,
        _ => return Err(ProcessError::OutputFormat(output.to_path_buf())),
    };
    let write_error = |reason: String| ProcessError::Write {
        path: output.to_path_buf(),
        reason,
    };
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| write_error(e.to_string()))?;
    }
    let partial = output.with_extension(format!(
        "{}.partial",
        output
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
    ));
    let file = File::create(&partial).map_err(|e| write_error(e.to_string()))?;
    let mut sink: Box<dyn Sink> = if parquet {
        Box::new(ParquetSink::open(file).map_err(write_error)?)
    } else {
        Box::new(CsvSink(csv::Writer::from_writer(BufWriter::new(file))))
    };
    let mut rules = Rules::default();
    let outcome = files.iter().try_for_each(|path| {
        let csv_error = |reason: String| ProcessError::Csv {
            path: path.clone(),
            reason,
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .map_err(|e| csv_error(e.to_string()))?;
        let headers = reader.headers().map_err(|e| csv_error(e.to_string()))?;
        if !["date", "sign", "text", "source"]
            .iter()
            .all(|h| headers.iter().any(|given| given.trim() == *h))
        {
            return Err(csv_error(format!(
                "its header is '{}'; it needs the columns date, sign, text and source",
                headers.iter().collect::<Vec<_>>().join(",")
            )));
        }
        for row in reader.deserialize() {
            let raw = row.map_err(|e| csv_error(e.to_string()))?;
            if let Some(record) = rules.apply(raw) {
                sink.push(record).map_err(write_error)?;
            }
        }
        Ok(())
    });
    let finished = outcome.and_then(|()| sink.finish().map_err(write_error));
    match finished {
        Ok(()) => {
            std::fs::rename(&partial, output).map_err(|e| write_error(e.to_string()))?;
            Ok(rules.counts())
        }
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}
