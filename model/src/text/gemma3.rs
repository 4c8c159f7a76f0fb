//! Gemma 3 text models (the 270M base model first), served from a GGUF as
//! stored: the block formats multiplied by this crate's kernels, the
//! embedding looked up row by row and reused as the head. Five layers in
//! six attend over a sliding window of recent positions, with their own
//! rotary base; every sixth attends over everything.
//!
//! candle-transformers 0.11's `quantized_gemma3` gates with SiLU where
//! Gemma uses GELU, ignores the window while decoding and dequantizes the
//! 262,144-row embedding to 671 MB, hence a model of our own.

use candle_core::quantized::gguf_file;
use candle_core::{IndexOp, Result, Tensor};

use super::attention::{
    Cache, CachedSession, LayerCache, NextLogits, add_causal_mask, append, rotary_tables,
};
use super::blocks::BlockMatrix;
use super::kernels;
use super::linear::{CPU, Linear, Projections, Weight};
use super::writer::{DecodeSession, Decoder};

/// What llama.cpp's loader fixes for Gemma 3 rather than reading from the
/// file: the rotary base of the sliding-window layers, and that every
/// `GLOBAL_EVERY`-th layer attends globally.
const LOCAL_ROPE_BASE: f64 = 10_000.0;
const GLOBAL_EVERY: usize = 6;
/// Positions the rotary tables cover: a few-shot prompt and a horoscope
/// need under a thousand; the model's own 32,768 would cost 64 MB of tables.
const MAX_POSITIONS: usize = 4096;

/// The hyperparameters, as a Gemma 3 GGUF records them.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemma3Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub sliding_window: usize,
    pub context_length: usize,
}

impl Gemma3Config {
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let value = |key: &str| {
            content
                .metadata
                .get(&format!("gemma3.{key}"))
                .ok_or_else(|| candle_core::Error::Msg(format!("the GGUF has no gemma3.{key}")))
        };
        let count = |key: &str| value(key).and_then(|v| v.to_u32()).map(|v| v as usize);
        let vocab_size = content
            .tensor_infos
            .get(EMBEDDING)
            .map(|info| info.shape.dims()[0])
            .ok_or_else(|| candle_core::Error::Msg(format!("the GGUF has no {EMBEDDING}")))?;
        Ok(Gemma3Config {
            vocab_size,
            hidden_size: count("embedding_length")?,
            intermediate_size: count("feed_forward_length")?,
            num_hidden_layers: count("block_count")?,
            num_attention_heads: count("attention.head_count")?,
            num_key_value_heads: count("attention.head_count_kv")?,
            head_dim: count("attention.key_length")?,
            rms_norm_eps: f64::from(value("attention.layer_norm_rms_epsilon")?.to_f32()?),
            rope_theta: f64::from(value("rope.freq_base")?.to_f32()?),
            sliding_window: count("attention.sliding_window")?,
            context_length: count("context_length")?,
        })
    }

    fn is_global(layer: usize) -> bool {
        (layer + 1).is_multiple_of(GLOBAL_EVERY)
    }

    fn positions(&self) -> usize {
        self.context_length.min(MAX_POSITIONS)
    }
}

/// The token embedding's GGUF name; it is the head too.
const EMBEDDING: &str = "token_embd.weight";

#[derive(Clone, Debug)]
struct Block {
    attention_norm: Tensor,
    /// Query, key and value.
    attention_in: Projections<3>,
    query_norm: Tensor,
    key_norm: Tensor,
    o: Linear,
    post_attention_norm: Tensor,
    mlp_norm: Tensor,
    /// Gate and up.
    mlp_in: Projections<2>,
    down: Linear,
    post_mlp_norm: Tensor,
    global: bool,
}

/// `cos` and `sin` tables for one rotary base.
#[derive(Clone, Debug)]
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(base: f64, config: &Gemma3Config) -> Result<Self> {
        let (cos, sin) = rotary_tables(base, config.head_dim, config.positions(), &CPU)?;
        Ok(Rotary { cos, sin })
    }

    fn rotate(&self, xs: &Tensor, offset: usize) -> Result<Tensor> {
        let positions = xs.dim(2)?;
        candle_nn::rotary_emb::rope(
            xs,
            &self.cos.narrow(0, offset, positions)?,
            &self.sin.narrow(0, offset, positions)?,
        )
    }
}

#[derive(Clone, Debug)]
pub struct Gemma3 {
    config: Gemma3Config,
    embedding: Weight,
    blocks: Vec<Block>,
    norm: Tensor,
    global_rotary: Rotary,
    local_rotary: Rotary,
}

