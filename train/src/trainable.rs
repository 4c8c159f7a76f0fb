//! The convolution layer of a network being fine-tuned: a plain
//! convolution and BatchNorm in training mode (batch statistics, running
//! averages updated as PyTorch does), both differentiable. The served
//! network folds the same tensors into one convolution.

use candle_core::{CpuStorage, CustomOp2, D, Layout, Module, Result, Shape, Tensor, Var, bail};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use starcast_model::vision::{Activation, ConvLayer, ConvShape};

/// PyTorch's default: the running averages move 10% toward each batch.
const MOMENTUM: f64 = 0.1;

#[derive(Debug)]
pub struct TrainingConvNorm {
    weight: Tensor,
    gamma: Tensor,
    beta: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    stride: usize,
    padding: usize,
    groups: usize,
    activation: Activation,
}

impl ConvLayer for TrainingConvNorm {
    fn load(
        conv: VarBuilder,
        norm: VarBuilder,
        shape: ConvShape,
        eps: f64,
        activation: Activation,
    ) -> Result<Self> {
        let ConvShape {
            cin,
            cout,
            kernel,
            stride,
            groups,
        } = shape;
        // Tensors from a VarMap are its variables, so the running averages
        // set here are the ones the trained model is saved with.
        Ok(TrainingConvNorm {
            weight: conv.get((cout, cin / groups, kernel, kernel), "weight")?,
            gamma: norm.get(cout, "weight")?,
            beta: norm.get(cout, "bias")?,
            running_mean: Var::from_tensor(&norm.get(cout, "running_mean")?)?,
            running_var: Var::from_tensor(&norm.get(cout, "running_var")?)?,
            eps,
            stride,
            padding: (kernel - 1) / 2,
            groups,
            activation,
        })
    }
}

impl Module for TrainingConvNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = if self.groups > 1 && self.groups == x.dim(1)? && self.weight.dim(1)? == 1 {
            let op = Depthwise {
                stride: self.stride,
                padding: self.padding,
            };
            x.contiguous()?.apply_op2(&self.weight.contiguous()?, op)?
        } else {
            x.conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?
        };
        let (batch, channels, height, width) = y.dims4()?;
        let count = (batch * height * width) as f64;
        let per_channel = y.transpose(0, 1)?.reshape((channels, ()))?;
        let mean = per_channel.mean(D::Minus1)?;
        let centred = per_channel.broadcast_sub(&mean.unsqueeze(1)?)?;
        let variance = centred.sqr()?.mean(D::Minus1)?;
        self.update_running(&mean.detach(), &variance.detach(), count)?;
        let scale = (&self.gamma / (variance + self.eps)?.sqrt()?)?;
        let normalised = centred
            .broadcast_mul(&scale.unsqueeze(1)?)?
            .broadcast_add(&self.beta.unsqueeze(1)?)?;
        let y = normalised
            .reshape((channels, batch, height, width))?
            .transpose(0, 1)?;
        self.activation.apply(&y)
    }
}

impl TrainingConvNorm {
    /// PyTorch keeps the unbiased variance in its running average.
    fn update_running(&self, mean: &Tensor, variance: &Tensor, count: f64) -> Result<()> {
        let unbiased = (variance * (count / (count - 1.0).max(1.0)))?;
        let blend = |running: &Var, batch: &Tensor| -> Result<()> {
            let next = ((running.as_tensor() * (1.0 - MOMENTUM))? + (batch * MOMENTUM)?)?;
            running.set(&next)
        };
        blend(&self.running_mean, mean)?;
        blend(&self.running_var, &unbiased)
    }
}

/// A depthwise convolution (one filter per channel) with its gradients.
/// candle runs a grouped convolution as one small convolution per group,
/// hundreds per MobileNetV2 layer, which makes training crawl.
#[derive(Clone, Copy, Debug)]
struct Depthwise {
    stride: usize,
    padding: usize,
}

/// The sizes one depthwise convolution works with.
#[derive(Clone, Copy, Debug)]
struct Planes {
    h: usize,
    w: usize,
    k: usize,
    oh: usize,
    ow: usize,
}

