//! TensorFlow.js layers-free weights: a `*-weights_manifest.json` naming
//! each tensor's shape and storage (float32, or uint8/uint16 quantised as
//! `q * scale + min`, or float16) and the `.bin` shards holding them.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde::Deserialize;

use super::weights::NamedTensors;
use crate::folder::{Files, LoadError};

#[derive(Deserialize)]
struct Group {
    paths: Vec<String>,
    weights: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    #[serde(default)]
    quantization: Option<Quantization>,
}

#[derive(Deserialize)]
struct Quantization {
    dtype: String,
    #[serde(default)]
    scale: f32,
    #[serde(default)]
    min: f32,
}

/// Reads a manifest and its shards. Tensor names keep TF.js's `/` turned
/// into `.`, so `VarBuilder` prefixes address them; 4-d filters stay in
/// TensorFlow's `[h, w, in, out]` order for the caller to permute.
pub fn read_tfjs(files: &Files, manifest: &Path) -> Result<NamedTensors, LoadError> {
    let unusable = |reason: String| LoadError::Weights {
        path: manifest.to_path_buf(),
        reason,
    };
    let read = |path: &Path| files.read(path);
    let groups: Vec<Group> = serde_json::from_slice(&read(manifest)?)
        .map_err(|e| unusable(format!("not a TF.js weights manifest ({e})")))?;
    let folder = manifest.parent().unwrap_or(Path::new("."));
    let mut tensors = NamedTensors::new();
    for group in groups {
        let mut bytes = Vec::new();
        for shard in &group.paths {
            if shard.contains("..") || Path::new(shard).is_absolute() {
                return Err(unusable(format!(
                    "shard path {shard} leaves the model folder"
                )));
            }
            bytes.extend_from_slice(&read(&folder.join(shard))?);
        }
        let mut at = 0usize;
        for entry in group.weights {
            let count = entry
                .shape
                .iter()
                .try_fold(1usize, |total, &side| total.checked_mul(side));
            let (values, used) = count
                .and_then(|count| decode(&bytes[at.min(bytes.len())..], count, &entry))
                .ok_or_else(|| unusable(format!("the shards end inside tensor {}", entry.name)))?;
            at += used;
            let tensor = Tensor::from_vec(values, entry.shape.as_slice(), &Device::Cpu)
                .map_err(|e| unusable(e.to_string()))?;
            tensors.insert(entry.name.replace('/', "."), tensor);
        }
    }
    Ok(tensors)
}

/// `count` values of one tensor and the bytes they took.
fn decode(bytes: &[u8], count: usize, entry: &Entry) -> Option<(Vec<f32>, usize)> {
    let storage = entry
        .quantization
        .as_ref()
        .map_or(entry.dtype.as_str(), |q| q.dtype.as_str());
    let width = match storage {
        "uint8" => 1,
        "uint16" | "float16" => 2,
        "float32" => 4,
        _ => return None,
    };
    let used = count.checked_mul(width)?;
    let raw = bytes.get(..used)?;
    let (scale, min) = entry
        .quantization
        .as_ref()
        .map_or((1.0, 0.0), |q| (q.scale, q.min));
    let values = match storage {
        "uint8" => raw.iter().map(|&q| f32::from(q) * scale + min).collect(),
        "uint16" => raw
            .chunks_exact(2)
            .map(|c| f32::from(u16::from_le_bytes([c[0], c[1]])) * scale + min)
            .collect(),
        "float16" => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    };
    Some((values, used))
}
