//! Training's CPU kernels, each with its gradient. candle's fused kernels
//! have no gradient, and the same maths as a chain of candle operations
//! allocates and walks a whole tensor per operation, forward and back: on
//! the CPU that cost as much as the matrix products. Elsewhere (CUDA), or
//! where a weight is itself being trained, these fall back to the chains.

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, D, DType, Layout, Result, Shape, Tensor,
};
use rayon::prelude::*;

use super::attention::{add_causal_mask, causal_mask};

/// RMS normalisation over the last dimension, times `weight`.
pub fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    if !on_cpu(xs) || weight.is_variable() {
        return candle_nn::ops::rms_norm_slow(xs, weight, eps);
    }
    xs.contiguous()?.apply_op1(RmsNorm {
        weight: weight.flatten_all()?.to_vec1()?,
        eps,
    })
}

/// `softmax(scale · scores)` over the last dimension (keys), where the
/// query at position `p` of the `positions` (counted after `offset`
/// earlier ones) sees only keys up to its own. `scores` is `[…, rows,
/// keys]`, its rows being the positions, repeated.
pub fn causal_softmax(
    scores: &Tensor,
    scale: f64,
    positions: usize,
    offset: usize,
) -> Result<Tensor> {
    if !on_cpu(scores) {
        let mut scaled = (scores * scale)?;
        if let Some(mask) = causal_mask(positions, offset, scores.device())? {
            scaled = add_causal_mask(&scaled, &mask, positions)?;
        }
        return candle_nn::ops::softmax(&scaled, D::Minus1);
    }
    scores.contiguous()?.apply_op1(CausalSoftmax {
        scale: scale as f32,
        positions,
        offset,
    })
}

/// Rotary position embedding of `xs` (`[batch, heads, positions,
/// head_dim]`) with tables `[positions, head_dim / 2]`, halves rotated
/// (Hugging Face's layout).
pub fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !on_cpu(xs) {
        return candle_nn::rotary_emb::rope_slow(xs, cos, sin);
    }
    xs.contiguous()?.apply_op1(Rope {
        cos: cos.flatten_all()?.to_vec1()?,
        sin: sin.flatten_all()?.to_vec1()?,
    })
}

/// `silu(gate) · up`, the gated unit of Llama's MLP.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if !on_cpu(gate) {
        return gate.silu()? * up;
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, SiluMul)
}

/// `gelu(gate) · up` with GELU's tanh form, the gated unit of Gemma's MLP.
/// candle's own GELU called the C library's `tanhf` per value: a sixth of
/// a Gemma prompt's time.
pub fn gelu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if !on_cpu(gate) {
        return gate.gelu()? * up;
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, GeluMul)
}

/// Mean cross-entropy of `logits` (`[rows, classes]`) against `targets`
/// (`[rows]`, class indices).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if !on_cpu(logits) {
        return candle_nn::loss::cross_entropy(logits, targets);
    }
    let targets = targets.to_vec1::<u32>()?;
    let classes = logits.dim(1)?;
    if let Some(bad) = targets.iter().find(|&&t| t as usize >= classes) {
        candle_core::bail!("target {bad} is outside the {classes} classes");
    }
    logits
        .contiguous()?
        .apply_op1(CrossEntropy { targets })?
        .mean_all()
}

fn on_cpu(xs: &Tensor) -> bool {
    xs.device().is_cpu() && xs.dtype() == DType::F32
}

/// The values of a contiguous f32 tensor.
fn values<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("a training kernel got a strided tensor".into()))?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// The last dimension: the width of a row.
fn width(layout: &Layout) -> Result<usize> {
    layout
        .dims()
        .last()
        .copied()
        .ok_or_else(|| candle_core::Error::Msg("a training kernel got a scalar".into()))
}

/// `len` values, computed `width` at a time by `row(index, out)` on
/// rayon's threads, a few rows to a task.
fn by_rows(len: usize, width: usize, row: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; len];
    let rows_per_task = (8192 / width.max(1)).max(1);
    out.par_chunks_mut(width * rows_per_task)
        .enumerate()
        .for_each(|(task, chunk)| {
            for (i, out) in chunk.chunks_mut(width).enumerate() {
                row(task * rows_per_task + i, out);
            }
        });
    out
}

