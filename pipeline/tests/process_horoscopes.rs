//! `process horoscopes` on CSV files laid out as collection writes them,
//! to CSV and to Parquet, read back with the parquet crate's own reader.

use std::fs;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::RowAccessor;
use starcast_pipeline::horoscopes::{Counts, ProcessError, process_horoscopes};

fn long(word: &str) -> String {
    let mut text = String::new();
    while text.chars().count() < 340 {
        text += word;
        text += " ";
    }
    text.trim_end().to_string()
}

/// Two days from two sites, with a row for every rule to remove.
fn raw_store(root: &Path) {
    let day1 = root.join("raw/date=2026-11-21");
    let day2 = root.join("raw/date=2026-11-22");
    fs::create_dir_all(&day1).unwrap();
    fs::create_dir_all(&day2).unwrap();
    let mut a = csv::Writer::from_path(day1.join("site-a.csv")).unwrap();
    a.write_record(["date", "sign", "text", "source"]).unwrap();
    a.write_record([
        "2026-11-21",
        "♈ Овен",
        &long("Звёзды\nблагосклонны,"),
        "site-a",
    ])
    .unwrap();
    a.write_record([
        "2026-11-21",
        "Гороскоп на сегодня",
        &long("Текст"),
        "site-a",
    ])
    .unwrap();
    a.write_record(["2026-11-21", "Телец", "", "site-a"])
        .unwrap();
    a.flush().unwrap();
    let mut b = csv::Writer::from_path(day1.join("site-b.csv")).unwrap();
    // Columns in another order, as another site's collector may write them.
    b.write_record(["source", "text", "date", "sign"]).unwrap();
    b.write_record([
        "site-b",
        &long("Звёзды благосклонны,"),
        "2026-11-21",
        "ARIES",
    ])
    .unwrap();
    b.write_record(["site-b", "Короткий текст.", "2026-11-21", "leo"])
        .unwrap();
    b.flush().unwrap();
    let mut c = csv::Writer::from_path(day2.join("site-a.csv")).unwrap();
    c.write_record(["date", "sign", "text", "source"]).unwrap();
    c.write_record(["2026-11-22", "Lion ♌", &long("Courage"), "site-a"])
        .unwrap();
    c.write_record(["2026-11-22", "Leo ♌️", &long("Courage"), "site-a"])
        .unwrap();
    c.flush().unwrap();
}

fn expected_counts() -> Counts {
    Counts {
        read: 7,
        empty_field: 1,
        unknown_sign: 1,
        duplicate: 2,
        wrong_length: 1,
        kept: 2,
    }
}

#[test]
fn raw_csv_files_become_one_clean_csv() {
    let dir = tempfile::tempdir().unwrap();
    raw_store(dir.path());
    let output = dir.path().join("processed/horoscopes.csv");
    let counts = process_horoscopes(&dir.path().join("raw"), &output).unwrap();
    assert_eq!(counts, expected_counts());
    let text = fs::read_to_string(&output).unwrap();
    assert_eq!(text.lines().next(), Some("date,sign,text,source"));
    let rows: Vec<csv::StringRecord> = csv::Reader::from_path(&output)
        .unwrap()
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][1], "aries");
    assert!(
        rows[0][2].starts_with("Звёзды благосклонны, Звёзды"),
        "{}",
        &rows[0][2]
    );
    assert_eq!(&rows[0][3], "site-a", "the first of the duplicates is kept");
    assert_eq!((&rows[1][0], &rows[1][1]), ("2026-11-22", "leo"));
    assert!(!dir.path().join("processed/horoscopes.csv.partial").exists());
}

#[test]
fn parquet_output_holds_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    raw_store(dir.path());
    let csv_out = dir.path().join("out.csv");
    let parquet_out = dir.path().join("out.parquet");
    process_horoscopes(&dir.path().join("raw"), &csv_out).unwrap();
    let counts = process_horoscopes(&dir.path().join("raw"), &parquet_out).unwrap();
    assert_eq!(counts, expected_counts());
    let reader = SerializedFileReader::new(fs::File::open(&parquet_out).unwrap()).unwrap();
    let from_parquet: Vec<Vec<String>> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            (0..4).map(|i| row.get_string(i).unwrap().clone()).collect()
        })
        .collect();
    let from_csv: Vec<Vec<String>> = csv::Reader::from_path(&csv_out)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(from_parquet, from_csv);
}

#[test]
fn bad_inputs_and_outputs_are_named_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    fs::create_dir_all(&raw).unwrap();
    let output = dir.path().join("out.csv");
    assert!(matches!(
        process_horoscopes(&raw, &output),
        Err(ProcessError::NoInput(_))
    ));
    fs::write(raw.join("bad.csv"), "day,zodiac,body\n1,2,3\n").unwrap();
    let err = process_horoscopes(&raw, &output).unwrap_err().to_string();
    assert!(
        err.contains("needs the columns date, sign, text and source"),
        "{err}"
    );
    assert!(!output.exists());
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no partial file is left"
    );
    let err = process_horoscopes(&raw, &dir.path().join("out.json")).unwrap_err();
    assert!(matches!(err, ProcessError::OutputFormat(_)));
}
