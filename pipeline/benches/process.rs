//! `process horoscopes` throughput and memory on a generated raw CSV of a
//! given size: Russian texts of 250-550 characters, signs written every
//! way collectors see them, 10% repeated rows and a few empty fields.
//!
//! Usage: cargo bench -p starcast-pipeline --bench process -- [MEGABYTES]
//! Prints one JSON object per output format.

use std::io::Write;
use std::time::Instant;

use starcast_pipeline::horoscopes::process_horoscopes;

#[path = "../../bench/peak_rss.rs"]
mod peak_rss;
use peak_rss::peak_rss_mb;

const SIGNS: [&str; 8] = [
    "Овен",
    "♉ Телец",
    "gemini",
    "РАК",
    "Лев ♌️",
    "virgo",
    "Весы",
    "Гороскоп на сегодня",
];
const WORDS: [&str; 12] = [
    "Сегодня",
    "звёзды",
    "советуют",
    "не",
    "спешить",
    "с",
    "решениями,",
    "а",
    "день",
    "принесёт",
    "удачу",
    "—\u{a0}«вам».",
];

/// A cheap deterministic generator, so every run processes the same file.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn main() {
    let megabytes: u64 = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&raw).unwrap());
    writeln!(file, "date,sign,text,source").unwrap();
    let (mut written, mut rows, mut state) = (0u64, 0u64, 0x2545_f491_4f6c_dd1du64);
    let mut previous = String::new();
    while written < megabytes * 1_000_000 {
        let line = if rows % 10 == 9 {
            previous.clone()
        } else {
            let target = 250 + (next(&mut state) % 300) as usize;
            let mut text = String::new();
            while text.chars().count() < target {
                text += WORDS[(next(&mut state) % WORDS.len() as u64) as usize];
                text.push(if next(&mut state).is_multiple_of(9) {
                    '\n'
                } else {
                    ' '
                });
            }
            let sign = SIGNS[(next(&mut state) % SIGNS.len() as u64) as usize];
            let day = 1 + next(&mut state) % 28;
            let source = if rows.is_multiple_of(50) {
                ""
            } else {
                "site-a"
            };
            format!("2026-02-{day:02},{sign},\"{text}\",{source}\n")
        };
        file.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        rows += 1;
        previous = line;
    }
    file.flush().unwrap();
    drop(file);
    for extension in ["csv", "parquet"] {
        let output = dir.path().join(format!("out.{extension}"));
        let start = Instant::now();
        let counts = process_horoscopes(&raw, &output).unwrap();
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({
                "input_mb": written as f64 / 1e6,
                "output": extension,
                "rows_read": counts.read,
                "rows_kept": counts.kept,
                "seconds": seconds,
                "rows_per_s": counts.read as f64 / seconds,
                "mb_per_s": written as f64 / 1e6 / seconds,
                "peak_rss_mb": peak_rss_mb(),
            })
        );
    }
}
