//! How well a classifier does on labelled photos: accuracy, per-class
//! precision and recall, the confusion matrix. What `metrics.json` holds
//! and what the registry promotes on.

use serde::{Deserialize, Serialize};

/// One class's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Photos of this class in the evaluation set.
    pub support: usize,
}

/// A classifier's evaluation on one set of photos.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    pub accuracy: f64,
    /// The unweighted mean of the classes' F1 scores.
    pub macro_f1: f64,
    /// Mean cross-entropy, when the probabilities were known.
    pub loss: Option<f64>,
    pub examples: usize,
    pub classes: Vec<ClassMetrics>,
    /// `confusion[truth][predicted]`, in label order.
    pub confusion: Vec<Vec<usize>>,
}

impl ClassificationReport {
    /// The report for `(truth, predicted)` class indices over `labels`.
    pub fn new(labels: &[String], outcomes: &[(usize, usize)], loss: Option<f64>) -> Self {
        let n = labels.len();
        let mut confusion = vec![vec![0usize; n]; n];
        for &(truth, predicted) in outcomes {
            confusion[truth][predicted] += 1;
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let classes: Vec<ClassMetrics> = labels
            .iter()
            .enumerate()
            .map(|(c, label)| {
                let hits = confusion[c][c];
                let predicted: usize = confusion.iter().map(|row| row[c]).sum();
                let support: usize = confusion[c].iter().sum();
                let (precision, recall) = (ratio(hits, predicted), ratio(hits, support));
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassMetrics {
                    label: label.clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let correct = (0..n).map(|c| confusion[c][c]).sum();
        ClassificationReport {
            accuracy: ratio(correct, outcomes.len()),
            macro_f1: classes.iter().map(|c| c.f1).sum::<f64>() / n.max(1) as f64,
            loss,
            examples: outcomes.len(),
            classes,
            confusion,
        }
    }

    /// A named figure (`accuracy`, `macro_f1`, `loss`), what promotion compares.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "accuracy" => Some(self.accuracy),
            "macro_f1" => Some(self.macro_f1),
            "loss" => self.loss,
            _ => None,
        }
    }

    /// A self-contained HTML page: the figures, per-class metrics and the
    /// confusion matrix with rows as the truth.
    pub fn html(&self, title: &str) -> String {
        let escape = |text: &str| {
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut rows = String::new();
        for class in &self.classes {
            rows += &format!(
                "<tr><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>\n",
                escape(&class.label),
                class.precision,
                class.recall,
                class.f1,
                class.support
            );
        }
        let header: String = self
            .classes
            .iter()
            .map(|c| format!("<th>{}</th>", escape(&c.label)))
            .collect();
        let mut matrix = String::new();
        for (class, counts) in self.classes.iter().zip(&self.confusion) {
            let cells: String = counts.iter().map(|n| format!("<td>{n}</td>")).collect();
            matrix += &format!("<tr><th>{}</th>{cells}</tr>\n", escape(&class.label));
        }
        let loss = self
            .loss
            .map(|l| format!(", loss {l:.4}"))
            .unwrap_or_default();
        format!(
            r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style>
</head><body>
<h1>{title}</h1>
<p>accuracy {accuracy:.1}% on {examples} photos, macro F1 {macro_f1:.3}{loss}</p>
<h2>Per class</h2>
<table><tr><th>actor</th><th>precision</th><th>recall</th><th>F1</th><th>photos</th></tr>
{rows}</table>
<h2>Confusion matrix (rows: truth, columns: prediction)</h2>
<table><tr><th></th>{header}</tr>
{matrix}</table>
</body></html>
"#,
            title = escape(title),
            accuracy = self.accuracy * 100.0,
            examples = self.examples,
            macro_f1 = self.macro_f1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_the_confusion_matrix() {
        let labels = ["a", "b", "c"].map(String::from);
        // a: 3 right, 1 taken for b; b: 2 right; c: 1 taken for a, none right.
        let outcomes = [(0, 0), (0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (2, 0)];
        let report = ClassificationReport::new(&labels, &outcomes, Some(0.5));
        assert_eq!(report.confusion, [[3, 1, 0], [0, 2, 0], [1, 0, 0]]);
        assert!((report.accuracy - 5.0 / 7.0).abs() < 1e-12);
        let a = &report.classes[0];
        assert_eq!((a.precision, a.recall, a.support), (0.75, 0.75, 4));
        let b = &report.classes[1];
        assert!((b.precision - 2.0 / 3.0).abs() < 1e-12 && b.recall == 1.0);
        let c = &report.classes[2];
        assert_eq!((c.precision, c.recall, c.f1), (0.0, 0.0, 0.0));
        assert!((report.macro_f1 - (0.75 + 0.8) / 3.0).abs() < 1e-12);
        assert_eq!(report.metric("loss"), Some(0.5));
        assert_eq!(report.metric("bleu"), None);
        let page = report.html("v2 <test>");
        assert!(
            page.contains("v2 &lt;test&gt;") && page.contains("<td>3</td><td>1</td><td>0</td>")
        );
    }
}