/// `row(a, b, out)` over the rows of two tensors of one shape.
fn pair_by_rows(
    what: &str,
    (a, a_layout): (&CpuStorage, &Layout),
    (b, b_layout): (&CpuStorage, &Layout),
    row: impl Fn(&[f32], &[f32], &mut [f32]) + Sync,
) -> Result<(CpuStorage, Shape)> {
    check_same(what, a_layout, b_layout)?;
    let (a, b) = (values(a, a_layout)?, values(b, b_layout)?);
    let width = width(a_layout)?;
    let out = by_rows(a.len(), width, |index, out| {
        let at = index * width;
        row(&a[at..][..width], &b[at..][..width], out);
    });
    output(out, a_layout.shape())
}

fn check_same(what: &str, a: &Layout, b: &Layout) -> Result<()> {
    if a.dims() != b.dims() {
        candle_core::bail!("{what}: shapes {:?} and {:?} differ", a.dims(), b.dims());
    }
    Ok(())
}

fn output(values: Vec<f32>, shape: &Shape) -> Result<(CpuStorage, Shape)> {
    Ok((CpuStorage::F32(values), shape.clone()))
}

struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    fn inverse_rms(&self, xs: &[f32]) -> f32 {
        let mean_square = xs.iter().map(|x| x * x).sum::<f32>() / xs.len() as f32;
        (mean_square + self.eps).sqrt().recip()
    }
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm-trained"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = values(storage, layout)?;
        let width = width(layout)?;
        if width != self.weight.len() {
            candle_core::bail!("rows of {width} but a weight of {}", self.weight.len());
        }
        let out = by_rows(xs.len(), width, |row, out| {
            let xs = &xs[row * width..][..width];
            let r = self.inverse_rms(xs);
            for ((o, x), w) in out.iter_mut().zip(xs).zip(&self.weight) {
                *o = x * r * w;
            }
        });
        output(out, layout.shape())
    }

    fn bwd(&self, xs: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = xs.apply_op2(
            &grad.contiguous()?,
            RmsNormGrad(RmsNorm {
                weight: self.weight.clone(),
                eps: self.eps,
            }),
        )?;
        Ok(Some(grad))
    }
}

/// `d loss / d xs` from `xs` and `d loss / d output`.
struct RmsNormGrad(RmsNorm);

impl CustomOp2 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "rms-norm-trained-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let weight = &self.0.weight;
        pair_by_rows(
            "rms-norm gradient",
            (xs, xs_layout),
            (grad, grad_layout),
            |xs, grad, out| {
                let r = self.0.inverse_rms(xs);
                let dot: f32 = xs
                    .iter()
                    .zip(grad)
                    .zip(weight)
                    .map(|((x, g), w)| x * g * w)
                    .sum();
                let pull = r * r * dot / xs.len() as f32;
                for (((o, x), g), w) in out.iter_mut().zip(xs).zip(grad).zip(weight) {
                    *o = r * (g * w - x * pull);
                }
            },
        )
    }
}

struct CausalSoftmax {
    scale: f32,
    positions: usize,
    offset: usize,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let scores = values(storage, layout)?;
        let keys = width(layout)?;
        let out = by_rows(scores.len(), keys, |row, out| {
            let seen = (self.offset + row % self.positions + 1).min(keys);
            let scores = &scores[row * keys..][..seen];
            let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            let mut sum = 0.0;
            for (o, s) in out.iter_mut().zip(scores) {
                *o = ((s - max) * self.scale).exp();
                sum += *o;
            }
            for o in &mut out[..seen] {
                *o /= sum;
            }
        });
        output(out, layout.shape())
    }

    fn bwd(&self, _: &Tensor, weights: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = weights.apply_op2(&grad.contiguous()?, SoftmaxGrad { scale: self.scale })?;
        Ok(Some(grad))
    }
}

/// `d loss / d scores` from the softmax's output and `d loss / d output`.
struct SoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "causal-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        weights: &CpuStorage,
        weights_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        pair_by_rows(
            "softmax gradient",
            (weights, weights_layout),
            (grad, grad_layout),
            |weights, grad, out| {
                let dot: f32 = weights.iter().zip(grad).map(|(w, g)| w * g).sum();
                for ((o, w), g) in out.iter_mut().zip(weights).zip(grad) {
                    *o = self.scale * w * (g - dot);
                }
            },
        )
    }
}

struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope-trained"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = values(storage, layout)?;
        let dims = layout.dims();
        let (positions, head_dim) = match dims {
            [_, _, positions, head_dim] => (*positions, *head_dim),
            _ => candle_core::bail!("rope takes [batch, heads, positions, head_dim], not {dims:?}"),
        };
        let half = head_dim / 2;
        if head_dim % 2 != 0
            || self.cos.len() != positions * half
            || self.sin.len() != self.cos.len()
        {
            candle_core::bail!("rope tables don't fit {positions} positions of {head_dim}");
        }
        let out = by_rows(xs.len(), head_dim, |row, out| {
            let xs = &xs[row * head_dim..][..head_dim];
            let position = row % positions;
            let cos = &self.cos[position * half..][..half];
            let sin = &self.sin[position * half..][..half];
            let (first, second) = out.split_at_mut(half);
            for i in 0..half {
                first[i] = xs[i] * cos[i] - xs[i + half] * sin[i];
                second[i] = xs[i + half] * cos[i] + xs[i] * sin[i];
            }
        });
        output(out, layout.shape())
    }

    /// A rotation's transpose is the rotation by the opposite angle.
    fn bwd(&self, _: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let back = Rope {
            cos: self.cos.clone(),
            sin: self.sin.iter().map(|s| -s).collect(),
        };
        Ok(Some(grad.contiguous()?.apply_op1(back)?))
    }
}

fn sigmoid(x: f32) -> f32 {
    (1.0 + (-x).exp()).recip()
}

/// `tanh` as a rational function, within 5e-7 of it: a branch-free loop
/// the compiler vectorizes (the constants are Eigen's fast float tanh).
fn fast_tanh(x: f32) -> f32 {
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let p = [
        -2.760_768_5e-16,
        2.000_188e-13,
        -8.604_672e-11,
        5.122_297e-8,
        1.485_722_4e-5,
        6.372_619_3e-4,
        4.893_524_6e-3,
    ]
    .iter()
    .fold(0f32, |p, &a| p * x2 + a);
    let q = [1.198_258_4e-6, 1.185_347e-4, 2.268_434_6e-3, 4.893_525e-3]
        .iter()
        .fold(0f32, |q, &b| q * x2 + b);
    (x * p / q).clamp(-1.0, 1.0)
}

/// `sqrt(2 / π)`, GELU's tanh form's scale.
const GELU_SCALE: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044_715;

/// GELU's tanh form and its derivative at `x`.
fn gelu_and_slope(x: f32) -> (f32, f32) {
    let inner = GELU_SCALE * (x + GELU_CUBIC * x * x * x);
    let t = fast_tanh(inner);
    let slope =
        0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * x * x);
    (0.5 * x * (1.0 + t), slope)
}

struct GeluMul;

impl CustomOp2 for GeluMul {
    fn name(&self) -> &'static str {
        "gelu-mul"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        pair_by_rows(
            "gelu · up",
            (gate, gate_layout),
            (up, up_layout),
            |gate, up, out| {
                for ((o, g), u) in out.iter_mut().zip(gate).zip(up) {
                    *o = gelu_and_slope(*g).0 * u;
                }
            },
        )
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gelu = gate.apply_op1(GeluSlope)?;
        let grad_gate = (grad * up)?.mul(&gelu.get(1)?)?;
        let grad_up = (grad * gelu.get(0)?)?;
        Ok((Some(grad_gate), Some(grad_up)))
    }
}

/// GELU's values and slopes at each value, stacked: `[2, …]`.
struct GeluSlope;

impl CustomOp1 for GeluSlope {
    fn name(&self) -> &'static str {
        "gelu-slope"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = values(storage, layout)?;
        let (gelu, slope): (Vec<f32>, Vec<f32>) = xs.iter().map(|&x| gelu_and_slope(x)).unzip();
        let mut dims = vec![2];
        dims.extend_from_slice(layout.dims());
        output([gelu, slope].concat(), &Shape::from(dims))
    }
}

struct SiluMul;

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "silu-mul"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        pair_by_rows(
            "silu · up",
            (gate, gate_layout),
            (up, up_layout),
            |gate, up, out| {
                for ((o, g), u) in out.iter_mut().zip(gate).zip(up) {
                    *o = g * sigmoid(*g) * u;
                }
            },
        )
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let both = gate.apply_op3(up, &grad.contiguous()?, SiluMulGrad)?;
        Ok((Some(both.get(0)?), Some(both.get(1)?)))
    }
}

