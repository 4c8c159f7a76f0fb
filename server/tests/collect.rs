//! `collect horoscopes` against sites on loopback: a page per sign in
//! UTF-8, one windows-1251 page with every sign behind glyphs, a site that
//! is gone and one whose markup changed. The working sources are written,
//! the others reported, and a rerun of the day replaces its files.

mod common;

use std::process::Command;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use common::{loopback_listener, serve_in_background};

/// A text of 330-400 characters, as a real daily horoscope is.
fn long(sentence: &str) -> String {
    let mut text = sentence.to_string();
    while text.chars().count() < 330 {
        text = format!("{text} {sentence}");
    }
    text
}

async fn per_sign(Path(sign): Path<String>) -> impl IntoResponse {
    let page = format!(
        "<html><body><nav>menu</nav><article class=\"horoscope\"><h1>{sign}</h1>\
         <div class=\"text\"><p>{}</p><p>Удачи!</p></div></article></body></html>",
        long(&format!("Сегодня {sign} ждёт успех."))
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page)
}

async fn all_signs() -> impl IntoResponse {
    let mut page = String::from("<html><head><meta charset=\"windows-1251\"></head><body>");
    for (glyph, name) in [("♈", "Овен"), ("♉", "Телец"), ("♊", "Близнецы")] {
        page += &format!(
            "<section class=\"sign\"><h2>{glyph} {name}</h2><p>{}</p></section>",
            long(&format!("{name}, звёзды благосклонны."))
        );
    }
    page += "<section class=\"sign\"><h2>Гороскоп на сегодня</h2><p>Общий прогноз.</p></section></body></html>";
    // Glyphs don't exist in windows-1251: the page writes them as entities.
    let page = page
        .replace('♈', "&#9800;")
        .replace('♉', "&#9801;")
        .replace('♊', "&#9802;");
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&page);
    (
        [(header::CONTENT_TYPE, "text/html; charset=windows-1251")],
        bytes.into_owned(),
    )
}

fn start_sites() -> String {
    let app = Router::new()
        .route("/a/{sign}", get(per_sign))
        .route("/b", get(all_signs))
        .route("/gone", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/changed",
            get(|| async { "<html><body><p>redesigned</p></body></html>" }),
        );
    let (listener, base) = loopback_listener();
    serve_in_background(listener, app);
    base
}

fn starcast(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn sources_are_collected_reported_and_replaced() {
    let base = start_sites();
    let dir = tempfile::tempdir().unwrap();
    let sources = dir.path().join("sources.toml");
    std::fs::write(
        &sources,
        format!(
            r#"
[[source]]
name = "site-a"
urls = ["{base}/a/{{sign}}"]
item = "article.horoscope"
text = "div.text p"

[[source]]
name = "site-b"
urls = ["{base}/b"]
item = "section.sign"
sign = "h2"
text = "p"

[[source]]
name = "gone"
urls = ["{base}/gone"]
item = "article"
text = "p"

[[source]]
name = "changed"
urls = ["{base}/changed"]
item = "article.horoscope"
text = "p"
"#
        ),
    )
    .unwrap();
    let store = dir.path().join("store");
    // A run that crashed between writing and renaming left half a file.
    let day = store.join("raw/date=2026-11-22");
    std::fs::create_dir_all(&day).unwrap();
    std::fs::write(day.join("site-a.csv.partial"), "date,sign,te").unwrap();
    let args = [
        "collect",
        "horoscopes",
        "--sources",
        sources.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--date",
        "2026-11-22",
    ];
    for _ in 0..2 {
        let run = starcast(&args);
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            stdout.contains("2 of 4 sources collected for 2026-11-22"),
            "{stdout}"
        );
        assert!(stdout.contains("answered 404"), "{stdout}");
        assert!(stdout.contains("has the site changed?"), "{stdout}");
    }
    let read = |name: &str| -> Vec<csv::StringRecord> {
        csv::Reader::from_path(day.join(name))
            .unwrap()
            .records()
            .map(Result::unwrap)
            .collect()
    };
    let a = read("site-a.csv");
    assert_eq!(
        a.len(),
        12,
        "one row per sign, replaced by the rerun, not doubled"
    );
    assert_eq!(
        (&a[0][0], &a[0][1], &a[0][3]),
        ("2026-11-22", "aries", "site-a")
    );
    assert!(
        a[0][2].starts_with("Сегодня aries ждёт успех.") && a[0][2].ends_with("Удачи!"),
        "{}",
        &a[0][2]
    );
    let b = read("site-b.csv");
    assert_eq!(b.len(), 4);
    assert_eq!(
        &b[0][1], "♈ Овен",
        "windows-1251 decoded, entities kept as glyphs"
    );
    assert!(!day.join("gone.csv").exists() && !day.join("changed.csv").exists());
    assert_eq!(
        std::fs::read_dir(&day).unwrap().count(),
        2,
        "no partial files are left"
    );

    // The collected day goes straight into processing.
    let output = dir.path().join("processed.csv");
    let run = starcast(&[
        "process",
        "horoscopes",
        "--input",
        store.join("raw").to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}");
    assert!(stdout.contains("15  rows kept"), "{stdout}");
}
