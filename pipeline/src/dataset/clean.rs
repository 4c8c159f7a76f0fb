//! `starcast dataset clean`: what the lab's student did by hand, on a
//! `<actor>/<photo>` dataset. A photo is rejected when it can't be decoded,
//! repeats another byte for byte or nearly (perceptual hash), shows no face
//! or several, its face is too small or blurred, or its face is not the
//! person the rest of the actor's photos show. Nothing is deleted: rejected
//! photos move to `<dataset>.quarantine/<actor>/` with `reasons.csv`, and
//! `<dataset>.report.html` shows what was kept and why the rest was not.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, imageops};
use starcast_model::faces::FaceTools;
use starcast_model::photo::decode_photo;

/// The thresholds of the checks.
#[derive(Clone, Debug)]
pub struct CleanSettings {
    /// The smallest face side kept, in pixels.
    pub min_face: u32,
    /// The least variance of the Laplacian of the face (128x128 grey) kept:
    /// the face_recognition photos' faces score 190-430, the same face
    /// blurred with a 4-pixel Gaussian 16.
    pub min_sharpness: f64,
    /// Perceptual hashes this many bits apart or fewer are near duplicates.
    pub near_duplicate_bits: u32,
    /// A face farther than this from most of the actor's other faces is
    /// someone else (face-api: same person ~0.4 apart, others ~0.65).
    pub other_person: f32,
}

impl Default for CleanSettings {
    fn default() -> Self {
        CleanSettings {
            min_face: 40,
            min_sharpness: 20.0,
            near_duplicate_bits: 6,
            other_person: 0.6,
        }
    }
}

/// Why a photo was rejected.
#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    Undecodable(String),
    Duplicate(String),
    NearDuplicate { of: String, bits: u32 },
    NoFace,
    SeveralFaces(usize),
    SmallFace(u32),
    Blurred(f64),
    OtherPerson(f32),
}

impl Reason {
    /// A short name for tables and counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Undecodable(_) => "undecodable",
            Reason::Duplicate(_) => "duplicate",
            Reason::NearDuplicate { .. } => "near duplicate",
            Reason::NoFace => "no face",
            Reason::SeveralFaces(_) => "several faces",
            Reason::SmallFace(_) => "face too small",
            Reason::Blurred(_) => "blurred",
            Reason::OtherPerson(_) => "another person",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Undecodable(why) => write!(f, "can't be decoded: {why}"),
            Reason::Duplicate(of) => write!(f, "the same file as {of}"),
            Reason::NearDuplicate { of, bits } => {
                write!(f, "nearly the same photo as {of} ({bits} bits apart)")
            }
            Reason::NoFace => write!(f, "no face found"),
            Reason::SeveralFaces(n) => write!(f, "{n} faces: the label can't say which"),
            Reason::SmallFace(side) => write!(f, "the face is {side} px wide"),
            Reason::Blurred(score) => write!(f, "the face is blurred (sharpness {score:.0})"),
            Reason::OtherPerson(d) => write!(
                f,
                "the face is {d:.2} from this actor's other faces: another person?"
            ),
        }
    }
}

/// One photo's verdict; `path` is relative to the dataset.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub actor: String,
    pub path: PathBuf,
    pub rejected: Option<Reason>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct CleanError {
    pub path: PathBuf,
    pub reason: String,
}

