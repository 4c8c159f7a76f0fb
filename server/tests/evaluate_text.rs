//! `starcast evaluate` on the packaged SmolLM2 model: perplexity of held-out
//! horoscopes (fluent text scores lower than the same words reversed), and
//! the generation figures per sampling setting (diversity through
//! all-MiniLM-L6-v2) and the reading check of the day's horoscopes, as
//! JSON and HTML.

use std::path::Path;
use std::process::Command;

const FLUENT: &str = "Today the stars favour patient work. A conversation with a friend brings a new idea, and a small risk at work pays off by the evening.";

fn csv(rows: &[&str]) -> String {
    let mut text = "date,sign,text,source\n".to_string();
    for row in rows {
        text += &format!("2026-11-20,Leo,\"{row}\",test\n");
    }
    text
}

fn evaluate(data: &Path, extra: &[&str]) -> serde_json::Value {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models/smollm2-135m-instruct");
    let output = Command::new(env!("CARGO_BIN_EXE_starcast"))
        .arg("evaluate")
        .arg(&model)
        .arg("--data")
        .arg(data)
        .args(["--json", "--settings", "0.6:0.7"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}: run scripts/fetch-defaults.sh data",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn perplexity_prefers_fluent_text_and_samples_are_measured() {
    let dir = tempfile::tempdir().unwrap();
    let fluent = dir.path().join("fluent.csv");
    std::fs::write(&fluent, csv(&[FLUENT])).unwrap();
    let mut words: Vec<&str> = FLUENT.split(' ').collect();
    words.reverse();
    let shuffled = dir.path().join("shuffled.csv");
    std::fs::write(&shuffled, csv(&[&words.join(" ")])).unwrap();

    let html = dir.path().join("report.html");
    let embedder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models/all-minilm-l6-v2");
    let report = evaluate(
        &fluent,
        &[
            "--samples",
            "2",
            "--html",
            html.to_str().unwrap(),
            "--embedder",
            embedder.to_str().unwrap(),
            "--reading-days",
            "1",
        ],
    );
    let fluent_perplexity = report["perplexity"].as_f64().unwrap();
    assert!(fluent_perplexity > 1.0, "{report}");
    assert_eq!(report["held_out_texts"], 1);
    let setting = &report["settings"][0];
    assert_eq!(setting["samples"], 2);
    let diversity = setting["diversity"].as_f64().unwrap();
    assert!(diversity > 0.0 && diversity < 1.0, "{report}");
    assert_eq!(setting["within_length"], 1.0, "{report}");
    assert!(setting["mean_seconds"].as_f64().unwrap() > 0.0);
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(html.contains("distinct-2"), "{html}");
    // The reading check: the day's horoscope of each of the 12 signs.
    let reading = &report["reading"];
    assert_eq!(reading["samples"], 12, "{report}");
    assert_eq!(reading["language"], "en");
    let failed: u64 = reading["failed"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let passed = reading["passed"].as_u64().unwrap();
    assert!(passed <= 12 && (passed == 12 || failed > 0), "{report}");
    assert!(html.contains("reading check:"), "{html}");

    let reversed = evaluate(&shuffled, &["--samples", "0", "--reading-days", "0"]);
    assert!(reversed.get("reading").is_none(), "{reversed}");
    let reversed_perplexity = reversed["perplexity"].as_f64().unwrap();
    assert!(
        fluent_perplexity * 3.0 < reversed_perplexity,
        "fluent {fluent_perplexity} vs reversed {reversed_perplexity}"
    );
}
