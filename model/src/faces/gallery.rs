//! A gallery of known people: descriptors of their enrolled faces, and the
//! ranking of a new face against them, "unknown" included.

use crate::Prediction;

/// The label of a face that matches nobody in the gallery.
pub const UNKNOWN: &str = "unknown";
/// face-api's usual match distance: same person below, different above.
pub const DEFAULT_THRESHOLD: f32 = 0.6;
/// How sharply scores follow distance: 0.1 apart is e^1 times less likely.
const TEMPERATURE: f32 = 0.1;

/// One enrolled person.
#[derive(Clone, Debug)]
pub struct Identity {
    pub label: String,
    pub descriptors: Vec<Vec<f32>>,
}

/// Enrolled people and the distance beyond which a face is nobody's.
#[derive(Clone, Debug)]
pub struct Gallery {
    pub identities: Vec<Identity>,
    pub threshold: f32,
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

impl Gallery {
    /// The labels a prediction can name, "unknown" last.
    pub fn labels(&self) -> Vec<String> {
        self.identities
            .iter()
            .map(|i| i.label.clone())
            .chain(std::iter::once(UNKNOWN.to_string()))
            .collect()
    }

    /// Each person's distance is that of their nearest enrolled face;
    /// "unknown" stands at the threshold. Scores are a softmax of negative
    /// distances, so they sum to 1 and a face beyond the threshold from
    /// everyone is "unknown" first. Highest first.
    pub fn rank(&self, descriptor: &[f32]) -> Vec<Prediction> {
        let distances = self
            .identities
            .iter()
            .map(|identity| {
                let nearest = identity
                    .descriptors
                    .iter()
                    .map(|d| distance(d, descriptor))
                    .fold(f32::INFINITY, f32::min);
                (identity.label.clone(), nearest)
            })
            .chain(std::iter::once((UNKNOWN.to_string(), self.threshold)))
            .collect::<Vec<_>>();
        let closest = distances
            .iter()
            .map(|(_, d)| *d)
            .fold(f32::INFINITY, f32::min);
        let weights: Vec<f32> = distances
            .iter()
            .map(|(_, d)| (-(d - closest) / TEMPERATURE).exp())
            .collect();
        let total: f32 = weights.iter().sum();
        let mut ranked: Vec<Prediction> = distances
            .into_iter()
            .zip(weights)
            .map(|((label, _), w)| Prediction {
                label,
                score: w / total,
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
        ranked.truncate(crate::vision::MAX_PREDICTIONS);
        ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gallery() -> Gallery {
        Gallery {
            identities: vec![
                Identity {
                    label: "Ada".into(),
                    descriptors: vec![vec![0.0, 0.0], vec![0.1, 0.0]],
                },
                Identity {
                    label: "Bob".into(),
                    descriptors: vec![vec![1.0, 0.0]],
                },
            ],
            threshold: DEFAULT_THRESHOLD,
        }
    }

    #[test]
    fn the_nearest_person_comes_first_and_scores_sum_to_one() {
        let ranked = gallery().rank(&[0.15, 0.0]);
        assert_eq!(ranked[0].label, "Ada");
        assert!(ranked[0].score > 0.9, "{ranked:?}");
        let total: f32 = ranked.iter().map(|p| p.score).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert_eq!(ranked.len(), 3);
    }

    #[test]
    fn a_stranger_is_unknown() {
        let ranked = gallery().rank(&[0.5, 3.0]);
        assert_eq!(ranked[0].label, UNKNOWN);
    }
}
