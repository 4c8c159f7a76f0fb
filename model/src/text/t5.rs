//! T5 encoder-decoder models (the seed project's ruT5-base fine-tunes), v1.0
//! and v1.1, from Hugging Face weights: the prompt goes through the encoder,
//! the horoscope comes out of the decoder. candle-transformers' T5 gives the
//! decoder the encoder's bidirectional position buckets, which differ from
//! the decoder's own beyond a few tokens; this one follows transformers.

use std::path::Path;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::attention::{Cache, LayerCache, append, causal_mask};
use super::writer::{DecodeSession, Decoder};

/// The hyperparameters, as Hugging Face's `config.json` names them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    pub num_heads: usize,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// `relu` (v1.0), `gated-gelu` (v1.1, mT5, ruT5) or `gated-silu`.
    #[serde(default = "default_feed_forward")]
    pub feed_forward_proj: String,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Whether the decoder's output is scaled by 1/√d_model before the
    /// head; transformers 5 writes it, older configs imply it from tying.
    #[serde(default)]
    pub scale_decoder_outputs: Option<bool>,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default)]
    pub decoder_start_token_id: Option<usize>,
}

fn default_buckets() -> usize {
    32
}

fn default_max_distance() -> usize {
    128
}

fn default_eps() -> f64 {
    1e-6
}

fn default_feed_forward() -> String {
    "relu".into()
}

fn default_true() -> bool {
    true
}

#[derive(Clone, Debug)]
struct Attention {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
}

/// `x Wᵀ` for `x` of any rank.
fn linear(xs: &Tensor, weight: &Tensor) -> Result<Tensor> {
    xs.broadcast_matmul(&weight.t()?)
}

impl Attention {
    fn load(vb: &VarBuilder, config: &T5Config) -> Result<Self> {
        let inner = config.num_heads * config.d_kv;
        let (model, inner_shape) = (config.d_model, (inner, config.d_model));
        Ok(Attention {
            q: vb.get(inner_shape, "q.weight")?,
            k: vb.get(inner_shape, "k.weight")?,
            v: vb.get(inner_shape, "v.weight")?,
            o: vb.get((model, inner), "o.weight")?,
        })
    }

