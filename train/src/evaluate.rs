//! Evaluating an actor model on labelled photos: what `starcast evaluate`
//! reports and what promotion compares, the same code for every kind of
//! model (classifiers and face galleries alike).

use std::path::PathBuf;

use starcast_model::ActorRecognizer;

use crate::classifier::SkippedPhoto;
use crate::metrics::ClassificationReport;

/// The label a report gives to photos the model gave no answer for (a
/// face gallery that finds no face).
pub const NO_ANSWER: &str = "(no answer)";

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(
        "the evaluation photos have classes the model doesn't know ({unknown}); the model's labels are {known}. The labels changed since this model was trained: retrain it, or evaluate on photos of its classes"
    )]
    LabelsChanged { unknown: String, known: String },
    #[error("none of the evaluation photos could be read")]
    NoPhotos,
}

/// The model's report on `(photo, class name)` pairs, in the model's
/// label order; unreadable photos are skipped and listed.
pub fn evaluate_recognizer(
    model: &dyn ActorRecognizer,
    photos: &[(PathBuf, String)],
) -> Result<(ClassificationReport, Vec<SkippedPhoto>), EvaluateError> {
    let mut labels = model.info().labels.clone();
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
        let answer = image::open(path)
            .map_err(|e| format!("not a readable image: {e}"))
            .and_then(|photo| model.recognize(&photo).map_err(|e| e.to_string()));
        let recognition = match answer {
            Ok(recognition) => recognition,
            Err(reason) => {
                skipped.push(SkippedPhoto {
                    path: path.clone(),
                    reason,
                });
                continue;
            }
        };
        let truth = labels
            .iter()
            .position(|l| l == class)
            .expect("checked above");
        let predicted = match recognition.predictions.first() {
            Some(best) => labels.iter().position(|l| *l == best.label),
            None => None,
        };
        let predicted = predicted.unwrap_or_else(|| {
            if !labels.iter().any(|l| l == NO_ANSWER) {
                labels.push(NO_ANSWER.to_string());
            }
            labels.len() - 1
        });
        let truth_score = recognition
            .predictions
            .iter()
            .find(|p| p.label == *class)
            .map_or(0.0, |p| p.score);
        loss -= f64::from(truth_score.max(1e-6)).ln();
        outcomes.push((truth, predicted));
    }
    if outcomes.is_empty() {
        return Err(EvaluateError::NoPhotos);
    }
    let loss = loss / outcomes.len() as f64;
    Ok((
        ClassificationReport::new(&labels, &outcomes, Some(loss)),
        skipped,
    ))
}
