//! GPT-2 family models (GPT-2, DistilGPT-2, ruGPT-3 small and medium) from
//! Hugging Face safetensors. Their projections are `Conv1D` layers whose
//! weights are stored `[in, out]`, transposed relative to `Linear`'s, so
//! they multiply as stored.

use std::path::Path;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::LayerNorm;
use serde::Deserialize;

use super::attention::{Cache, CachedSession, LayerCache, NextLogits, append, causal_mask};
use super::writer::{DecodeSession, Decoder};

/// The hyperparameters, as Hugging Face's `config.json` names them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_positions: usize,
    /// The MLP's width; 4 × `n_embd` when absent.
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
}

fn default_layer_norm_epsilon() -> f64 {
    1e-5
}

/// `y = x W + b` with `W` stored `[in, out]`.
#[derive(Clone, Debug)]
struct Conv1D {
    weight: Tensor,
    bias: Tensor,
}

impl Conv1D {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (batch, positions, width) = xs.dims3()?;
        xs.reshape((batch * positions, width))?
            .matmul(&self.weight)?
            .broadcast_add(&self.bias)?
            .reshape((batch, positions, ()))
    }
}

#[derive(Clone, Debug)]
struct Block {
    attention_norm: LayerNorm,
    qkv: Conv1D,
    attention_out: Conv1D,
    mlp_norm: LayerNorm,
    mlp_in: Conv1D,
    mlp_out: Conv1D,
}

#[derive(Clone, Debug)]
pub struct Gpt2 {
    config: Gpt2Config,
    token_embedding: Tensor,
    position_embedding: Tensor,
    blocks: Vec<Block>,
    final_norm: LayerNorm,
}

impl Gpt2 {
    /// Loads Hugging Face safetensors of any float type, as F32 on
    /// `device`, with or without `GPT2LMHeadModel`'s `transformer.` prefix.
    pub fn from_safetensors(
        config: Gpt2Config,
        files: &[impl AsRef<Path>],
        device: &Device,
    ) -> Result<Self> {
        // SAFETY: the files are mapped read-only; as with any mmap, they
        // must not be truncated while the model loads.
        let tensors = unsafe { MmapedSafetensors::multi(files)? };
        let prefix = if tensors.get("transformer.wte.weight").is_ok() {
            "transformer."
        } else {
            ""
        };
        let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let full = format!("{prefix}{name}");
            let tensor = tensors.load(&full, device)?.to_dtype(DType::F32)?;
            if tensor.dims() != shape {
                candle_core::bail!(
                    "{full} has shape {:?} but the config asks for {shape:?}: the weights and config.json are of different models",
                    tensor.dims()
                );
            }
            Ok(tensor)
        };
        let width = config.n_embd;
        let inner = config.n_inner.unwrap_or(4 * width);
        let eps = config.layer_norm_epsilon;
        let norm = |name: &str| -> Result<LayerNorm> {
            Ok(LayerNorm::new(
                get(&format!("{name}.weight"), &[width])?,
                get(&format!("{name}.bias"), &[width])?,
                eps,
            ))
        };
        let conv = |name: &str, input: usize, output: usize| -> Result<Conv1D> {
            Ok(Conv1D {
                weight: get(&format!("{name}.weight"), &[input, output])?,
                bias: get(&format!("{name}.bias"), &[output])?,
            })
        };
        let blocks = (0..config.n_layer)
            .map(|layer| {
                let at = |part: &str| format!("h.{layer}.{part}");
                Ok(Block {
                    attention_norm: norm(&at("ln_1"))?,
                    qkv: conv(&at("attn.c_attn"), width, 3 * width)?,
                    attention_out: conv(&at("attn.c_proj"), width, width)?,
                    mlp_norm: norm(&at("ln_2"))?,
                    mlp_in: conv(&at("mlp.c_fc"), width, inner)?,
                    mlp_out: conv(&at("mlp.c_proj"), inner, width)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Gpt2 {
            token_embedding: get("wte.weight", &[config.vocab_size, width])?,
            position_embedding: get("wpe.weight", &[config.n_positions, width])?,
            blocks,
            final_norm: norm("ln_f")?,
            config,
        })
    }

    fn attention(
        &self,
        block: &Block,
        xs: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut Option<LayerCache>,
    ) -> Result<Tensor> {
        let (batch, positions, width) = xs.dims3()?;
        let heads = self.config.n_head;
        let head_dim = width / heads;
        let qkv = block.qkv.forward(xs)?;
        let split = |index: usize| {
            qkv.narrow(2, index * width, width)?
                .reshape((batch, positions, heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (k, v) = append(cache, split(1)?, split(2)?)?;
        let mut scores = (split(0)?.matmul(&k.t()?)? / (head_dim as f64).sqrt())?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let attended = candle_nn::ops::softmax_last_dim(&scores)?
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, positions, width))?;
        block.attention_out.forward(&attended)
    }
}

impl NextLogits for Gpt2 {
    fn next_logits(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let offset = cache.len();
        let positions = tokens.len();
        if offset + positions > self.config.n_positions {
            candle_core::bail!(
                "{} positions exceed the model's context of {}",
                offset + positions,
                self.config.n_positions
            );
        }
        let device = self.token_embedding.device();
        let ids = Tensor::new(tokens, device)?;
        let places = Tensor::arange(offset as u32, (offset + positions) as u32, device)?;
        let mut xs = (self.token_embedding.embedding(&ids)?
            + self.position_embedding.embedding(&places)?)?
        .unsqueeze(0)?;
        let mask = causal_mask(positions, offset, device)?;
        for (block, layer_cache) in self.blocks.iter().zip(cache.layers(self.blocks.len())) {
            let normed = block.attention_norm.forward(&xs)?;
            xs = (&xs + self.attention(block, &normed, mask.as_ref(), layer_cache)?)?;
            let normed = block.mlp_norm.forward(&xs)?;
            let hidden = block.mlp_in.forward(&normed)?.gelu()?;
            xs = (&xs + block.mlp_out.forward(&hidden)?)?;
        }
        let last = self.final_norm.forward(&xs)?.i((0, positions - 1))?;
        // The output projection is the token embedding (tied).
        last.unsqueeze(0)?
            .matmul(&self.token_embedding.t()?)?
            .squeeze(0)
    }
}

impl Decoder for Gpt2 {
    fn start(&self) -> Box<dyn DecodeSession + '_> {
        CachedSession::boxed(self)
    }

    fn context(&self) -> usize {
        self.config.n_positions
    }
}