fn fail(path: &Path, reason: impl ToString) -> CleanError {
    CleanError {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// A 64-bit difference hash: 9x8 grey, one bit per left-right comparison.
fn difference_hash(photo: &DynamicImage) -> u64 {
    let small = imageops::resize(&photo.to_luma8(), 9, 8, imageops::FilterType::Triangle);
    let mut hash = 0u64;
    for y in 0..8 {
        for x in 0..8 {
            hash = (hash << 1) | u64::from(small.get_pixel(x, y)[0] > small.get_pixel(x + 1, y)[0]);
        }
    }
    hash
}

/// Variance of the 4-neighbour Laplacian: low on blurred images.
fn sharpness(face: &GrayImage) -> f64 {
    let (w, h) = face.dimensions();
    let at = |x: u32, y: u32| f64::from(face.get_pixel(x, y)[0]);
    let values: Vec<f64> = (1..h.saturating_sub(1))
        .flat_map(|y| (1..w.saturating_sub(1)).map(move |x| (x, y)))
        .map(|(x, y)| at(x - 1, y) + at(x + 1, y) + at(x, y - 1) + at(x, y + 1) - 4.0 * at(x, y))
        .collect();
    if values.is_empty() {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f32>()
        .sqrt()
}

/// Judges every photo of the dataset (nothing moves yet).
pub fn judge_dataset(
    root: &Path,
    faces: &FaceTools,
    settings: &CleanSettings,
) -> Result<Vec<Verdict>, CleanError> {
    let mut verdicts = Vec::new();
    let mut exact: HashMap<(u64, u64), (Vec<u8>, String)> = HashMap::new();
    let mut perceptual: Vec<(u64, String)> = Vec::new();
    let mut descriptors: HashMap<String, Vec<(usize, Vec<f32>)>> = HashMap::new();
    for (actor, _) in super::count_classes(root).map_err(|e| fail(root, e))? {
        let folder = root.join(&actor);
        let mut photos: Vec<PathBuf> = fs::read_dir(&folder)
            .map_err(|e| fail(&folder, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        photos.sort();
        for path in photos {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            let name = relative.display().to_string();
            let bytes = fs::read(&path).map_err(|e| fail(&path, e))?;
            let mut verdict = Verdict {
                actor: actor.clone(),
                path: relative,
                rejected: None,
            };
            let key = (bytes.len() as u64, {
                use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
                BuildHasherDefault::<DefaultHasher>::default().hash_one(&bytes)
            });
            let judged = match exact.get(&key) {
                Some((earlier, of)) if *earlier == bytes => Err(Reason::Duplicate(of.clone())),
                _ => {
                    exact.insert(key, (bytes.clone(), name.clone()));
                    judge_photo(&bytes, &name, faces, settings, &mut perceptual)
                }
            };
            match judged {
                Ok(descriptor) => descriptors
                    .entry(actor.clone())
                    .or_default()
                    .push((verdicts.len(), descriptor)),
                Err(reason) => verdict.rejected = Some(reason),
            }
            verdicts.push(verdict);
        }
    }
    // Faces far from most of the actor's other faces: someone else. The
    // lower median keeps a face that matches half of the others.
    for faces in descriptors.values().filter(|f| f.len() >= 3) {
        for (index, descriptor) in faces {
            let mut others: Vec<f32> = faces
                .iter()
                .filter(|(other, _)| other != index)
                .map(|(_, d)| distance(descriptor, d))
                .collect();
            others.sort_by(f32::total_cmp);
            let median = others[(others.len() - 1) / 2];
            if median > settings.other_person {
                verdicts[*index].rejected = Some(Reason::OtherPerson(median));
            }
        }
    }
    Ok(verdicts)
}

/// The checks of one photo; its face descriptor when it passes them.
fn judge_photo(
    bytes: &[u8],
    name: &str,
    faces: &FaceTools,
    settings: &CleanSettings,
    perceptual: &mut Vec<(u64, String)>,
) -> Result<Vec<f32>, Reason> {
    let photo = decode_photo(bytes)
        .map_err(|e| Reason::Undecodable(e.to_string()))?
        .image;
    let hash = difference_hash(&photo);
    if let Some((earlier, of)) = perceptual
        .iter()
        .find(|(h, _)| (h ^ hash).count_ones() <= settings.near_duplicate_bits)
    {
        return Err(Reason::NearDuplicate {
            of: of.clone(),
            bits: (earlier ^ hash).count_ones(),
        });
    }
    perceptual.push((hash, name.to_string()));
    let found = faces.detector.detect(&photo);
    let face = match found.as_slice() {
        [] => return Err(Reason::NoFace),
        [one] => *one,
        several => return Err(Reason::SeveralFaces(several.len())),
    };
    let [x, y, w, h] = face.bounds;
    if w.min(h) < settings.min_face {
        return Err(Reason::SmallFace(w.min(h)));
    }
    let crop = imageops::resize(
        &photo.crop_imm(x, y, w, h).to_luma8(),
        128,
        128,
        imageops::FilterType::Triangle,
    );
    let score = sharpness(&crop);
    if score < settings.min_sharpness {
        return Err(Reason::Blurred(score));
    }
    faces
        .describe(&photo, &face)
        .map_err(|e| Reason::Undecodable(e.to_string()))
}

/// Where rejected photos and the report go, beside the dataset.
pub fn quarantine_of(root: &Path) -> PathBuf {
    root.with_extension("quarantine")
}

pub fn report_of(root: &Path) -> PathBuf {
    root.with_extension("report.html")
}

/// Moves the rejected photos into the quarantine folder, appends their
/// reasons to `reasons.csv` there, and writes the HTML report.
pub fn apply_verdicts(root: &Path, verdicts: &[Verdict]) -> Result<(), CleanError> {
    let quarantine = quarantine_of(root);
    fs::create_dir_all(&quarantine).map_err(|e| fail(&quarantine, e))?;
    let reasons_path = quarantine.join("reasons.csv");
    let new_file = !reasons_path.exists();
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&reasons_path)
        .map_err(|e| fail(&reasons_path, e))?;
    let mut reasons = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(file);
    if new_file {
        reasons
            .write_record(["actor", "photo", "check", "reason"])
            .map_err(|e| fail(&reasons_path, e))?;
    }
    for verdict in verdicts {
        let Some(reason) = &verdict.rejected else {
            continue;
        };
        let from = root.join(&verdict.path);
        let to = quarantine.join(&verdict.path);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
        }
        fs::rename(&from, &to).map_err(|e| fail(&from, e))?;
        reasons
            .write_record([
                verdict.actor.as_str(),
                &verdict.path.display().to_string(),
                reason.kind(),
                &reason.to_string(),
            ])
            .map_err(|e| fail(&reasons_path, e))?;
    }
    reasons.flush().map_err(|e| fail(&reasons_path, e))?;
    let report = report_of(root);
    fs::write(&report, html_report(root, verdicts)).map_err(|e| fail(&report, e))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page of thumbnails: kept photos per actor, then each rejected one
/// with its reason. Images are linked relative to the report.
fn html_report(root: &Path, verdicts: &[Verdict]) -> String {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let (dataset, quarantine) = (name(root), name(&quarantine_of(root)));
    let link = |folder: &str, path: &Path| {
        let parts: Vec<String> = Path::new(folder)
            .join(path)
            .iter()
            .map(|p| {
                url::form_urlencoded::byte_serialize(p.to_string_lossy().as_bytes())
                    .collect::<String>()
                    .replace('+', "%20")
            })
            .collect();
        parts.join("/")
    };
    let kept = verdicts.iter().filter(|v| v.rejected.is_none()).count();
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Dataset cleaning: {d}</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem}}figure{{display:inline-block;margin:.4rem;width:160px;vertical-align:top}}\
         img{{width:160px;height:160px;object-fit:cover;border-radius:8px}}figcaption{{font-size:.8rem}}.why{{color:#b42318}}</style>\
         <h1>{d}: {kept} of {total} photos kept</h1>",
        d = escape(&dataset),
        total = verdicts.len()
    );
    let mut actors: Vec<&str> = verdicts.iter().map(|v| v.actor.as_str()).collect();
    actors.dedup();
    for actor in actors {
        html += &format!("<h2>{}</h2>", escape(actor));
        for verdict in verdicts.iter().filter(|v| v.actor == actor) {
            let (src, caption) = match &verdict.rejected {
                None => (link(&dataset, &verdict.path), String::new()),
                Some(reason) => (
                    link(&quarantine, &verdict.path),
                    format!(
                        "<br><span class=\"why\">{}</span>",
                        escape(&reason.to_string())
                    ),
                ),
            };
            html += &format!(
                "<figure><img src=\"{src}\" alt=\"\" loading=\"lazy\"><figcaption>{}{caption}</figcaption></figure>",
                escape(&name(&verdict.path))
            );
        }
    }
    html + "</html>\n"
}

#[cfg(test)]
mod tests {
    use image::{Luma, RgbImage};

    use super::*;

    #[test]
    fn near_copies_hash_close_and_different_photos_far() {
        let stripes = DynamicImage::ImageRgb8(RgbImage::from_fn(200, 160, |x, y| {
            image::Rgb([
                ((x * 7 + y * 3) % 255) as u8,
                (x % 64) as u8 * 4,
                (y % 32) as u8 * 8,
            ])
        }));
        let smaller = stripes.resize_exact(100, 80, imageops::FilterType::Triangle);
        let flipped = stripes.fliph();
        let (a, b, c) = (
            difference_hash(&stripes),
            difference_hash(&smaller),
            difference_hash(&flipped),
        );
        assert!((a ^ b).count_ones() <= 6, "{}", (a ^ b).count_ones());
        assert!((a ^ c).count_ones() > 12, "{}", (a ^ c).count_ones());
    }

    #[test]
    fn blur_lowers_sharpness() {
        let checks = GrayImage::from_fn(128, 128, |x, y| {
            Luma([if (x / 4 + y / 4) % 2 == 0 { 0 } else { 255 }])
        });
        let blurred = imageops::blur(&checks, 6.0);
        assert!(sharpness(&checks) > 1000.0);
        assert!(sharpness(&blurred) < 20.0, "{}", sharpness(&blurred));
    }
}