impl Gemma3 {
    /// A Gemma 3 GGUF served as stored: block formats multiplied as they
    /// are, with 8-bit activations as llama.cpp does.
    pub fn from_gguf_quantized<R: std::io::Read + std::io::Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
    ) -> Result<Self> {
        Self::read_gguf(content, reader, true)
    }

    /// A Gemma 3 GGUF with every weight dequantized to F32.
    pub fn from_gguf<R: std::io::Read + std::io::Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
    ) -> Result<Self> {
        Self::read_gguf(content, reader, false)
    }

    /// Reads every tensor, each shape checked before it is read; block
    /// formats straight into their matrices when `quantized`. The norm
    /// weights are used as stored: llama.cpp's converter has already added
    /// Gemma's `1 +`.
    fn read_gguf<R: std::io::Read + std::io::Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        quantized: bool,
    ) -> Result<Self> {
        let config = Gemma3Config::from_gguf(content)?;
        let mut get = |name: &str, shape: &[usize]| -> Result<Weight> {
            let Some(info) = content.tensor_infos.get(name) else {
                candle_core::bail!("the GGUF has no tensor {name}");
            };
            if info.shape.dims() != shape {
                candle_core::bail!(
                    "{name} has shape {:?} where a Gemma 3 of these hyperparameters has {shape:?}",
                    info.shape.dims()
                );
            }
            if quantized && let Some(blocks) = BlockMatrix::from_gguf(content, reader, name)? {
                return Ok(Weight::Blocks(blocks));
            }
            let tensor = content.tensor(reader, name, &CPU)?;
            if quantized {
                Weight::from_gguf(tensor, name == EMBEDDING)
            } else {
                Ok(Weight::Dense(tensor.dequantize(&CPU)?))
            }
        };
        let hidden = config.hidden_size;
        let head_dim = config.head_dim;
        let queries = config.num_attention_heads * head_dim;
        let kv = config.num_key_value_heads * head_dim;
        let inner = config.intermediate_size;
        let embedding = get(EMBEDDING, &[config.vocab_size, hidden])?;
        let mut blocks = Vec::with_capacity(config.num_hidden_layers);
        for layer in 0..config.num_hidden_layers {
            let mut linear = |part: &str, shape: &[usize]| -> Result<Linear> {
                Ok(Linear {
                    weight: get(&format!("blk.{layer}.{part}.weight"), shape)?,
                    lora: None,
                })
            };
            let q = linear("attn_q", &[queries, hidden])?;
            let k = linear("attn_k", &[kv, hidden])?;
            let v = linear("attn_v", &[kv, hidden])?;
            let o = linear("attn_output", &[hidden, queries])?;
            let gate = linear("ffn_gate", &[inner, hidden])?;
            let up = linear("ffn_up", &[inner, hidden])?;
            let down = linear("ffn_down", &[hidden, inner])?;
            let mut norm = |part: &str, width: usize| -> Result<Tensor> {
                get(&format!("blk.{layer}.{part}.weight"), &[width])?
                    .dense()
                    .cloned()
            };
            let mut block = Block {
                attention_norm: norm("attn_norm", hidden)?,
                attention_in: Projections::Apart([q, k, v]),
                query_norm: norm("attn_q_norm", head_dim)?,
                key_norm: norm("attn_k_norm", head_dim)?,
                o,
                post_attention_norm: norm("post_attention_norm", hidden)?,
                mlp_norm: norm("ffn_norm", hidden)?,
                mlp_in: Projections::Apart([gate, up]),
                down,
                post_mlp_norm: norm("post_ffw_norm", hidden)?,
                global: Gemma3Config::is_global(layer),
            };
            block.attention_in.stack();
            block.mlp_in.stack();
            blocks.push(block);
        }
        let norm = get("output_norm.weight", &[hidden])?.dense()?.clone();
        Ok(Gemma3 {
            global_rotary: Rotary::new(config.rope_theta, &config)?,
            local_rotary: Rotary::new(LOCAL_ROPE_BASE, &config)?,
            config,
            embedding,
            blocks,
            norm,
        })
    }

    pub fn config(&self) -> &Gemma3Config {
        &self.config
    }

    /// The last layer's output for `tokens` (`[batch, positions]`), which
    /// follow the positions already in `cache`.
    pub fn hidden(&self, tokens: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let (batch, positions) = tokens.dims2()?;
        let offset = cache.len();
        if offset + positions > self.config.positions() {
            candle_core::bail!(
                "{} positions exceed the {} this model serves",
                offset + positions,
                self.config.positions()
            );
        }
        let hidden = self.config.hidden_size;
        let mut xs = (self
            .embedding
            .rows(&tokens.flatten_all()?)?
            .reshape((batch, positions, hidden))?
            * (hidden as f64).sqrt())?;
        for (block, layer_cache) in self.blocks.iter().zip(cache.layers(self.blocks.len())) {
            let normed = self.rms_norm(&xs, &block.attention_norm)?;
            let attended = self.attention(block, &normed, offset, layer_cache)?;
            xs = (xs + self.rms_norm(&attended, &block.post_attention_norm)?)?;
            let normed = self.rms_norm(&xs, &block.mlp_norm)?;
            let [gate, up] = block.mlp_in.forward(&normed)?;
            let fed = block.down.forward(&kernels::gelu_mul(&gate, &up)?)?;
            xs = (xs + self.rms_norm(&fed, &block.post_mlp_norm)?)?;
        }
        self.rms_norm(&xs, &self.norm)
    }

    /// Next-token logits for hidden states `[rows, hidden]`: the embedding
    /// is the head.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.embedding.matmul(hidden)
    }

    /// Every position's logits for one sequence from the start,
    /// `[positions, vocab]`.
    pub fn sequence_logits(&self, tokens: &[u32]) -> Result<Tensor> {
        let input = Tensor::new(tokens, &CPU)?.unsqueeze(0)?;
        let hidden = self.hidden(&input, &mut Cache::default())?.squeeze(0)?;
        self.logits(&hidden)
    }

    fn rms_norm(&self, xs: &Tensor, weight: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm(xs, weight, self.config.rms_norm_eps as f32)
    }

    fn attention(
        &self,
        block: &Block,
        xs: &Tensor,
        offset: usize,
        cache: &mut Option<LayerCache>,
    ) -> Result<Tensor> {
        let (batch, positions, _) = xs.dims3()?;
        let head_dim = self.config.head_dim;
        let heads = self.config.num_attention_heads;
        let kv_heads = self.config.num_key_value_heads;
        let split = |t: Tensor, n: usize| {
            t.reshape((batch, positions, n, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let rotary = if block.global {
            &self.global_rotary
        } else {
            &self.local_rotary
        };
        let [q, k, v] = block.attention_in.forward(xs)?;
        let q = self.rms_norm(&split(q, heads)?, &block.query_norm)?;
        let k = self.rms_norm(&split(k, kv_heads)?, &block.key_norm)?;
        let q = rotary.rotate(&q, offset)?;
        let k = rotary.rotate(&k, offset)?;
        let (k, v) = append(cache, k, split(v, kv_heads)?)?;
        // A sliding layer's first query sees no key older than the window:
        // the keys before that are left out of the product altogether.
        let window = (!block.global).then_some(self.config.sliding_window);
        let first_key = window.map_or(0, |window| (offset + 1).saturating_sub(window));
        let keys = offset + positions - first_key;
        let k = k.narrow(2, first_key, keys)?;
        let v = v.narrow(2, first_key, keys)?;
        let repeat = heads / kv_heads;
        let q = q.reshape((batch, kv_heads, repeat * positions, head_dim))?;
        // Gemma 3 scales by the head size set for it (256), not by the
        // model width over the heads.
        let mut scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?;
        if let Some(mask) = window_mask(positions, offset, first_key, window)? {
            scores = add_causal_mask(&scores, &mask, positions)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let attended = weights
            .matmul(&v)?
            .reshape((batch, heads, positions, head_dim))?
            .transpose(1, 2)?
            .reshape((batch, positions, heads * head_dim))?;
        block.o.forward(&attended)
    }
}

/// `-inf` where query `i` (position `offset + i`) may not see key `j`
/// (position `first_key + j`): a later position, or one `window` or more
/// before it. `None` when every query sees every key given.
fn window_mask(
    positions: usize,
    offset: usize,
    first_key: usize,
    window: Option<usize>,
) -> Result<Option<Tensor>> {
    let keys = offset + positions - first_key;
    let hidden = |query: usize, key: usize| {
        key > query || window.is_some_and(|window| query - key >= window)
    };
    let mut any = false;
    let mask: Vec<f32> = (0..positions)
        .flat_map(|i| (0..keys).map(move |j| (offset + i, first_key + j)))
        .map(|(query, key)| {
            if hidden(query, key) {
                any = true;
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    if !any {
        return Ok(None);
    }
    Tensor::from_vec(mask, (positions, keys), &CPU).map(Some)
}

impl NextLogits for Gemma3 {
    fn next_logits(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let input = Tensor::new(tokens, &CPU)?.unsqueeze(0)?;
        let hidden = self.hidden(&input, cache)?;
        let last = hidden.i((0, tokens.len() - 1))?.unsqueeze(0)?;
        self.logits(&last)?.squeeze(0)
    }
}

impl Decoder for Gemma3 {
    fn start(&self) -> Box<dyn DecodeSession + '_> {
        CachedSession::boxed(self)
    }

    fn context(&self) -> usize {
        self.config.positions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sixth_layer_is_global() {
        let global: Vec<usize> = (0..18).filter(|&l| Gemma3Config::is_global(l)).collect();
        assert_eq!(global, [5, 11, 17]);
    }

    #[test]
    fn the_window_hides_later_and_too_old_positions() {
        // Three new positions after five, a window of three: query 5 sees
        // keys 3..=5, query 7 keys 5..=7.
        let mask = window_mask(3, 5, 3, Some(3)).unwrap().unwrap();
        let rows = mask.to_vec2::<f32>().unwrap();
        let seen = |row: &Vec<f32>| -> Vec<usize> {
            (0..row.len())
                .filter(|&j| row[j] == 0.0)
                .map(|j| j + 3)
                .collect()
        };
        assert_eq!(seen(&rows[0]), [3, 4, 5]);
        assert_eq!(seen(&rows[2]), [5, 6, 7]);
        // One new position, keys already cut to the window: nothing hidden.
        assert!(window_mask(1, 9, 7, Some(3)).unwrap().is_none());
        // A global layer only hides later positions.
        let causal = window_mask(2, 0, 0, None).unwrap().unwrap();
        assert_eq!(causal.to_vec2::<f32>().unwrap()[0][1], f32::NEG_INFINITY);
    }
}
