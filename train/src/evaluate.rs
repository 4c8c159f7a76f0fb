//! Evaluating a classifier on labelled photos: what `starcast evaluate`
//! reports and what promotion compares, the same code for both.

use std::path::PathBuf;

use starcast_model::ActorRecognizer;
use starcast_model::vision::ImageClassifier;

use crate::classifier::SkippedPhoto;
use crate::metrics::ClassificationReport;

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(
        "the evaluation photos have classes the model doesn't know ({unknown}); the model's labels are {known}. The labels changed since this model was trained: retrain it, or evaluate on photos of its classes"
    )]
    LabelsChanged { unknown: String, known: String },
    #[error("none of the evaluation photos could be read")]
    NoPhotos,
    #[error("the model failed on {path}: {reason}")]
    Model { path: PathBuf, reason: String },
}

/// The classifier's report on `(photo, class name)` pairs, in the model's
/// label order; unreadable photos are skipped and listed.
pub fn evaluate_classifier(
    model: &ImageClassifier,
    photos: &[(PathBuf, String)],
) -> Result<(ClassificationReport, Vec<SkippedPhoto>), EvaluateError> {
    let labels = &model.info().labels;
    let mut unknown: Vec<&str> = photos
        .iter()
        .map(|(_, class)| class.as_str())
        .filter(|class| !labels.iter().any(|l| l == class))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    if !unknown.is_empty() {
        return Err(EvaluateError::LabelsChanged {
            unknown: unknown.join(", "),
            known: labels.join(", "),
        });
    }
    let mut outcomes = Vec::new();
    let mut loss = 0.0;
    let mut skipped = Vec::new();
    for (path, class) in photos {
        let photo = match image::open(path) {
            Ok(photo) => photo,
            Err(e) => {
                skipped.push(SkippedPhoto {
                    path: path.clone(),
                    reason: format!("not a readable image: {e}"),
                });
                continue;
            }
        };
        let probabilities = model
            .probabilities(&photo)
            .map_err(|e| EvaluateError::Model {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let truth = labels
            .iter()
            .position(|l| l == class)
            .expect("checked above");
        let predicted = probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        loss -= f64::from(probabilities[truth].max(1e-12)).ln();
        outcomes.push((truth, predicted));
    }
    if outcomes.is_empty() {
        return Err(EvaluateError::NoPhotos);
    }
    let loss = loss / outcomes.len() as f64;
    Ok((
        ClassificationReport::new(labels, &outcomes, Some(loss)),
        skipped,
    ))
}
