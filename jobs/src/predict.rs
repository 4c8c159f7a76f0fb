//! `starcast predict actors`: who is in each photo, one line per photo.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use starcast_model::hub::local_model;
use starcast_model::photo::decode_photo;
use starcast_model::vision::ClassifierOptions;
use starcast_model::{ActorRecognizer, Face, ModelKind, Prediction, load_actor_recognizer};

use crate::device::DeviceChoice;

/// One photo's answer in `--json` mode.
#[derive(Serialize)]
struct Line<'a> {
    image: String,
    predictions: &'a [Prediction],
    /// Only for models that find faces.
    #[serde(skip_serializing_if = "Option::is_none")]
    faces: Option<&'a [Face]>,
}

#[derive(Debug, clap::Args)]
pub struct ActorsArgs {
    /// The model: a face-gallery folder, a classifier folder, a weights
    /// file (.pth, .pt, .safetensors) or `hf://user/repo[@revision]`.
    #[arg(
        long,
        env = "STARCAST_ACTORS_MODEL",
        default_value = "data/models/face-gallery"
    )]
    pub model: PathBuf,
    /// The classifier's architecture (resnet18, mobilenet_v2, ...), when
    /// neither config.json nor the tensor names tell.
    #[arg(long)]
    pub arch: Option<String>,
    /// The classifier's labels in class order, comma-separated, when the
    /// model has no config.json labels or labels.txt.
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// Where the model runs (the face gallery stays on the CPU).
    #[arg(long, value_enum, default_value_t)]
    pub device: DeviceChoice,
    /// Print one JSON object per photo.
    #[arg(long)]
    pub json: bool,
    /// The photos.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// Answers for every photo; a photo that can't be read is reported and the
/// others still get their answer.
pub fn actors(args: ActorsArgs) -> anyhow::Result<ExitCode> {
    let options = ClassifierOptions {
        architecture: args.arch.clone(),
        labels: args.labels.clone(),
        device: args.device.open()?,
    };
    let path = local_model(&args.model)?;
    let model = load_actor_recognizer(&path, &options)
        .with_context(|| format!("could not load the actor model {}", args.model.display()))?;
    let mut stdout = std::io::stdout().lock();
    let mut failed = false;
    for image in &args.images {
        match answer(model.as_ref(), image, args.json) {
            Ok(line) => writeln!(stdout, "{line}")?,
            Err(error) => {
                failed = true;
                eprintln!("error: {}: {error:#}", image.display());
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn answer(model: &dyn ActorRecognizer, image: &Path, as_json: bool) -> anyhow::Result<String> {
    let bytes = std::fs::read(image)?;
    let photo = decode_photo(&bytes)?;
    let recognition = model.recognize(&photo.image)?;
    let finds_faces = model.info().task == ModelKind::FaceEmbedding;
    if as_json {
        let line = Line {
            image: image.display().to_string(),
            predictions: &recognition.predictions,
            faces: finds_faces.then_some(recognition.faces.as_slice()),
        };
        return Ok(serde_json::to_string(&line)?);
    }
    let mut text = format!("{}: {}", image.display(), listed(&recognition.predictions));
    for face in &recognition.faces {
        let [x, y, w, h] = face.bounds;
        text += &format!("\n  face at {x},{y} {w}x{h}: {}", listed(&face.predictions));
    }
    if finds_faces && recognition.faces.is_empty() {
        text += "\n  no face found";
    }
    Ok(text)
}

fn listed(predictions: &[Prediction]) -> String {
    predictions
        .iter()
        .map(|p| format!("{} {:.1}%", p.label, p.score * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}
