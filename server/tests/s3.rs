//! `process horoscopes` from and to S3: the real CLI against a real
//! S3-compatible server (moto, from PyPI, installed by
//! `scripts/setup.sh --test`) listening on loopback.

mod common;

use std::process::Command;

use common::moto::Moto;

const BUCKET: &str = "horoscopes";

fn long(word: &str) -> String {
    let mut text = String::new();
    while text.chars().count() < 340 {
        text += word;
        text += " ";
    }
    text.trim_end().to_string()
}

fn process(moto: &Moto, input: &str, output: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args([
            "process",
            "horoscopes",
            "--input",
            input,
            "--output",
            output,
        ])
        .envs(moto.env())
        .output()
        .unwrap()
}

#[test]
fn raw_rows_on_s3_become_a_processed_file_on_s3() {
    let moto = Moto::start();
    let (status, _) = moto.http("PUT", &format!("/{BUCKET}"), b"");
    assert_eq!(status, 200, "creating the bucket");
    let day1 = format!(
        "date,sign,text,source\n2026-11-21,Овен,\"{}\",site-a\n2026-11-21,Гороскоп на сегодня,x,site-a\n",
        long("Удача")
    );
    let day2 = format!(
        "date,sign,text,source\n2026-11-22,♌,\"{}\",site-b\n2026-11-22,Лев,\"{}\",site-b\n",
        long("Сила"),
        long("Сила")
    );
    for (key, body) in [
        ("raw/date=2026-11-21/site-a.csv", &day1),
        ("raw/date=2026-11-22/site-b.csv", &day2),
    ] {
        let (status, _) = moto.http("PUT", &format!("/{BUCKET}/{key}"), body.as_bytes());
        assert_eq!(status, 200, "uploading {key}");
    }

    let run = process(
        &moto,
        &format!("s3://{BUCKET}/raw"),
        &format!("s3://{BUCKET}/processed/horoscopes.csv"),
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("2  rows kept"), "{stdout}");
    // Objects are private to the signed writer: read the result back
    // through the CLI too (the rules leave processed rows as they are).
    let local = tempfile::tempdir().unwrap();
    let back = local.path().join("back.csv");
    let run = process(
        &moto,
        &format!("s3://{BUCKET}/processed/horoscopes.csv"),
        back.to_str().unwrap(),
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&back).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "date,sign,text,source");
    assert!(
        lines[1].starts_with("2026-11-21,aries,Удача Удача"),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with("2026-11-22,leo,Сила"), "{}", lines[2]);

    let run = process(
        &moto,
        &format!("s3://{BUCKET}/raw"),
        &format!("s3://{BUCKET}/processed/horoscopes.parquet"),
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let run = process(&moto, "s3://no-such-bucket/raw", "out.csv");
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("could not process s3://no-such-bucket/raw"),
        "{stderr}"
    );
}
