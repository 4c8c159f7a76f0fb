//! Llama-architecture language models (SmolLM2, TinyLlama, Llama 2/3),
//! with Hugging Face's tensor names and rotary layout: F32, F16 or BF16
//! safetensors, or a GGUF either dequantized or served quantized as
//! stored, optionally with LoRA adapters. Unlike candle-transformers'
//! llama it gives logits for every position and can run on differentiable
//! ops, so fine-tuning and serving share one definition.

use std::path::Path;

use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::{QTensor, gguf_file};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, IndexOp, Result, Tensor};
use serde::{Deserialize, Serialize};

use super::attention::{
    Cache, CachedSession, LayerCache, NextLogits, add_causal_mask, append, causal_mask,
    rotary_tables,
};
use super::kernels;
use super::linear::{CPU, Linear, Lora, Projections, Weight, served_quantized};
use super::writer::{DecodeSession, Decoder};

/// The hyperparameters, as Hugging Face's `config.json` names them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

fn default_rms_norm_eps() -> f64 {
    1e-5
}

fn default_rope_theta() -> f64 {
    10_000.0
}

fn default_max_position_embeddings() -> usize {
    2048
}

impl LlamaConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    pub fn key_value_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// The hyperparameters a GGUF file's metadata records.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let value = |key: &str| {
            content
                .metadata
                .get(&format!("llama.{key}"))
                .ok_or_else(|| candle_core::Error::Msg(format!("the GGUF has no llama.{key}")))
        };
        let count = |key: &str| value(key).and_then(|v| v.to_u32()).map(|v| v as usize);
        let vocab_size = content
            .tensor_infos
            .get("token_embd.weight")
            .map(|info| info.shape.dims()[0])
            .ok_or_else(|| candle_core::Error::Msg("the GGUF has no token_embd.weight".into()))?;
        Ok(LlamaConfig {
            vocab_size,
            hidden_size: count("embedding_length")?,
            intermediate_size: count("feed_forward_length")?,
            num_hidden_layers: count("block_count")?,
            num_attention_heads: count("attention.head_count")?,
            num_key_value_heads: Some(count("attention.head_count_kv")?),
            rms_norm_eps: f64::from(value("attention.layer_norm_rms_epsilon")?.to_f32()?),
            rope_theta: value("rope.freq_base")
                .and_then(|v| v.to_f32())
                .map_or(default_rope_theta(), f64::from),
            max_position_embeddings: count("context_length")
                .unwrap_or(default_max_position_embeddings()),
            tie_word_embeddings: !content.tensor_infos.contains_key("output.weight"),
        })
    }
}

/// Which kernels the forward pass runs. candle's fused softmax, RMS norm
/// and rotary kernels are the fast path but have no gradient; training
/// takes kernels that have one (`kernels.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    Fused,
    Differentiable,
}

#[derive(Clone, Debug)]
struct Block {
    attention_norm: Tensor,
    /// Query, key and value.
    attention_in: Projections<3>,
    o: Linear,
    mlp_norm: Tensor,
    /// Gate and up.
    mlp_in: Projections<2>,
    down: Linear,
}

/// The projections adapters can be attached to, by Hugging Face's names.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

impl Block {
    /// The projection Hugging Face calls `name`.
    fn projection(&mut self, name: &str) -> Result<&mut Linear> {
        let (group, index) = match name {
            "o_proj" => return Ok(&mut self.o),
            "down_proj" => return Ok(&mut self.down),
            "q_proj" => (self.attention_in.apart_mut(), 0),
            "k_proj" => (self.attention_in.apart_mut(), 1),
            "v_proj" => (self.attention_in.apart_mut(), 2),
            "gate_proj" => (self.mlp_in.apart_mut(), 0),
            "up_proj" => (self.mlp_in.apart_mut(), 1),
            _ => candle_core::bail!(
                "'{name}' is not a Llama projection: use one of {}",
                PROJECTIONS.join(", ")
            ),
        };
        group.get_mut(index).ok_or_else(served_quantized)
    }
}

#[derive(Clone, Debug)]
pub struct Llama {
    config: LlamaConfig,
    embedding: Weight,
    blocks: Vec<Block>,
    norm: Tensor,
    /// `None` when the output projection is the embedding (tied).
    lm_head: Option<Weight>,
    cos: Tensor,
    sin: Tensor,
    kernels: Kernels,
}