/// `d loss / d gate` and `d loss / d up`, stacked: `[2, …]`.
struct SiluMulGrad;

impl CustomOp3 for SiluMulGrad {
    fn name(&self) -> &'static str {
        "silu-mul-grad"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_same("silu · up gradient", gate_layout, up_layout)?;
        check_same("silu · up gradient", gate_layout, grad_layout)?;
        let (gate, up, grad) = (
            values(gate, gate_layout)?,
            values(up, up_layout)?,
            values(grad, grad_layout)?,
        );
        let len = gate.len();
        let width = width(gate_layout)?;
        let out = by_rows(2 * len, width, |row, out| {
            let at = (row * width) % len;
            let (gate, up, grad) = (
                &gate[at..][..width],
                &up[at..][..width],
                &grad[at..][..width],
            );
            let wants_gate = row * width < len;
            for (((o, g), u), d) in out.iter_mut().zip(gate).zip(up).zip(grad) {
                let s = sigmoid(*g);
                *o = if wants_gate {
                    d * u * s * (1.0 + g * (1.0 - s))
                } else {
                    d * g * s
                };
            }
        });
        let mut dims = vec![2];
        dims.extend_from_slice(gate_layout.dims());
        output(out, &Shape::from(dims))
    }
}

struct CrossEntropy {
    targets: Vec<u32>,
}

impl CrossEntropy {
    fn log_sum_exp(logits: &[f32]) -> f32 {
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        max + logits.iter().map(|x| (x - max).exp()).sum::<f32>().ln()
    }

    fn check(&self, layout: &Layout) -> Result<usize> {
        match layout.dims() {
            &[rows, classes] if rows == self.targets.len() => Ok(classes),
            dims => candle_core::bail!(
                "cross-entropy takes [{}, classes] logits, not {dims:?}",
                self.targets.len()
            ),
        }
    }
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    /// The loss of each row: `[rows]`.
    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let classes = self.check(layout)?;
        let logits = values(storage, layout)?;
        let losses = self
            .targets
            .par_iter()
            .enumerate()
            .map(|(row, &target)| {
                let logits = &logits[row * classes..][..classes];
                Self::log_sum_exp(logits) - logits[target as usize]
            })
            .collect();
        output(losses, &Shape::from(self.targets.len()))
    }

    fn bwd(&self, logits: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let back = CrossEntropyGrad(CrossEntropy {
            targets: self.targets.clone(),
        });
        Ok(Some(logits.apply_op2(&grad.contiguous()?, back)?))
    }
}

/// `d loss / d logits`: the softmax less the one-hot target, times each
/// row's `d loss / d row loss`.
struct CrossEntropyGrad(CrossEntropy);

