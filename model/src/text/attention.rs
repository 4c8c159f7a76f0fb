//! What the decoder-only models share around attention: the cache of keys
//! and values of the positions seen so far, and the causal mask.

use candle_core::{DType, Device, Result, Tensor};

use super::writer::DecodeSession;

/// One layer's keys and values, `[batch, heads, capacity, head_dim]`, of
/// which the first `len` positions are filled. Room grows `ROOM_STEP`
/// positions at a time, so a token mostly costs a copy of its own keys and
/// values, not of every earlier position's (appending by concatenation
/// copied the whole cache per token), and the room left over stays small
/// (doubling held up to twice a horoscope's cache).
#[derive(Debug)]
pub struct LayerCache {
    keys: Tensor,
    values: Tensor,
    len: usize,
}

/// Positions a layer's cache grows by.
const ROOM_STEP: usize = 128;

/// Keys and values of the positions seen so far, one entry a layer. Not
/// `Clone`: the layers' room is written in place.
#[derive(Debug, Default)]
pub struct Cache {
    layers: Vec<Option<LayerCache>>,
}

impl Cache {
    /// How many positions the cache holds.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |layer| layer.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each layer's entry, for a model of `count` layers.
    pub(super) fn layers(&mut self, count: usize) -> std::slice::IterMut<'_, Option<LayerCache>> {
        self.layers.resize_with(count, || None);
        self.layers.iter_mut()
    }
}

/// Appends the new positions' keys and values (`[batch, heads, positions,
/// head_dim]`) to a layer's cache and returns all of them. The first
/// append keeps the given tensors, so training's gradients flow through
/// them; later ones write into room of their own.
pub(super) fn append(
    cache: &mut Option<LayerCache>,
    k: Tensor,
    v: Tensor,
) -> Result<(Tensor, Tensor)> {
    let Some(layer) = cache else {
        let len = k.dim(2)?;
        *cache = Some(LayerCache {
            keys: k.clone(),
            values: v.clone(),
            len,
        });
        return Ok((k, v));
    };
    let new = k.dim(2)?;
    if layer.len + new > layer.keys.dim(2)? {
        let room = (layer.len + new).next_multiple_of(ROOM_STEP);
        let grow = |old: &Tensor| -> Result<Tensor> {
            let (batch, heads, _, head_dim) = old.dims4()?;
            let bigger = Tensor::zeros((batch, heads, room, head_dim), old.dtype(), old.device())?;
            bigger.slice_set(&old.narrow(2, 0, layer.len)?.contiguous()?, 2, 0)?;
            Ok(bigger)
        };
        layer.keys = grow(&layer.keys)?;
        layer.values = grow(&layer.values)?;
    }
    layer.keys.slice_set(&k.contiguous()?, 2, layer.len)?;
    layer.values.slice_set(&v.contiguous()?, 2, layer.len)?;
    layer.len += new;
    Ok((
        layer.keys.narrow(2, 0, layer.len)?,
        layer.values.narrow(2, 0, layer.len)?,
    ))
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

/// `scores` (`[…, rows, keys]`, the rows being the positions, repeated)
/// plus `mask` (`causal_mask`'s) on each repeat.
pub(super) fn add_causal_mask(scores: &Tensor, mask: &Tensor, positions: usize) -> Result<Tensor> {
    let dims = scores.dims();
    let (rows, keys) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    scores
        .reshape(((), rows / positions, positions, keys))?
        .broadcast_add(mask)?
        .reshape(dims)
}

/// `cos` and `sin` of the rotary angles of positions `0..positions` with
/// base `theta`, `[positions, head_dim / 2]`.
pub(super) fn rotary_tables(
    theta: f64,
    head_dim: usize,
    positions: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let inverse: Vec<f32> = (0..head_dim / 2)
        .map(|i| (1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)) as f32)
        .collect();
    let inverse = Tensor::new(inverse, device)?.unsqueeze(0)?;
    let positions = Tensor::arange(0u32, positions as u32, device)?
        .to_dtype(DType::F32)?
        .unsqueeze(1)?;
    let angles = positions.broadcast_mul(&inverse)?;
    Ok((angles.cos()?, angles.sin()?))
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
        let (model, cache) = (self.model, &mut self.cache);
        on_rayon(|| model.next_logits(tokens, cache)?.to_vec1())
    }
}

/// Runs `step` on one of rayon's threads. A step makes some 200 parallel
/// products; started from elsewhere, each one wakes a worker and puts the
/// caller to sleep until it is done, which cost more than a small product.
/// On a worker, the loops are shared with whichever threads are awake.
pub(super) fn on_rayon<T: Send>(step: impl FnOnce() -> T + Send) -> T {
    rayon::scope(|_| step())
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
