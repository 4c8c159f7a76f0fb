//! The model card a version carries to the Hub: the `README.md` whose front
//! matter the Hub lists and filters a model by (library, task, base model,
//! licence, tags, evaluation results) and whose text says what the model
//! knows and how to serve it.

use std::fmt::Write;

use serde_json::Value;
use starcast_model::text::ADAPTER_CONFIG;

use crate::registry::{Task, Version};

/// What the card says beyond the version's own record.
#[derive(Clone, Debug)]
pub struct CardFacts<'a> {
    /// The Hub repo, `user/name`.
    pub repo: &'a str,
    pub task: Task,
    /// The Hub repo the model was fine-tuned from, when it has one.
    pub base_model: Option<&'a str>,
    /// The licence identifier, as the Hub knows them (`apache-2.0`, `mit`, `other`).
    pub license: &'a str,
}

/// A YAML scalar: JSON's quoting is valid YAML and escapes everything.
fn scalar(text: &str) -> String {
    Value::from(text).to_string()
}

/// The Hub's name for a figure of `metrics.json`, and how people read it.
fn metric_type(name: &str) -> (&str, &str) {
    match name {
        "accuracy" => ("accuracy", "accuracy"),
        "macro_f1" => ("f1", "macro F1"),
        "loss" => ("loss", "validation loss"),
        "perplexity" => ("perplexity", "held-out perplexity"),
        other => (other, other),
    }
}

/// The figures worth reporting, in the card's order.
fn reported(version: &Version) -> Vec<(&str, f64)> {
    ["accuracy", "macro_f1", "loss", "perplexity"]
        .into_iter()
        .filter_map(|name| Some((name, version.metrics.get(name)?.as_f64()?)))
        .collect()
}

/// The `README.md` for `version` pushed as `facts.repo`.
pub fn model_card(version: &Version, facts: &CardFacts) -> String {
    let adapter = version.path.join(ADAPTER_CONFIG).is_file();
    let (pipeline_tag, dataset_type, option) = match facts.task {
        Task::Actors => ("image-classification", "imagefolder", "--actors-model"),
        Task::Horoscope => ("text-generation", "text", "--horoscope-model"),
    };
    let library = if adapter { "peft" } else { "starcast" };
    let mut card = String::from("---\n");
    let _ = writeln!(card, "library_name: {library}");
    let _ = writeln!(card, "pipeline_tag: {pipeline_tag}");
    if let Some(base) = facts.base_model {
        let _ = writeln!(card, "base_model: {}", scalar(base));
    }
    let _ = writeln!(card, "license: {}", scalar(facts.license));
    let _ = writeln!(card, "tags:\n- starcast\n- {}", facts.task);
    if adapter {
        card.push_str("- lora\n");
    }
    let figures = reported(version);
    if !figures.is_empty() {
        let _ = writeln!(card, "model-index:\n- name: {}", scalar(facts.repo));
        let _ = writeln!(card, "  results:\n  - task:\n      type: {pipeline_tag}");
        let _ = writeln!(
            card,
            "    dataset:\n      name: {}\n      type: {dataset_type}",
            scalar(&version.lineage.dataset)
        );
        card.push_str("    metrics:\n");
        for (name, value) in &figures {
            let (kind, label) = metric_type(name);
            let _ = writeln!(
                card,
                "    - type: {kind}\n      name: {}\n      value: {value}",
                scalar(label)
            );
        }
    }
    card.push_str("---\n\n");

    let _ = writeln!(card, "# {}\n", facts.repo);
    let what = match facts.task {
        Task::Actors => "recognises actors in photos",
        Task::Horoscope => "writes daily horoscopes",
    };
    let _ = writeln!(
        card,
        "A Starcast model that {what}: version {} of its registry, trained {}.\n",
        version.id,
        version.lineage.created.format("%Y-%m-%d")
    );
    if !version.labels.is_empty() {
        let _ = writeln!(
            card,
            "## Labels\n\nIn class order: {}.\n",
            version.labels.join(", ")
        );
    }
    if !figures.is_empty() {
        card.push_str("## Evaluation\n\nOn the data held out from training:\n\n| figure | value |\n|---|---|\n");
        for (name, value) in &figures {
            let _ = writeln!(card, "| {} | {value:.4} |", metric_type(name).1);
        }
        card.push('\n');
    }
    let _ = writeln!(
        card,
        "## Serve it\n\n```sh\nstarcast serve {option} hf://{}\n```\n",
        facts.repo
    );
    let lineage = &version.lineage;
    let _ = writeln!(
        card,
        "## Where it came from\n\n- data: `{}` (fingerprint `{}`)\n- base model: `{}`\n- trained by: {}",
        lineage.dataset,
        lineage.dataset_hash,
        facts.base_model.unwrap_or(&lineage.base_model),
        lineage.code_revision
    );
    card
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::registry::Lineage;

    fn version(metrics: serde_json::Value, labels: &[&str]) -> Version {
        Version {
            id: "v3".into(),
            path: std::env::temp_dir().join("no-such-starcast-version"),
            lineage: Lineage {
                created: Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap(),
                dataset: "data/datasets/\"actors\"".into(),
                dataset_hash: "sha256:ab".into(),
                base_model: "data/models/mobilenet-v2-imagenet".into(),
                parameters: serde_json::json!({}),
                code_revision: "starcast 0.1.0".into(),
            },
            metrics: metrics.as_object().unwrap().clone(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn front_matter(card: &str) -> &str {
        card.strip_prefix("---\n")
            .and_then(|rest| rest.split_once("\n---\n"))
            .map(|(matter, _)| matter)
            .unwrap()
    }

    #[test]
    fn an_actor_card_lists_its_labels_figures_and_how_to_serve_it() {
        let version = version(
            serde_json::json!({"accuracy": 0.9, "macro_f1": 0.85, "loss": 0.3}),
            &["Ada", "Bea"],
        );
        let facts = CardFacts {
            repo: "ada/actors",
            task: Task::Actors,
            base_model: None,
            license: "mit",
        };
        let card = model_card(&version, &facts);
        let matter = front_matter(&card);
        assert!(matter.contains("library_name: starcast\n"), "{matter}");
        assert!(matter.contains("pipeline_tag: image-classification\n"));
        assert!(matter.contains("license: \"mit\"\n"));
        assert!(!matter.contains("base_model"), "no Hub repo to name");
        assert!(matter.contains("- type: f1\n      name: \"macro F1\"\n      value: 0.85\n"));
        assert!(
            matter.contains(r#"name: "data/datasets/\"actors\"""#),
            "quoted: {matter}"
        );
        assert!(card.contains("In class order: Ada, Bea."));
        assert!(card.contains("starcast serve --actors-model hf://ada/actors"));
        assert!(card.contains("| macro F1 | 0.8500 |"));
    }

    #[test]
    fn a_card_without_figures_has_no_model_index() {
        let version = version(serde_json::json!({}), &[]);
        let facts = CardFacts {
            repo: "ada/house-style",
            task: Task::Horoscope,
            base_model: Some("HuggingFaceTB/SmolLM2-135M-Instruct"),
            license: "apache-2.0",
        };
        let card = model_card(&version, &facts);
        let matter = front_matter(&card);
        assert!(!matter.contains("model-index"), "{matter}");
        assert!(matter.contains("pipeline_tag: text-generation\n"));
        assert!(matter.contains("base_model: \"HuggingFaceTB/SmolLM2-135M-Instruct\"\n"));
        assert!(!card.contains("## Labels"));
        assert!(card.contains("--horoscope-model hf://ada/house-style"));
    }
}
