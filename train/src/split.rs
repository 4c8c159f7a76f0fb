//! A stratified train/validation split: every class keeps the same share of
//! its photos for validation, so a small class is never left out of either.

use std::path::PathBuf;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::ImageFolder;

/// Photos with their class index.
pub type Samples = Vec<(PathBuf, usize)>;

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error(
        "the class '{class}' has only {count} photo(s): each class needs at least 2, one to train on and one to validate with; add photos or remove the class"
    )]
    TooFewPhotos { class: String, count: usize },
    #[error("the validation share must be between 0 and 1 (exclusive), got {0}")]
    Fraction(f64),
}

/// Splits the dataset: `fraction` of each class (rounded, at least one
/// photo, and at least one left to train on) goes to validation. The same
/// seed gives the same split.
pub fn stratified_split(
    data: &ImageFolder,
    fraction: f64,
    seed: u64,
) -> Result<(Samples, Samples), SplitError> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(SplitError::Fraction(fraction));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for (index, class) in data.classes.iter().enumerate() {
        let mut photos: Vec<PathBuf> = data
            .samples
            .iter()
            .filter(|(_, i)| *i == index)
            .map(|(p, _)| p.clone())
            .collect();
        if photos.len() < 2 {
            return Err(SplitError::TooFewPhotos {
                class: class.clone(),
                count: photos.len(),
            });
        }
        photos.shuffle(&mut rng);
        let held = ((photos.len() as f64 * fraction).round() as usize).clamp(1, photos.len() - 1);
        let rest = photos.split_off(held);
        validation.extend(photos.into_iter().map(|p| (p, index)));
        train.extend(rest.into_iter().map(|p| (p, index)));
    }
    Ok((train, validation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(counts: &[usize]) -> ImageFolder {
        ImageFolder {
            classes: (0..counts.len()).map(|i| format!("actor {i}")).collect(),
            samples: counts
                .iter()
                .enumerate()
                .flat_map(|(class, &n)| {
                    (0..n).map(move |i| (PathBuf::from(format!("{class}/{i}.jpg")), class))
                })
                .collect(),
        }
    }

    #[test]
    fn every_class_is_in_both_parts_in_proportion() {
        let data = folder(&[10, 2, 31]);
        let (train, validation) = stratified_split(&data, 0.2, 3).unwrap();
        let count = |part: &Samples, class| part.iter().filter(|(_, c)| *c == class).count();
        assert_eq!(
            [0, 1, 2].map(|c| count(&validation, c)),
            [2, 1, 6],
            "20% rounded, at least one"
        );
        assert_eq!([0, 1, 2].map(|c| count(&train, c)), [8, 1, 25]);
        assert_eq!(
            stratified_split(&data, 0.2, 3).unwrap().1,
            validation,
            "same seed, same split"
        );
        assert_ne!(stratified_split(&data, 0.2, 4).unwrap().1, validation);
    }

    #[test]
    fn a_class_with_one_photo_is_named() {
        let err = stratified_split(&folder(&[5, 1]), 0.2, 0).unwrap_err();
        assert!(
            err.to_string().contains("'actor 1' has only 1 photo"),
            "{err}"
        );
        assert!(stratified_split(&folder(&[5, 5]), 1.0, 0).is_err());
    }
}
