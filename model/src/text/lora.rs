//! LoRA adapters in PEFT's format (`adapter_config.json` +
//! `adapter_model.safetensors`): a few megabytes a student can upload in
//! place of the whole model, readable by PEFT as well.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::linear::Lora;
use super::llama::{Llama, projection_path};
use crate::folder::{LoadError, read_text};

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// `adapter_config.json`, with the fields PEFT writes for a LoRA.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    #[serde(default = "lora_type")]
    pub peft_type: String,
    /// Where the base model is: a folder, `hf://user/repo`, or PEFT's
    /// `user/repo` (from the Hub unless a folder has that name).
    pub base_model_name_or_path: String,
    pub r: usize,
    pub lora_alpha: f64,
    pub target_modules: Vec<String>,
    #[serde(default = "causal_lm")]
    pub task_type: String,
}

fn lora_type() -> String {
    "LORA".into()
}

fn causal_lm() -> String {
    "CAUSAL_LM".into()
}

impl AdapterConfig {
    pub fn new(base: String, rank: usize, alpha: f64, targets: &[&str]) -> Self {
        AdapterConfig {
            peft_type: lora_type(),
            base_model_name_or_path: base,
            r: rank,
            lora_alpha: alpha,
            target_modules: targets.iter().map(|t| t.to_string()).collect(),
            task_type: causal_lm(),
        }
    }

    /// The factor the adapters' product is scaled by.
    pub fn scale(&self) -> f64 {
        self.lora_alpha / self.r as f64
    }

    /// The adapter config in a model folder, or `None` when the folder
    /// holds a whole model.
    pub fn in_folder(folder: &Path) -> Result<Option<Self>, LoadError> {
        let path = folder.join(ADAPTER_CONFIG);
        if !path.is_file() {
            return Ok(None);
        }
        serde_json::from_str(&read_text(&path)?)
            .map(Some)
            .map_err(|e| LoadError::Config {
                path,
                reason: format!("not a LoRA adapter config ({e})"),
            })
    }
}

/// PEFT's name of one adapter matrix (`which` is `A` or `B`).
pub fn adapter_tensor(layer: usize, projection: &str, which: char) -> String {
    format!(
        "base_model.model.{}.lora_{which}.weight",
        projection_path(layer, projection)
    )
}

/// Attaches the adapters in `weights` to `model`, checking each shape.
pub fn attach_adapters(
    model: &mut Llama,
    config: &AdapterConfig,
    weights: &Path,
) -> candle_core::Result<()> {
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(weights, &Device::Cpu)?;
    let scale = config.scale();
    for projection in &config.target_modules {
        model.attach_lora(projection, |layer, input, output| {
            let mut take = |which: char, shape: (usize, usize)| {
                let name = adapter_tensor(layer, projection, which);
                let tensor = tensors.remove(&name).ok_or_else(|| {
                    candle_core::Error::Msg(format!("the adapter file has no {name}"))
                })?;
                if tensor.dims() != [shape.0, shape.1] {
                    candle_core::bail!(
                        "{name} has shape {:?}, not {shape:?}: the adapters were trained on another base model",
                        tensor.dims()
                    );
                }
                tensor.to_dtype(DType::F32)
            };
            Ok(Lora {
                a: take('A', (config.r, input))?,
                b: take('B', (output, config.r))?,
                scale,
            })
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_scale_follow_peft() {
        assert_eq!(
            adapter_tensor(2, "v_proj", 'B'),
            "base_model.model.model.layers.2.self_attn.v_proj.lora_B.weight"
        );
        let config = AdapterConfig::new("base".into(), 8, 16.0, &["q_proj", "v_proj"]);
        assert_eq!(config.scale(), 2.0);
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["peft_type"], "LORA");
        assert_eq!(json["task_type"], "CAUSAL_LM");
    }

    #[test]
    fn a_folder_holds_an_adapter_only_with_a_readable_config() {
        let folder = tempfile::tempdir().unwrap();
        assert_eq!(AdapterConfig::in_folder(folder.path()).unwrap(), None);

        let config = AdapterConfig::new("base".into(), 4, 8.0, &["q_proj"]);
        let path = folder.path().join(ADAPTER_CONFIG);
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        assert_eq!(
            AdapterConfig::in_folder(folder.path()).unwrap(),
            Some(config)
        );

        std::fs::write(&path, r#"{"r": 4}"#).unwrap();
        let error = AdapterConfig::in_folder(folder.path())
            .unwrap_err()
            .to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("not a LoRA adapter config"), "{error}");
    }
}
