//! all-MiniLM-L6-v2 (scripts/fetch-defaults.sh data --with-evaluation) reads
//! meaning: two wordings of one horoscope are closer than an unrelated
//! sentence, and a batch gives the same vectors as one text at a time.

use std::path::Path;

use starcast_model::text::{SentenceEmbedder, cosine};

#[test]
fn paraphrases_are_closer_than_unrelated_sentences() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models/all-minilm-l6-v2");
    let embedder = SentenceEmbedder::load(&folder)
        .unwrap_or_else(|e| panic!("{e}: run scripts/fetch-defaults.sh data --with-evaluation"));
    let texts = [
        "Today the stars favour patient work and quiet plans.",
        "The stars reward careful, patient work today.",
        "Boil the pasta for nine minutes in salted water.",
    ]
    .map(String::from);
    let vectors = embedder.embed(&texts).unwrap();
    assert_eq!(vectors.len(), 3);
    assert_eq!(vectors[0].len(), 384);
    let norm: f32 = vectors[0].iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    let paraphrase = cosine(&vectors[0], &vectors[1]);
    let unrelated = cosine(&vectors[0], &vectors[2]);
    assert!(
        paraphrase > 0.6 && unrelated < 0.2,
        "{paraphrase} vs {unrelated}"
    );
    let alone = embedder.embed(&texts[2..]).unwrap();
    let same = cosine(&alone[0], &vectors[2]);
    assert!(same > 0.9999, "padding changed the vector: {same}");
}