impl CustomOp2 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let classes = self.0.check(logits_layout)?;
        let (logits, grad) = (values(logits, logits_layout)?, values(grad, grad_layout)?);
        let targets = &self.0.targets;
        let out = by_rows(logits.len(), classes, |row, out| {
            let logits = &logits[row * classes..][..classes];
            let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let mut sum = 0.0;
            for (o, x) in out.iter_mut().zip(logits) {
                *o = (x - max).exp();
                sum += *o;
            }
            let share = grad[row] / sum;
            for o in out.iter_mut() {
                *o *= share;
            }
            out[targets[row] as usize] -= grad[row];
        });
        output(out, logits_layout.shape())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn random(shape: &[usize]) -> Var {
        Var::rand(-2f32, 2., shape, &Device::Cpu).unwrap()
    }

    fn assert_close(ours: &Tensor, theirs: &Tensor, what: &str) {
        assert_eq!(ours.dims(), theirs.dims(), "{what}");
        let gap = (ours - theirs)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(gap < 1e-4, "{what}: off by {gap}");
    }

    /// Both functions of `inputs` give the same values, and the same
    /// gradients of a random weighting of those values.
    fn same_values_and_gradients(
        inputs: &[&Var],
        ours: impl Fn() -> Tensor,
        theirs: impl Fn() -> Tensor,
    ) {
        let (ours, theirs) = (ours(), theirs());
        assert_close(&ours, &theirs, "values");
        let weighting = Tensor::rand(-1f32, 1., ours.shape(), &Device::Cpu).unwrap();
        let gradients = |ys: &Tensor| {
            (ys * &weighting)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        let (ours, theirs) = (gradients(&ours), gradients(&theirs));
        for (i, input) in inputs.iter().enumerate() {
            let what = format!("gradient of input {i}");
            assert_close(ours.get(input).unwrap(), theirs.get(input).unwrap(), &what);
        }
    }

    #[test]
    fn rms_norm_matches_candles_chain() {
        let xs = random(&[2, 3, 8]);
        let weight = Tensor::rand(0.5f32, 1.5, 8, &Device::Cpu).unwrap();
        same_values_and_gradients(
            &[&xs],
            || rms_norm(&xs, &weight, 1e-5).unwrap(),
            || candle_nn::ops::rms_norm_slow(&xs, &weight, 1e-5).unwrap(),
        );
    }

    #[test]
    fn causal_softmax_matches_scaled_masked_softmax() {
        // Two queries per key/value head (rows = 2 × positions), after two
        // cached positions.
        let (positions, offset) = (3, 2);
        let scores = random(&[2, 2, 2 * positions, offset + positions]);
        let mask = super::super::attention::causal_mask(positions, offset, &Device::Cpu)
            .unwrap()
            .unwrap();
        same_values_and_gradients(
            &[&scores],
            || causal_softmax(&scores, 0.5, positions, offset).unwrap(),
            || {
                let masked = (scores.as_tensor() * 0.5)
                    .unwrap()
                    .reshape((2, 2, 2, positions, offset + positions))
                    .unwrap()
                    .broadcast_add(&mask)
                    .unwrap()
                    .reshape((2, 2, 2 * positions, offset + positions))
                    .unwrap();
                candle_nn::ops::softmax(&masked, D::Minus1).unwrap()
            },
        );
    }

    #[test]
    fn rope_matches_candles_chain() {
        let xs = random(&[2, 3, 5, 8]);
        let cos = Tensor::rand(-1f32, 1., (5, 4), &Device::Cpu).unwrap();
        let sin = Tensor::rand(-1f32, 1., (5, 4), &Device::Cpu).unwrap();
        same_values_and_gradients(
            &[&xs],
            || rope(&xs, &cos, &sin).unwrap(),
            || candle_nn::rotary_emb::rope_slow(&xs, &cos, &sin).unwrap(),
        );
    }

    #[test]
    fn silu_mul_matches_candles_chain() {
        let gate = random(&[2, 3, 16]);
        let up = random(&[2, 3, 16]);
        same_values_and_gradients(
            &[&gate, &up],
            || silu_mul(&gate, &up).unwrap(),
            || (gate.silu().unwrap() * up.as_tensor()).unwrap(),
        );
    }

    #[test]
    fn gelu_mul_matches_candles_chain() {
        let gate = random(&[2, 3, 16]);
        let up = random(&[2, 3, 16]);
        same_values_and_gradients(
            &[&gate, &up],
            || gelu_mul(&gate, &up).unwrap(),
            || (gate.gelu().unwrap() * up.as_tensor()).unwrap(),
        );
    }

    #[test]
    fn the_fast_tanh_is_within_5e_7_of_tanh() {
        for i in -20_000..=20_000 {
            let x = i as f32 / 1000.0;
            let gap = (fast_tanh(x) - x.tanh()).abs();
            assert!(
                gap < 5e-7,
                "tanh({x}): {} against {}",
                fast_tanh(x),
                x.tanh()
            );
        }
    }

    #[test]
    fn cross_entropy_matches_candles_loss() {
        let logits = random(&[6, 10]);
        let targets = Tensor::new(&[0u32, 9, 3, 3, 7, 1], &Device::Cpu).unwrap();
        same_values_and_gradients(
            &[&logits],
            || cross_entropy(&logits, &targets).unwrap(),
            || candle_nn::loss::cross_entropy(&logits, &targets).unwrap(),
        );
        let outside = Tensor::new(&[0u32, 9, 3, 3, 7, 10], &Device::Cpu).unwrap();
        let error = cross_entropy(&logits, &outside).unwrap_err().to_string();
        assert!(
            error.contains("target 10 is outside the 10 classes"),
            "{error}"
        );
    }
}
