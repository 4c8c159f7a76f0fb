//! Sentence embeddings (all-MiniLM-L6-v2, a BERT encoder with mean pooling,
//! as sentence-transformers runs it): how alike two horoscopes read, for
//! the diversity of a model's outputs.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer};

use crate::folder::LoadError;

/// A sentence encoder from a folder with `config.json` (BERT),
/// `model.safetensors` and `tokenizer.json`.
pub struct SentenceEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
}

impl SentenceEmbedder {
    pub fn load(folder: &Path) -> Result<Self, LoadError> {
        let read = |name: &str| {
            std::fs::read(folder.join(name)).map_err(|source| LoadError::Io {
                path: folder.join(name),
                source,
            })
        };
        let unusable = |name: &str, reason: String| LoadError::Weights {
            path: folder.join(name),
            reason,
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| unusable("config.json", e.to_string()))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| unusable("tokenizer.json", e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(None)
            .map_err(|e| unusable("tokenizer.json", e.to_string()))?;
        let weights = folder.join("model.safetensors");
        // SAFETY: memory-mapping a file this process only reads; a file
        // changed underneath would at worst give wrong embeddings.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) }
                .map_err(|e| unusable("model.safetensors", e.to_string()))?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| unusable("model.safetensors", e.to_string()))?;
        Ok(SentenceEmbedder { model, tokenizer })
    }

    /// One unit-length vector per text: token states averaged over the
    /// text's own tokens (padding left out).
    pub fn embed(&self, texts: &[String]) -> candle_core::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(candle_core::Error::msg)?;
        let ids: Vec<Tensor> = encodings
            .iter()
            .map(|e| Tensor::new(e.get_ids(), &Device::Cpu))
            .collect::<candle_core::Result<_>>()?;
        let masks: Vec<Tensor> = encodings
            .iter()
            .map(|e| Tensor::new(e.get_attention_mask(), &Device::Cpu))
            .collect::<candle_core::Result<_>>()?;
        let ids = Tensor::stack(&ids, 0)?;
        let mask = Tensor::stack(&masks, 0)?;
        let states = self.model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = states.broadcast_mul(&mask)?.sum(1)?;
        let pooled = summed.broadcast_div(&mask.sum(1)?)?;
        let norms = pooled.sqr()?.sum_keepdim(1)?.sqrt()?;
        pooled.broadcast_div(&norms)?.to_vec2()
    }
}

/// The cosine similarity of two unit-length vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