    /// `[batch, heads, positions, d_kv]` from `[batch, positions, inner]`.
    fn heads(xs: Tensor, heads: usize) -> Result<Tensor> {
        let (batch, positions, inner) = xs.dims3()?;
        xs.reshape((batch, positions, heads, inner / heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// T5 attention: no 1/√d scaling (it is folded into the weights), an
    /// additive position bias or mask.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let (batch, heads, positions, width) = {
            let (b, h, p, _) = q.dims4()?;
            (b, h, p, v.dim(3)?)
        };
        let attended = candle_nn::ops::softmax_last_dim(&scores)?
            .matmul(v)?
            .transpose(1, 2)?
            .reshape((batch, positions, heads * width))?;
        linear(&attended, &self.o)
    }
}

#[derive(Clone, Debug)]
enum FeedForward {
    Relu {
        wi: Tensor,
        wo: Tensor,
    },
    Gated {
        wi_0: Tensor,
        wi_1: Tensor,
        wo: Tensor,
        silu: bool,
    },
}

impl FeedForward {
    fn load(vb: &VarBuilder, config: &T5Config) -> Result<Self> {
        let (model, ff) = (config.d_model, config.d_ff);
        let wo = vb.get((model, ff), "wo.weight")?;
        Ok(match config.feed_forward_proj.as_str() {
            "relu" => FeedForward::Relu {
                wi: vb.get((ff, model), "wi.weight")?,
                wo,
            },
            "gated-gelu" | "gated-silu" => FeedForward::Gated {
                wi_0: vb.get((ff, model), "wi_0.weight")?,
                wi_1: vb.get((ff, model), "wi_1.weight")?,
                wo,
                silu: config.feed_forward_proj == "gated-silu",
            },
            other => candle_core::bail!(
                "the feed-forward kind '{other}' is not supported: use relu, gated-gelu or gated-silu"
            ),
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            FeedForward::Relu { wi, wo } => linear(&linear(xs, wi)?.relu()?, wo),
            FeedForward::Gated {
                wi_0,
                wi_1,
                wo,
                silu,
            } => {
                let gate = linear(xs, wi_0)?;
                let gate = if *silu { gate.silu()? } else { gate.gelu()? };
                linear(&(gate * linear(xs, wi_1)?)?, wo)
            }
        }
    }
}

#[derive(Clone, Debug)]
struct EncoderBlock {
    attention_norm: Tensor,
    attention: Attention,
    ff_norm: Tensor,
    ff: FeedForward,
}

#[derive(Clone, Debug)]
struct DecoderBlock {
    attention_norm: Tensor,
    attention: Attention,
    cross_norm: Tensor,
    cross: Attention,
    ff_norm: Tensor,
    ff: FeedForward,
}

#[derive(Clone, Debug)]
pub struct T5 {
    config: T5Config,
    shared: Tensor,
    encoder: Vec<EncoderBlock>,
    encoder_bias: Tensor,
    encoder_norm: Tensor,
    decoder: Vec<DecoderBlock>,
    decoder_bias: Tensor,
    decoder_norm: Tensor,
    lm_head: Option<Tensor>,
}

impl T5 {
    /// Loads safetensors of any float type or a zip-format
    /// `pytorch_model.bin`, as F32 on `device`.
    pub fn load(config: T5Config, weights: &[impl AsRef<Path>], device: &Device) -> Result<Self> {
        let is_pickle = weights
            .first()
            .is_some_and(|p| p.as_ref().extension().is_some_and(|e| e == "bin"));
        let vb = if is_pickle {
            VarBuilder::from_pth(&weights[0], DType::F32, device)?
        } else {
            // SAFETY: the files are mapped read-only; as with any mmap,
            // they must not be truncated while the model loads.
            unsafe { VarBuilder::from_mmaped_safetensors(weights, DType::F32, device)? }
        };
        let model = config.d_model;
        let shared = if vb.contains_tensor("shared.weight") {
            vb.get((config.vocab_size, model), "shared.weight")?
        } else {
            vb.get((config.vocab_size, model), "encoder.embed_tokens.weight")?
        };
        let bias_shape = (config.relative_attention_num_buckets, config.num_heads);
        let encoder_vb = vb.pp("encoder");
        let encoder = (0..config.num_layers)
            .map(|i| {
                let block = encoder_vb.pp(format!("block.{i}.layer"));
                Ok(EncoderBlock {
                    attention_norm: block.get(model, "0.layer_norm.weight")?,
                    attention: Attention::load(&block.pp("0.SelfAttention"), &config)?,
                    ff_norm: block.get(model, "1.layer_norm.weight")?,
                    ff: FeedForward::load(&block.pp("1.DenseReluDense"), &config)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder_vb = vb.pp("decoder");
        let decoder = (0..config.num_decoder_layers.unwrap_or(config.num_layers))
            .map(|i| {
                let block = decoder_vb.pp(format!("block.{i}.layer"));
                Ok(DecoderBlock {
                    attention_norm: block.get(model, "0.layer_norm.weight")?,
                    attention: Attention::load(&block.pp("0.SelfAttention"), &config)?,
                    cross_norm: block.get(model, "1.layer_norm.weight")?,
                    cross: Attention::load(&block.pp("1.EncDecAttention"), &config)?,
                    ff_norm: block.get(model, "2.layer_norm.weight")?,
                    ff: FeedForward::load(&block.pp("2.DenseReluDense"), &config)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let bias = |stack: &VarBuilder| {
            stack.get(
                bias_shape,
                "block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            )
        };
        let lm_head = if vb.contains_tensor("lm_head.weight") && !config.tie_word_embeddings {
            Some(vb.get((config.vocab_size, model), "lm_head.weight")?)
        } else {
            None
        };
        Ok(T5 {
            encoder_bias: bias(&encoder_vb)?,
            encoder_norm: encoder_vb.get(model, "final_layer_norm.weight")?,
            decoder_bias: bias(&decoder_vb)?,
            decoder_norm: decoder_vb.get(model, "final_layer_norm.weight")?,
            shared,
            encoder,
            decoder,
            lm_head,
            config,
        })
    }

    fn norm(&self, xs: &Tensor, weight: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm(xs, weight, self.config.layer_norm_epsilon as f32)
    }

    /// The position bias `[1, heads, queries, keys]` for queries at
    /// `queries` and keys at `0..keys`.
    fn position_bias(
        &self,
        table: &Tensor,
        queries: std::ops::Range<usize>,
        keys: usize,
        bidirectional: bool,
    ) -> Result<Tensor> {
        let rows = queries.len();
        let buckets: Vec<u32> = queries
            .flat_map(|query| {
                (0..keys).map(move |key| {
                    relative_bucket(
                        key as i64 - query as i64,
                        bidirectional,
                        self.config.relative_attention_num_buckets,
                        self.config.relative_attention_max_distance,
                    )
                })
            })
            .collect();
        let buckets = Tensor::from_vec(buckets, (rows, keys), table.device())?;
        let mut bias = table
            .embedding(&buckets.flatten_all()?)?
            .reshape((rows, keys, ()))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?;
        if !bidirectional && let Some(mask) = causal_mask(rows, keys - rows, table.device())? {
            bias = bias.broadcast_add(&mask)?;
        }
        bias.contiguous()
    }

    fn encode(&self, tokens: &[u32]) -> Result<Tensor> {
        let ids = Tensor::new(tokens, self.shared.device())?;
        let mut xs = self.shared.embedding(&ids)?.unsqueeze(0)?;
        let bias = self.position_bias(&self.encoder_bias, 0..tokens.len(), tokens.len(), true)?;
        let heads = self.config.num_heads;
        for block in &self.encoder {
            let normed = self.norm(&xs, &block.attention_norm)?;
            let a = &block.attention;
            let q = Attention::heads(linear(&normed, &a.q)?, heads)?;
            let k = Attention::heads(linear(&normed, &a.k)?, heads)?;
            let v = Attention::heads(linear(&normed, &a.v)?, heads)?;
            xs = (&xs + a.attend(&q, &k, &v, Some(&bias))?)?;
            let normed = self.norm(&xs, &block.ff_norm)?;
            xs = (&xs + block.ff.forward(&normed)?)?;
        }
        self.norm(&xs, &self.encoder_norm)
    }
}

/// transformers' `_relative_position_bucket`: exact buckets for near
/// positions, logarithmic ones up to `max_distance`; the encoder tells
/// earlier from later keys, the decoder sees only earlier ones.
fn relative_bucket(relative: i64, bidirectional: bool, buckets: usize, max_distance: usize) -> u32 {
    let (mut buckets, mut base, distance) = (buckets as i64, 0, relative);
    let distance = if bidirectional {
        buckets /= 2;
        if distance > 0 {
            base = buckets;
        }
        distance.abs()
    } else {
        (-distance).max(0)
    };
    let max_exact = buckets / 2;
    let bucket = if distance < max_exact {
        distance
    } else {
        let scaled = ((distance as f32 / max_exact as f32).ln()
            / (max_distance as f32 / max_exact as f32).ln()
            * (buckets - max_exact) as f32) as i64;
        (max_exact + scaled).min(buckets - 1)
    };
    (base + bucket) as u32
}

impl Decoder for T5 {
    fn start(&self) -> Box<dyn DecodeSession + '_> {
        Box::new(T5Session {
            model: self,
            cross: Vec::new(),
            cache: Cache::default(),
        })
    }

    /// Relative position buckets set no limit; the sampler's token budget does.
    fn context(&self) -> usize {
        usize::MAX
    }
}

/// One horoscope: each decoder layer's keys and values of the encoded
/// prompt, and the decoder's own cache.
struct T5Session<'a> {
    model: &'a T5,
    cross: Vec<(Tensor, Tensor)>,
    cache: Cache,
}

impl T5Session<'_> {
    fn decode(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let model = self.model;
        let heads = model.config.num_heads;
        let offset = self.cache.len();
        let ids = Tensor::new(tokens, model.shared.device())?;
        let mut xs = model.shared.embedding(&ids)?.unsqueeze(0)?;
        let bias = model.position_bias(
            &model.decoder_bias,
            offset..offset + tokens.len(),
            offset + tokens.len(),
            false,
        )?;
        let layers = self.cache.layers(model.decoder.len());
        for ((block, layer_cache), (cross_k, cross_v)) in
            model.decoder.iter().zip(layers).zip(&self.cross)
        {
            xs = (&xs
                + self_attention(
                    block,
                    &model.norm(&xs, &block.attention_norm)?,
                    &bias,
                    layer_cache,
                    heads,
                )?)?;
            let normed = model.norm(&xs, &block.cross_norm)?;
            let q = Attention::heads(linear(&normed, &block.cross.q)?, heads)?;
            xs = (&xs + block.cross.attend(&q, cross_k, cross_v, None)?)?;
            let normed = model.norm(&xs, &block.ff_norm)?;
            xs = (&xs + block.ff.forward(&normed)?)?;
        }
        let last =
            model
                .norm(&xs, &model.decoder_norm)?
                .squeeze(0)?
                .narrow(0, tokens.len() - 1, 1)?;
        let scale = model
            .config
            .scale_decoder_outputs
            .unwrap_or(model.config.tie_word_embeddings);
        let last = if scale {
            (last / (model.config.d_model as f64).sqrt())?
        } else {
            last
        };
        let head = model.lm_head.as_ref().unwrap_or(&model.shared);
        last.matmul(&head.t()?)?.squeeze(0)?.to_vec1()
    }
}

fn self_attention(
    block: &DecoderBlock,
    normed: &Tensor,
    bias: &Tensor,
    cache: &mut Option<LayerCache>,
    heads: usize,
) -> Result<Tensor> {
    let a = &block.attention;
    let q = Attention::heads(linear(normed, &a.q)?, heads)?;
    let k = Attention::heads(linear(normed, &a.k)?, heads)?;
    let v = Attention::heads(linear(normed, &a.v)?, heads)?;
    let (k, v) = append(cache, k, v)?;
    a.attend(&q, &k, &v, Some(bias))
}

impl DecodeSession for T5Session<'_> {
    /// The first call is the prompt: it is encoded and the decoder starts
    /// from its start token; later calls are the decoder's own tokens.
    fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        if !self.cross.is_empty() {
            return self.decode(tokens);
        }
        let encoded = self.model.encode(tokens)?;
        let heads = self.model.config.num_heads;
        self.cross = self
            .model
            .decoder
            .iter()
            .map(|block| {
                Ok((
                    Attention::heads(linear(&encoded, &block.cross.k)?, heads)?,
                    Attention::heads(linear(&encoded, &block.cross.v)?, heads)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let config = &self.model.config;
        let start = config.decoder_start_token_id.unwrap_or(config.pad_token_id) as u32;
        self.decode(&[start])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_transformers() {
        // Values from transformers' _relative_position_bucket (32 buckets, 128).
        let bucket = |r, bi| relative_bucket(r, bi, 32, 128);
        assert_eq!(bucket(0, true), 0);
        assert_eq!(bucket(3, true), 19);
        assert_eq!(bucket(-3, true), 3);
        assert_eq!(bucket(-20, true), 10);
        assert_eq!(bucket(-20, false), 17);
        assert_eq!(bucket(5, false), 0);
        assert_eq!(bucket(-1000, false), 31);
        assert_eq!(bucket(1000, true), 31);
    }
}
