//! What the decoder-only models share around attention: the cache of keys
//! and values of the positions seen so far, and the causal mask.

use candle_core::{Device, Result, Tensor};

use super::writer::DecodeSession;

/// One layer's keys and values, `[batch, heads, positions, head_dim]`.
pub type LayerCache = Option<(Tensor, Tensor)>;

/// Keys and values of the positions seen so far, one entry a layer.
#[derive(Clone, Debug, Default)]
pub struct Cache {
    layers: Vec<LayerCache>,
}

impl Cache {
    /// How many positions the cache holds.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each layer's entry, for a model of `count` layers.
    pub(super) fn layers(&mut self, count: usize) -> std::slice::IterMut<'_, LayerCache> {
        self.layers.resize(count, None);
        self.layers.iter_mut()
    }
}

/// Appends the new positions' keys and values to a layer's cache and
/// returns all of them.
pub(super) fn append(cache: &mut LayerCache, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
    let (k, v) = match cache.take() {
        Some((past_k, past_v)) => (
            Tensor::cat(&[&past_k, &k], 2)?,
            Tensor::cat(&[&past_v, &v], 2)?,
        ),
        None => (k, v),
    };
    *cache = Some((k.clone(), v.clone()));
    Ok((k, v))
}

/// `-inf` where a position would see a later one (`[positions, offset +
/// positions]`); `None` for one position, which sees everything cached.
pub(super) fn causal_mask(
    positions: usize,
    offset: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    if positions == 1 {
        return Ok(None);
    }
    let width = offset + positions;
    let mask: Vec<f32> = (0..positions)
        .flat_map(|i| {
            (0..width).map(move |j| {
                if j > i + offset {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (positions, width), device).map(Some)
}

/// A model that gives the logits of the token after `tokens`, which follow
/// the positions already in `cache` (`[vocab]`).
pub trait NextLogits: Send + Sync {
    fn next_logits(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor>;
}

/// A sequence being generated: the shared model and the sequence's own cache.
pub(super) struct CachedSession<'a, M> {
    model: &'a M,
    cache: Cache,
}

impl<'a, M: NextLogits> CachedSession<'a, M> {
    pub(super) fn boxed(model: &'a M) -> Box<dyn DecodeSession + 'a> {
        Box::new(CachedSession {
            model,
            cache: Cache::default(),
        })
    }
}

impl<M: NextLogits> DecodeSession for CachedSession<'_, M> {
    fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.model.next_logits(tokens, &mut self.cache)?.to_vec1()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_hides_later_positions_only() {
        let mask = causal_mask(2, 1, &Device::Cpu).unwrap().unwrap();
        let rows = mask.to_vec2::<f32>().unwrap();
        assert_eq!(rows[0][..2], [0.0, 0.0]);
        assert_eq!(rows[0][2], f32::NEG_INFINITY);
        assert_eq!(rows[1], [0.0, 0.0, 0.0]);
        assert!(causal_mask(1, 5, &Device::Cpu).unwrap().is_none());
    }
}