impl Depthwise {
    fn planes(&self, input: &[usize], weight: &[usize]) -> Result<Planes> {
        let (&[_, c, h, w], &[wc, 1, k, k2]) = (input, weight) else {
            bail!("depthwise convolution of {input:?} with {weight:?}")
        };
        if wc != c || k != k2 || h + 2 * self.padding < k || w + 2 * self.padding < k {
            bail!("depthwise convolution of {input:?} with {weight:?}")
        }
        Ok(Planes {
            h,
            w,
            k,
            oh: (h + 2 * self.padding - k) / self.stride + 1,
            ow: (w + 2 * self.padding - k) / self.stride + 1,
        })
    }

    /// Calls `visit(input index, output index, kernel index)` for every
    /// product of one channel plane.
    fn each_tap(&self, p: Planes, mut visit: impl FnMut(usize, usize, usize)) {
        for oy in 0..p.oh {
            for i in 0..p.k {
                let Some(y) = (oy * self.stride + i)
                    .checked_sub(self.padding)
                    .filter(|y| *y < p.h)
                else {
                    continue;
                };
                for ox in 0..p.ow {
                    for j in 0..p.k {
                        let Some(x) = (ox * self.stride + j)
                            .checked_sub(self.padding)
                            .filter(|x| *x < p.w)
                        else {
                            continue;
                        };
                        visit(y * p.w + x, oy * p.ow + ox, i * p.k + j);
                    }
                }
            }
        }
    }
}

fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("depthwise convolution needs f32 tensors")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("depthwise convolution needs contiguous tensors"),
    }
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "starcast-depthwise"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = self.planes(input_layout.dims(), weight_layout.dims())?;
        let (x, w) = (
            f32_slice(input, input_layout)?,
            f32_slice(weight, weight_layout)?,
        );
        let (batch, channels) = (input_layout.dims()[0], input_layout.dims()[1]);
        let mut out = vec![0f32; batch * channels * p.oh * p.ow];
        out.par_chunks_mut(p.oh * p.ow)
            .enumerate()
            .for_each(|(plane, out)| {
                let c = plane % channels;
                let x = &x[plane * p.h * p.w..][..p.h * p.w];
                let w = &w[c * p.k * p.k..][..p.k * p.k];
                self.each_tap(p, |xi, oi, wi| out[oi] += x[xi] * w[wi]);
            });
        Ok((
            CpuStorage::F32(out),
            Shape::from((batch, channels, p.oh, p.ow)),
        ))
    }

    fn bwd(
        &self,
        input: &Tensor,
        weight: &Tensor,
        _output: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let p = self.planes(input.dims(), weight.dims())?;
        let (batch, channels) = (input.dim(0)?, input.dim(1)?);
        let x: Vec<f32> = input.flatten_all()?.to_vec1()?;
        let w: Vec<f32> = weight.flatten_all()?.to_vec1()?;
        let g: Vec<f32> = grad.contiguous()?.flatten_all()?.to_vec1()?;
        let (plane_in, plane_out, taps) = (p.h * p.w, p.oh * p.ow, p.k * p.k);
        let mut grad_input = vec![0f32; x.len()];
        // Per plane: the input gradient, and the plane's share of the weight gradient.
        let weight_shares: Vec<Vec<f32>> = grad_input
            .par_chunks_mut(plane_in)
            .enumerate()
            .map(|(plane, grad_input)| {
                let c = plane % channels;
                let x = &x[plane * plane_in..][..plane_in];
                let g = &g[plane * plane_out..][..plane_out];
                let w = &w[c * taps..][..taps];
                let mut share = vec![0f32; taps];
                self.each_tap(p, |xi, oi, wi| {
                    grad_input[xi] += g[oi] * w[wi];
                    share[wi] += g[oi] * x[xi];
                });
                share
            })
            .collect();
        let mut grad_weight = vec![0f32; channels * taps];
        for (plane, share) in weight_shares.iter().enumerate() {
            let c = plane % channels;
            for (total, part) in grad_weight[c * taps..][..taps].iter_mut().zip(share) {
                *total += part;
            }
        }
        let device = input.device();
        Ok((
            Some(Tensor::from_vec(
                grad_input,
                (batch, channels, p.h, p.w),
                device,
            )?),
            Some(Tensor::from_vec(grad_weight, weight.dims(), device)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn normalises_with_batch_statistics_and_moves_the_running_ones() {
        let varmap = VarMap::new();
        let device = Device::Cpu;
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        {
            let mut data = varmap.data().lock().unwrap();
            let set = |t: Tensor| Var::from_tensor(&t).unwrap();
            // A 1x1 identity convolution, so the input reaches BatchNorm as it is.
            data.insert(
                "conv.weight".into(),
                set(Tensor::ones((1, 1, 1, 1), DType::F32, &device).unwrap()),
            );
            data.insert(
                "bn.weight".into(),
                set(Tensor::new(&[2f32], &device).unwrap()),
            );
            data.insert(
                "bn.bias".into(),
                set(Tensor::new(&[1f32], &device).unwrap()),
            );
            data.insert(
                "bn.running_mean".into(),
                set(Tensor::new(&[0f32], &device).unwrap()),
            );
            data.insert(
                "bn.running_var".into(),
                set(Tensor::new(&[1f32], &device).unwrap()),
            );
        }
        let layer = TrainingConvNorm::load(
            vb.pp("conv"),
            vb.pp("bn"),
            ConvShape::new(1, 1, 1, 1),
            0.0,
            Activation::None,
        )
        .unwrap();
        // Values 1..4 over a batch of two 1x2 maps: mean 2.5, variance 1.25.
        let x = Tensor::new(&[1f32, 2., 3., 4.], &device)
            .unwrap()
            .reshape((2, 1, 1, 2))
            .unwrap();
        let y: Vec<f32> = layer
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let expected: Vec<f32> = [1f32, 2., 3., 4.]
            .iter()
            .map(|v| 2.0 * (v - 2.5) / 1.25f32.sqrt() + 1.0)
            .collect();
        for (a, b) in y.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{y:?} vs {expected:?}");
        }
        let data = varmap.data().lock().unwrap();
        let mean: Vec<f32> = data["bn.running_mean"].as_tensor().to_vec1().unwrap();
        let var: Vec<f32> = data["bn.running_var"].as_tensor().to_vec1().unwrap();
        assert!((mean[0] - 0.25).abs() < 1e-6, "{mean:?}");
        // unbiased variance 5/3, blended 10% into 1.0
        assert!((var[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6, "{var:?}");
    }

    #[test]
    fn depthwise_matches_candle_forward_and_backward() {
        let device = Device::Cpu;
        for (stride, padding, k) in [(1, 1, 3), (2, 1, 3), (2, 2, 5), (1, 0, 3)] {
            let x =
                Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, 9, 9), &device).unwrap()).unwrap();
            let w =
                Var::from_tensor(&Tensor::randn(0f32, 1., (3, 1, k, k), &device).unwrap()).unwrap();
            let ours = x
                .as_tensor()
                .apply_op2(w.as_tensor(), Depthwise { stride, padding })
                .unwrap();
            let theirs = x
                .as_tensor()
                .conv2d(w.as_tensor(), padding, stride, 1, 3)
                .unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let close = |a: &Tensor, b: &Tensor| {
                let diff: f32 = (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar()
                    .unwrap();
                assert!(
                    diff < 1e-4,
                    "stride {stride} padding {padding} k {k}: {diff}"
                );
            };
            close(&ours, &theirs);
            // Square inputs: candle's own convolution gradient takes the
            // output padding from the height alone.
            // Weighted sums so every output position's gradient differs.
            let weights = Tensor::randn(0f32, 1., ours.dims(), &device).unwrap();
            let ours_grads = (ours * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let theirs_grads = (theirs * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for var in [&x, &w] {
                close(
                    ours_grads.get(var.as_tensor()).unwrap(),
                    theirs_grads.get(var.as_tensor()).unwrap(),
                );
            }
        }
    }
}
