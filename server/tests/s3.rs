//! `process horoscopes` from and to S3: the real CLI against a real
//! S3-compatible server (moto, from PyPI, installed by
//! `scripts/setup.sh --test`) listening on loopback.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BUCKET: &str = "horoscopes";

struct Moto {
    child: Child,
    address: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_server() -> PathBuf {
    std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/starcast-tools/moto-venv/bin/moto_server")
        })
}

fn start_moto() -> Moto {
    let binary = moto_server();
    assert!(
        binary.is_file(),
        "{} is missing: run scripts/setup.sh --test (it installs moto from PyPI)",
        binary.display()
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let moto = Moto {
        child,
        address: format!("127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(&moto.address).is_err() {
        assert!(Instant::now() < deadline, "moto did not start within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

/// One plain HTTP/1.1 request (moto takes unsigned writes); the status.
fn http(address: &str, method: &str, path: &str, body: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(address).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    String::from_utf8_lossy(&response[9..12]).parse().unwrap()
}

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
        .env("AWS_ENDPOINT", format!("http://{}", moto.address))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "starcast-test")
        .env("AWS_SECRET_ACCESS_KEY", "starcast-test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap()
}

#[test]
fn raw_rows_on_s3_become_a_processed_file_on_s3() {
    let moto = start_moto();
    let status = http(&moto.address, "PUT", &format!("/{BUCKET}"), b"");
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
        let status = http(
            &moto.address,
            "PUT",
            &format!("/{BUCKET}/{key}"),
            body.as_bytes(),
        );
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