/// Hugging Face's path of a layer's projection (`q_proj`, `up_proj`, ...):
/// `model.layers.3.self_attn.q_proj`.
pub fn projection_path(layer: usize, projection: &str) -> String {
    let group = if matches!(projection, "gate_proj" | "up_proj" | "down_proj") {
        "mlp"
    } else {
        "self_attn"
    };
    format!("model.layers.{layer}.{group}.{projection}")
}

fn layer_tensor(layer: usize, projection: &str) -> String {
    format!("{}.weight", projection_path(layer, projection))
}

impl Llama {
    /// Builds the model from tensors named as Hugging Face names them
    /// (`model.layers.0.self_attn.q_proj.weight`), each fetched by `get`,
    /// which checks its shape.
    pub fn from_tensors(
        config: LlamaConfig,
        mut get: impl FnMut(&str, &[usize]) -> Result<Tensor>,
    ) -> Result<Self> {
        Self::from_weights(config, |name, shape| get(name, shape).map(Weight::Dense))
    }

    fn from_weights(
        config: LlamaConfig,
        mut get: impl FnMut(&str, &[usize]) -> Result<Weight>,
    ) -> Result<Self> {
        let hidden = config.hidden_size;
        let head_dim = config.head_dim();
        let kv = config.key_value_heads() * head_dim;
        let inner = config.intermediate_size;
        let embedding = get(EMBEDDING, &[config.vocab_size, hidden])?;
        let mut blocks = Vec::with_capacity(config.num_hidden_layers);
        for layer in 0..config.num_hidden_layers {
            let prefix = format!("model.layers.{layer}");
            let mut linear = |name: &str, shape: &[usize]| -> Result<Linear> {
                Ok(Linear {
                    weight: get(&layer_tensor(layer, name), shape)?,
                    lora: None,
                })
            };
            let q = linear("q_proj", &[hidden, hidden])?;
            let k = linear("k_proj", &[kv, hidden])?;
            let v = linear("v_proj", &[kv, hidden])?;
            let o = linear("o_proj", &[hidden, hidden])?;
            let gate = linear("gate_proj", &[inner, hidden])?;
            let up = linear("up_proj", &[inner, hidden])?;
            let down = linear("down_proj", &[hidden, inner])?;
            blocks.push(Block {
                attention_norm: get(&format!("{prefix}.input_layernorm.weight"), &[hidden])?
                    .dense()?
                    .clone(),
                attention_in: Projections::Apart([q, k, v]),
                o,
                mlp_norm: get(
                    &format!("{prefix}.post_attention_layernorm.weight"),
                    &[hidden],
                )?
                .dense()?
                .clone(),
                mlp_in: Projections::Apart([gate, up]),
                down,
            });
        }
        let norm = get("model.norm.weight", &[hidden])?.dense()?.clone();
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(get("lm_head.weight", &[config.vocab_size, hidden])?)
        };
        let (cos, sin) = rotary_tables(
            config.rope_theta,
            head_dim,
            config.max_position_embeddings,
            embedding.device(),
        )?;
        Ok(Llama {
            config,
            embedding,
            blocks,
            norm,
            lm_head,
            cos,
            sin,
            kernels: Kernels::Fused,
        })
    }

    /// Loads Hugging Face safetensors files of any float type, as F32.
    pub fn from_safetensors(config: LlamaConfig, files: &[impl AsRef<Path>]) -> Result<Self> {
        // SAFETY: the files are mapped read-only; as with any mmap, they
        // must not be truncated while the model loads.
        let tensors = unsafe { MmapedSafetensors::multi(files)? };
        Self::from_tensors(config, |name, shape| {
            let tensor = tensors.load(name, &Device::Cpu)?.to_dtype(DType::F32)?;
            check_shape(name, tensor.dims(), shape)?;
            Ok(tensor)
        })
    }

    /// Dequantizes a Llama GGUF to F32 and undoes llama.cpp's reordering of
    /// the query and key rows (it pairs rotary dimensions side by side;
    /// Hugging Face's layout pairs each with the one half a head away).
    pub fn from_gguf<R: std::io::Read + std::io::Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
    ) -> Result<Self> {
        Self::read_gguf(content, reader, |tensor, _| {
            Ok(Weight::Dense(tensor.dequantize(&CPU)?))
        })
    }

    /// A Llama GGUF served as stored, for inference: Q4_1 and Q8_0 weights
    /// multiplied by this crate's kernels (the embedding looked up row by
    /// row), other quantized formats by candle's, float tensors as F32; the
    /// query and key rows reordered as [`Llama::from_gguf`] does.
    pub fn from_gguf_quantized<R: std::io::Read + std::io::Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
    ) -> Result<Self> {
        let mut model = Self::read_gguf(content, reader, |tensor, name| {
            Weight::from_gguf(tensor, name == EMBEDDING)
        })?;
        for block in &mut model.blocks {
            block.attention_in.stack();
            block.mlp_in.stack();
        }
        Ok(model)
    }

    /// Reads every tensor of a Llama GGUF, query and key rows reordered to
    /// Hugging Face's layout, and makes it a weight with `weight(tensor, name)`.
    fn read_gguf<R: std::io::Read + std::io::Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        weight: impl Fn(QTensor, &str) -> Result<Weight>,
    ) -> Result<Self> {
        let config = LlamaConfig::from_gguf(content)?;
        let (heads, kv_heads) = (config.num_attention_heads, config.key_value_heads());
        Self::from_weights(config, |name, shape| {
            let (gguf_name, rotated) = gguf_name(name);
            let tensor = content.tensor(reader, &gguf_name, &CPU)?;
            check_shape(name, tensor.shape().dims(), shape)?;
            let tensor = match rotated {
                Some(Rotated::Query) => reorder_rows(&tensor, heads)?,
                Some(Rotated::Key) => reorder_rows(&tensor, kv_heads)?,
                None => tensor,
            };
            weight(tensor, name)
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Where the weights live (and the arithmetic runs).
    pub fn device(&self) -> &Device {
        self.embedding.device()
    }

    /// The same model with every weight on `device` (adapters folded in).
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let mut weights: std::collections::HashMap<_, _> =
            self.named_weights()?.into_iter().collect();
        Self::from_tensors(self.config.clone(), |name, _| match weights.remove(name) {
            Some(tensor) => tensor.to_device(device),
            None => candle_core::bail!("the model has no weight {name}"),
        })
    }

    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// Attaches adapters to the `projection` (e.g. `q_proj`) of every layer,
    /// each made by `make(layer, in, out)`.
    pub fn attach_lora(
        &mut self,
        projection: &str,
        mut make: impl FnMut(usize, usize, usize) -> Result<Lora>,
    ) -> Result<()> {
        for (layer, block) in self.blocks.iter_mut().enumerate() {
            let linear = block.projection(projection)?;
            let (out, input) = linear.weight.dims()?;
            linear.lora = Some(make(layer, input, out)?);
        }
        Ok(())
    }

    /// Folds every adapter into its weight.
    pub fn merge_lora(&mut self) -> Result<()> {
        for block in &mut self.blocks {
            let linears = block.attention_in.apart_mut().iter_mut();
            let linears = linears.chain(block.mlp_in.apart_mut());
            for linear in linears.chain([&mut block.o, &mut block.down]) {
                linear.merge()?;
            }
        }
        Ok(())
    }

    /// Every weight by its Hugging Face name, adapters folded in: what a
    /// fully fine-tuned model saves.
    pub fn named_weights(&self) -> Result<Vec<(String, Tensor)>> {
        let mut merged = self.clone();
        merged.merge_lora()?;
        let mut named = vec![(EMBEDDING.to_string(), merged.embedding.dense()?.clone())];
        for (layer, block) in merged.blocks.iter_mut().enumerate() {
            let prefix = format!("model.layers.{layer}");
            named.push((
                format!("{prefix}.input_layernorm.weight"),
                block.attention_norm.clone(),
            ));
            named.push((
                format!("{prefix}.post_attention_layernorm.weight"),
                block.mlp_norm.clone(),
            ));
            for name in PROJECTIONS {
                let weight = block.projection(name)?.weight.dense()?.clone();
                named.push((layer_tensor(layer, name), weight));
            }
        }
        named.push(("model.norm.weight".into(), merged.norm));
        if let Some(head) = merged.lm_head {
            named.push(("lm_head.weight".into(), head.dense()?.clone()));
        }
        Ok(named)
    }

    /// The last layer's output for `tokens` (`[batch, positions]`), which
    /// follow the positions already in `cache`.
    pub fn hidden(&self, tokens: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let (_, positions) = tokens.dims2()?;
        let offset = cache.len();
        if offset + positions > self.config.max_position_embeddings {
            candle_core::bail!(
                "{} positions exceed the model's context of {}",
                offset + positions,
                self.config.max_position_embeddings
            );
        }
        // The differentiable softmax masks by position itself.
        let mask = match self.kernels {
            Kernels::Fused => causal_mask(positions, offset, tokens.device())?,
            Kernels::Differentiable => None,
        };
        let mut xs = self.embedding.rows(&tokens.flatten_all()?)?.reshape((
            tokens.dim(0)?,
            positions,
            self.config.hidden_size,
        ))?;
        for (block, layer_cache) in self.blocks.iter().zip(cache.layers(self.blocks.len())) {
            let normed = self.rms_norm(&xs, &block.attention_norm)?;
            let attended = self.attention(block, &normed, offset, mask.as_ref(), layer_cache)?;
            xs = (xs + attended)?;
            let normed = self.rms_norm(&xs, &block.mlp_norm)?;
            let [gate, up] = block.mlp_in.forward(&normed)?;
            let gated = kernels::silu_mul(&gate, &up)?;
            xs = (xs + block.down.forward(&gated)?)?;
        }
        self.rms_norm(&xs, &self.norm)
    }

    /// Next-token logits for hidden states `[rows, hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let head = self.lm_head.as_ref().unwrap_or(&self.embedding);
        head.matmul(hidden)
    }

    fn rms_norm(&self, xs: &Tensor, weight: &Tensor) -> Result<Tensor> {
        let eps = self.config.rms_norm_eps as f32;
        match self.kernels {
            Kernels::Fused => candle_nn::ops::rms_norm(xs, weight, eps),
            Kernels::Differentiable => kernels::rms_norm(xs, weight, eps),
        }
    }

    fn attention(
        &self,
        block: &Block,
        xs: &Tensor,
        offset: usize,
        mask: Option<&Tensor>,
        cache: &mut Option<LayerCache>,
    ) -> Result<Tensor> {
        let (batch, positions, _) = xs.dims3()?;
        let head_dim = self.config.head_dim();
        let heads = self.config.num_attention_heads;
        let kv_heads = self.config.key_value_heads();
        let split = |t: Tensor, n: usize| {
            t.reshape((batch, positions, n, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let [q, k, v] = block.attention_in.forward(xs)?;
        let q = self.rotate(&split(q, heads)?, offset)?;
        let k = self.rotate(&split(k, kv_heads)?, offset)?;
        let v = split(v, kv_heads)?;
        let (k, v) = append(cache, k, v)?;
        // The query heads that share a key/value head are neighbours: as
        // one head of `repeat` times the positions, each group takes one
        // product with its keys, which are never copied per query head.
        let repeat = heads / kv_heads;
        let q = q.reshape((batch, kv_heads, repeat * positions, head_dim))?;
        let scores = q.matmul(&k.t()?)?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let weights = match self.kernels {
            Kernels::Fused => {
                let mut scores = (scores * scale)?;
                if let Some(mask) = mask {
                    scores = add_causal_mask(&scores, mask, positions)?;
                }
                candle_nn::ops::softmax_last_dim(&scores)?
            }
            Kernels::Differentiable => kernels::causal_softmax(&scores, scale, positions, offset)?,
        };
        let attended = weights
            .matmul(&v)?
            .reshape((batch, heads, positions, head_dim))?
            .transpose(1, 2)?
            .reshape((batch, positions, heads * head_dim))?;
        block.o.forward(&attended)
    }

    fn rotate(&self, xs: &Tensor, offset: usize) -> Result<Tensor> {
        let positions = xs.dim(2)?;
        let cos = self.cos.narrow(0, offset, positions)?;
        let sin = self.sin.narrow(0, offset, positions)?;
        match self.kernels {
            Kernels::Fused => candle_nn::rotary_emb::rope(xs, &cos, &sin),
            Kernels::Differentiable => kernels::rope(xs, &cos, &sin),
        }
    }
}

impl NextLogits for Llama {
    fn next_logits(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let input = Tensor::new(tokens, self.device())?.unsqueeze(0)?;
        let hidden = self.hidden(&input, cache)?;
        let last = hidden.i((0, tokens.len() - 1))?.unsqueeze(0)?;
        self.logits(&last)?.squeeze(0)
    }
}

impl Decoder for Llama {
    fn start(&self) -> Box<dyn DecodeSession + '_> {
        CachedSession::boxed(self)
    }

    fn context(&self) -> usize {
        self.config.max_position_embeddings
    }
}

fn check_shape(name: &str, dims: &[usize], expected: &[usize]) -> Result<()> {
    if dims != expected {
        candle_core::bail!(
            "{name} has shape {dims:?} but the config asks for {expected:?}: the weights and config.json are of different models"
        );
    }
    Ok(())
}

/// The token embedding's Hugging Face name.
const EMBEDDING: &str = "model.embed_tokens.weight";

enum Rotated {
    Query,
    Key,
}

/// The GGUF name of a Hugging Face tensor name.
fn gguf_name(name: &str) -> (String, Option<Rotated>) {
    let fixed = match name {
        EMBEDDING => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(fixed) = fixed {
        return (fixed.to_string(), None);
    }
    let rest = name.trim_start_matches("model.layers.");
    let (layer, part) = rest.split_once('.').unwrap_or((rest, ""));
    let (gguf, rotated) = match part {
        "input_layernorm.weight" => ("attn_norm", None),
        "post_attention_layernorm.weight" => ("ffn_norm", None),
        "self_attn.q_proj.weight" => ("attn_q", Some(Rotated::Query)),
        "self_attn.k_proj.weight" => ("attn_k", Some(Rotated::Key)),
        "self_attn.v_proj.weight" => ("attn_v", None),
        "self_attn.o_proj.weight" => ("attn_output", None),
        "mlp.gate_proj.weight" => ("ffn_gate", None),
        "mlp.up_proj.weight" => ("ffn_up", None),
        "mlp.down_proj.weight" => ("ffn_down", None),
        other => (other, None),
    };
    (format!("blk.{layer}.{gguf}.weight"), rotated)
}

/// Reorders each head's rows from rotary pairs side by side
/// (`x0 y0 x1 y1 …`) to halves (`x0 x1 … y0 y1 …`).
/// llama.cpp's query or key rows in Hugging Face's order
/// ([`interleaved_to_halves`] of the row indices): whole rows move, so every
/// block format's blocks stay intact.
fn reorder_rows(tensor: &QTensor, heads: usize) -> Result<QTensor> {
    let (rows, _) = tensor.shape().dims2()?;
    let indices = Tensor::arange(0u32, rows as u32, &CPU)?.reshape((rows, 1))?;
    let order = interleaved_to_halves(&indices, heads)?
        .flatten_all()?
        .to_vec1::<u32>()?;
    let data = tensor.data()?;
    let row_bytes = data.len() / rows;
    let mut reordered = Vec::with_capacity(data.len());
    for row in order {
        reordered.extend_from_slice(&data[row as usize * row_bytes..][..row_bytes]);
    }
    qtensor_from_ggml(
        tensor.dtype(),
        &reordered,
        tensor.shape().dims().to_vec(),
        &CPU,
    )
}

fn interleaved_to_halves(weight: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, columns) = weight.dims2()?;
    let head_dim = rows / heads;
    weight
        .reshape((heads, head_dim / 2, 2, columns))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_hugging_face() {
        assert_eq!(
            layer_tensor(3, "q_proj"),
            "model.layers.3.self_attn.q_proj.weight"
        );
        assert_eq!(
            layer_tensor(0, "down_proj"),
            "model.layers.0.mlp.down_proj.weight"
        );
        assert_eq!(
            layer_tensor(0, "up_proj"),
            "model.layers.0.mlp.up_proj.weight"
        );
        assert_eq!(
            gguf_name("model.layers.12.self_attn.o_proj.weight").0,
            "blk.12.attn_output.weight"
        );
        assert!(matches!(
            gguf_name("model.layers.0.self_attn.k_proj.weight"),
            (_, Some(Rotated::Key))
        ));
    }

    #[test]
    fn unpermuting_pairs_each_dimension_with_the_one_half_a_head_away() {
        // One head of four rotary dimensions, rows x0 y0 x1 y1.
        let weight = Tensor::new(&[[0f32], [10.], [1.], [11.]], &Device::Cpu).unwrap();
        let halves = interleaved_to_halves(&weight, 1).unwrap();
        assert_eq!(
            halves.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0., 1., 10., 11.]
        );
    }
}
