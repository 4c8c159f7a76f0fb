//! The convolution layer of a network being fine-tuned: a plain
//! convolution and BatchNorm in training mode (batch statistics, running
//! averages updated as PyTorch does), both differentiable. The served
//! network folds the same tensors into one convolution.

use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp2, Layout, Module, Result, Shape, Tensor, Var, bail};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use starcast_model::vision::{
    Activation, ConvLayer, ConvNorm, ConvShape, depthwise_by_taps, is_depthwise,
};

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

    fn stem_pool(x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() {
            return composed_stem_pool(x);
        }
        x.contiguous()?.apply_op1(StemPool)
    }
}

/// [`StemPool`] from candle's differentiable operations, for devices other
/// than the CPU (candle's max pooling has no gradient when its window is
/// wider than its stride). Window `i` covers padded rows `2i..=2i+2`: rows
/// `2i` and `2i+1` of pair `i`, and the first row of pair `i + 1`; so with
/// rows and columns split into pairs, the output is the maximum of nine
/// shifted views. Zero padding stands in for PyTorch's -inf: the stem pool
/// follows a ReLU, so no window's maximum is below zero.
fn composed_stem_pool(x: &Tensor) -> Result<Tensor> {
    let (batch, channels, h, w) = x.dims4()?;
    let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
    let pairs = x
        .pad_with_zeros(2, 1, 2 * oh + 1 - h)?
        .pad_with_zeros(3, 1, 2 * ow + 1 - w)?
        .reshape((batch, channels, oh + 1, 2, ow + 1, 2))?;
    let taps = [(0, 0), (0, 1), (1, 0)];
    let mut pooled: Option<Tensor> = None;
    for (row_pair, row) in taps {
        for (column_pair, column) in taps {
            let view = pairs
                .narrow(2, row_pair, oh)?
                .narrow(3, row, 1)?
                .narrow(4, column_pair, ow)?
                .narrow(5, column, 1)?;
            pooled = Some(match pooled {
                Some(so_far) => so_far.maximum(&view)?,
                None => view,
            });
        }
    }
    pooled
        .expect("nine taps")
        .reshape((batch, channels, oh, ow))
}

impl Module for TrainingConvNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() {
            return self.forward_composed(x);
        }
        let (stride, padding) = (self.stride, self.padding);
        let y = if self.groups == 1 {
            x.contiguous()?
                .apply_op2(&self.weight.contiguous()?, Convolution { stride, padding })?
        } else if self.groups == x.dim(1)? && self.weight.dim(1)? == 1 {
            x.contiguous()?
                .apply_op2(&self.weight.contiguous()?, Depthwise { stride, padding })?
        } else {
            x.conv2d(&self.weight, padding, stride, 1, self.groups)?
        };
        // ReLU and ReLU6 run inside BatchNorm's operation: one tensor fewer kept per layer.
        let (clip, after) = match self.activation {
            Activation::None => (None, Activation::None),
            Activation::Relu => (Some(f32::INFINITY), Activation::None),
            Activation::Relu6 => (Some(6.0), Activation::None),
            other => (None, other),
        };
        let norm = BatchNorm {
            eps: self.eps,
            clip,
            statistics: Arc::default(),
        };
        let y = y.contiguous()?.apply_op3(
            &self.gamma.contiguous()?,
            &self.beta.contiguous()?,
            norm.clone(),
        )?;
        if let Some(statistics) = norm.statistics.get() {
            let channels = statistics.mean.len();
            self.update_running(
                &Tensor::from_slice(&statistics.mean, channels, x.device())?,
                &Tensor::from_slice(&statistics.variance, channels, x.device())?,
                statistics.count,
            )?;
        }
        after.apply(&y)
    }
}

impl TrainingConvNorm {
    /// The same layer from candle's own operations, for devices other than
    /// the CPU (the operations above are CPU kernels): it keeps more
    /// intermediates for the gradient, which a GPU's memory affords.
    fn forward_composed(&self, x: &Tensor) -> Result<Tensor> {
        let y = if is_depthwise(&self.weight, self.groups)? {
            depthwise_by_taps(x, &self.weight, self.stride, self.padding)?
        } else {
            x.conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?
        };
        let (batch, channels, h, w) = y.dims4()?;
        let mean = y.mean_keepdim((0, 2, 3))?;
        let centred = y.broadcast_sub(&mean)?;
        let variance = centred.sqr()?.mean_keepdim((0, 2, 3))?;
        let normed = centred.broadcast_div(&(&variance + self.eps)?.sqrt()?)?;
        let y = normed
            .broadcast_mul(&self.gamma.reshape((1, channels, 1, 1))?)?
            .broadcast_add(&self.beta.reshape((1, channels, 1, 1))?)?;
        self.update_running(
            &mean.flatten_all()?.detach(),
            &variance.flatten_all()?.detach(),
            batch * h * w,
        )?;
        self.activation.apply(&y)
    }

    /// Moves the running averages toward a batch's per-channel `mean` and
    /// (biased) `variance` over `count` values; PyTorch keeps the unbiased
    /// variance in its running average.
    fn update_running(&self, mean: &Tensor, variance: &Tensor, count: usize) -> Result<()> {
        let count = count as f64;
        let unbiased = (variance * (count / (count - 1.0).max(1.0)))?;
        let blend = |running: &Var, batch: &Tensor| -> Result<()> {
            let next = ((running.as_tensor() * (1.0 - MOMENTUM))? + (batch * MOMENTUM)?)?;
            running.set(&next)
        };
        blend(&self.running_mean, mean)?;
        blend(&self.running_var, &unbiased)
    }
}

/// A batch's per-channel mean and (biased) variance, over `count` values each.
#[derive(Debug)]
struct Statistics {
    mean: Vec<f32>,
    variance: Vec<f32>,
    count: usize,
}

impl Statistics {
    fn inverse_std(&self, eps: f64) -> Vec<f32> {
        self.variance
            .iter()
            .map(|v| (1.0 / (f64::from(*v) + eps).sqrt()) as f32)
            .collect()
    }
}

/// BatchNorm over a batch, `(x - mean) / sqrt(var + eps) * gamma + beta`,
/// then ReLU clipped at `clip` when there is one, as one operation with its
/// own gradient. The forward pass keeps the batch statistics, so the
/// gradient needs only the input and the output: the same formula composed
/// of tensor operations kept six full-size intermediates per layer
/// (MobileNetV2 at batch 32 peaked at 18 GB).
#[derive(Clone, Debug)]
struct BatchNorm {
    eps: f64,
    clip: Option<f32>,
    statistics: Arc<OnceLock<Statistics>>,
}

/// `(batch, channels, plane)` of a contiguous `(B, C, H, W)` tensor.
fn planes(dims: &[usize]) -> Result<(usize, usize, usize)> {
    match dims {
        &[b, c, h, w] => Ok((b, c, h * w)),
        _ => bail!("BatchNorm expects (batch, channels, height, width), got {dims:?}"),
    }
}

/// Per channel, the sums over every image's plane of `f(value, index in plane)`.
fn channel_sums(
    data: &[f32],
    dims: (usize, usize, usize),
    f: impl Fn(usize, usize, f32) -> f64 + Sync,
) -> Vec<f64> {
    let (batch, channels, plane) = dims;
    (0..channels)
        .into_par_iter()
        .map(|c| {
            (0..batch)
                .map(|b| {
                    let start = (b * channels + c) * plane;
                    data[start..start + plane]
                        .iter()
                        .enumerate()
                        .map(|(i, v)| f(c, start + i, *v))
                        .sum::<f64>()
                })
                .sum()
        })
        .collect()
}

impl candle_core::CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "starcast-batch-norm"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_layout: &Layout,
        gamma: &CpuStorage,
        gamma_layout: &Layout,
        beta: &CpuStorage,
        beta_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = planes(input_layout.dims())?;
        let (batch, channels, plane) = dims;
        let x = f32_slice(input, input_layout)?;
        let (gamma, beta) = (
            f32_slice(gamma, gamma_layout)?,
            f32_slice(beta, beta_layout)?,
        );
        let count = batch * plane;
        let sums = channel_sums(x, dims, |_, _, v| f64::from(v));
        let mean: Vec<f32> = sums.iter().map(|s| (s / count as f64) as f32).collect();
        let squares = channel_sums(x, dims, |c, _, v| f64::from(v - mean[c]).powi(2));
        let variance: Vec<f32> = squares.iter().map(|s| (s / count as f64) as f32).collect();
        let statistics = Statistics {
            mean,
            variance,
            count,
        };
        let inverse_std = statistics.inverse_std(self.eps);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(plane)
            .zip(x.par_chunks(plane))
            .enumerate()
            .for_each(|(index, (out, x))| {
                let c = index % channels;
                let scale = gamma[c] * inverse_std[c];
                let shift = beta[c] - statistics.mean[c] * scale;
                for (o, v) in out.iter_mut().zip(x) {
                    *o = v * scale + shift;
                }
                if let Some(clip) = self.clip {
                    for o in out.iter_mut() {
                        *o = o.clamp(0.0, clip);
                    }
                }
            });
        let _ = self.statistics.set(statistics);
        Ok((CpuStorage::F32(out), input_layout.shape().clone()))
    }

    fn bwd(
        &self,
        input: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        output: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(statistics) = self.statistics.get() else {
            bail!("BatchNorm's gradient was asked for before its forward pass ran")
        };
        let dims = planes(input.dims())?;
        let (_, channels, plane) = dims;
        let x: Vec<f32> = input.flatten_all()?.to_vec1()?;
        let mut dy: Vec<f32> = grad.contiguous()?.flatten_all()?.to_vec1()?;
        if let Some(clip) = self.clip {
            // The clipped ReLU passes the gradient only where it passed the value.
            let y: Vec<f32> = output.flatten_all()?.to_vec1()?;
            dy.par_iter_mut().zip(y.par_iter()).for_each(|(g, y)| {
                if *y <= 0.0 || *y >= clip {
                    *g = 0.0;
                }
            });
        }
        let gamma: Vec<f32> = gamma.to_vec1()?;
        let inverse_std = statistics.inverse_std(self.eps);
        let normalised = |c: usize, v: f32| (v - statistics.mean[c]) * inverse_std[c];
        let sum_dy = channel_sums(&dy, dims, |_, _, g| f64::from(g));
        let sum_dy_xhat = channel_sums(&x, dims, |c, i, v| f64::from(dy[i] * normalised(c, v)));
        let count = statistics.count as f32;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(index, dx)| {
                let c = index % channels;
                let start = index * plane;
                let factor = gamma[c] * inverse_std[c] / count;
                let (total_dy, total_dy_xhat) = (sum_dy[c] as f32, sum_dy_xhat[c] as f32);
                for (i, d) in dx.iter_mut().enumerate() {
                    let xhat = normalised(c, x[start + i]);
                    *d = factor * (count * dy[start + i] - total_dy - xhat * total_dy_xhat);
                }
            });
        let device = input.device();
        let to_f32 = |sums: &[f64]| sums.iter().map(|s| *s as f32).collect::<Vec<f32>>();
        Ok((
            Some(Tensor::from_vec(dx, input.dims(), device)?),
            Some(Tensor::from_vec(to_f32(&sum_dy_xhat), channels, device)?),
            Some(Tensor::from_vec(to_f32(&sum_dy), channels, device)?),
        ))
    }
}

/// A dense convolution whose forward pass is the serving kernel
/// (im2col + one matrix product, or Winograd) and whose gradients are
/// matrix products over the input's columns: candle's own gradient runs a
/// transposed convolution as plain loops, several times slower.
#[derive(Clone, Copy, Debug)]
struct Convolution {
    stride: usize,
    padding: usize,
}

/// Where a convolution's windows fall: the input plane, the square
/// kernel, the output plane. Dense and depthwise convolutions share it.
#[derive(Clone, Copy, Debug)]
struct Window {
    channels: usize,
    h: usize,
    w: usize,
    k: usize,
    oh: usize,
    ow: usize,
    stride: usize,
    padding: usize,
}

impl Window {
    /// The windows of `weight` `(cout, cin / groups, k, k)` over `input`
    /// `(batch, channels, h, w)`; `depthwise` means one filter per channel.
    fn new(
        input: &[usize],
        weight: &[usize],
        (stride, padding): (usize, usize),
        depthwise: bool,
    ) -> Result<Self> {
        let (&[_, channels, h, w], &[cout, wc, k, k2]) = (input, weight) else {
            bail!("convolution of {input:?} with {weight:?}")
        };
        let fits = if depthwise {
            cout == channels && wc == 1
        } else {
            wc == channels
        };
        if !fits || k != k2 || h + 2 * padding < k || w + 2 * padding < k {
            bail!("convolution of {input:?} with {weight:?}")
        }
        Ok(Window {
            channels,
            h,
            w,
            k,
            oh: (h + 2 * padding - k) / stride + 1,
            ow: (w + 2 * padding - k) / stride + 1,
            stride,
            padding,
        })
    }

    /// The input pixel under kernel tap `(i, j)` of output `(oy, ox)`.
    fn source(&self, oy: usize, ox: usize, i: usize, j: usize) -> Option<usize> {
        let y = (oy * self.stride + i).checked_sub(self.padding)?;
        let x = (ox * self.stride + j).checked_sub(self.padding)?;
        (y < self.h && x < self.w).then_some(y * self.w + x)
    }

    /// Calls `visit(input index, output index, kernel index)` for every
    /// product of one channel plane.
    fn each_tap(&self, mut visit: impl FnMut(usize, usize, usize)) {
        for oy in 0..self.oh {
            for i in 0..self.k {
                for ox in 0..self.ow {
                    for j in 0..self.k {
                        if let Some(at) = self.source(oy, ox, i, j) {
                            visit(at, oy * self.ow + ox, i * self.k + j);
                        }
                    }
                }
            }
        }
    }

    /// One channel's `k * k` rows of the batch's columns: row `(i, j)` holds
    /// for every image and output position the input pixel under tap
    /// `(i, j)` (0 in the padding). `images` is `(batch, channels, h, w)`.
    fn gather(&self, images: &[f32], channel: usize, rows: &mut [f32]) {
        let (k, outputs, plane) = (self.k, self.oh * self.ow, self.h * self.w);
        let batch = images.len() / (self.channels * plane);
        for b in 0..batch {
            let image = &images[(b * self.channels + channel) * plane..][..plane];
            for i in 0..k {
                for j in 0..k {
                    let row = &mut rows[((i * k + j) * batch + b) * outputs..][..outputs];
                    for oy in 0..self.oh {
                        for ox in 0..self.ow {
                            row[oy * self.ow + ox] =
                                self.source(oy, ox, i, j).map_or(0.0, |at| image[at]);
                        }
                    }
                }
            }
        }
    }

    /// The reverse of [`Window::gather`]: sums one channel's rows back into
    /// the `(batch, h, w)` pixels they came from.
    fn scatter(&self, rows: &[f32], planes: &mut [f32]) {
        let (k, outputs, plane) = (self.k, self.oh * self.ow, self.h * self.w);
        let batch = planes.len() / plane;
        for b in 0..batch {
            let image = &mut planes[b * plane..][..plane];
            for i in 0..k {
                for j in 0..k {
                    let row = &rows[((i * k + j) * batch + b) * outputs..][..outputs];
                    for oy in 0..self.oh {
                        for ox in 0..self.ow {
                            if let Some(at) = self.source(oy, ox, i, j) {
                                image[at] += row[oy * self.ow + ox];
                            }
                        }
                    }
                }
            }
        }
    }
}

impl CustomOp2 for Convolution {
    fn name(&self) -> &'static str {
        "starcast-training-conv"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let device = candle_core::Device::Cpu;
        let x = Tensor::from_slice(
            f32_slice(input, input_layout)?,
            input_layout.dims(),
            &device,
        )?;
        let w = Tensor::from_slice(
            f32_slice(weight, weight_layout)?,
            weight_layout.dims(),
            &device,
        )?;
        let (cout, cin, k, _) = w.dims4()?;
        let shape = ConvShape::new(cin, cout, k, self.stride);
        let bias = Tensor::zeros(cout, candle_core::DType::F32, &device)?;
        let conv = ConvNorm::new(w, bias, shape, Activation::None)?;
        let conv = match self.padding {
            p if p == (k - 1) / 2 => conv,
            0 => conv.without_padding()?,
            p => bail!("a {k}x{k} convolution with padding {p} is not supported"),
        };
        let y = conv.forward(&x)?;
        let dims = y.dims().to_vec();
        Ok((
            CpuStorage::F32(y.flatten_all()?.to_vec1()?),
            Shape::from(dims),
        ))
    }

    fn bwd(
        &self,
        input: &Tensor,
        weight: &Tensor,
        _output: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = Window::new(
            input.dims(),
            weight.dims(),
            (self.stride, self.padding),
            false,
        )?;
        let (batch, cout) = (input.dim(0)?, weight.dim(0)?);
        let (taps, outputs) = (g.k * g.k, g.oh * g.ow);
        let device = input.device();
        // Columns as one (channels * k * k, batch * outputs) matrix, so each
        // gradient is a single matrix product over the whole batch.
        let x: Vec<f32> = input.flatten_all()?.to_vec1()?;
        let mut columns = vec![0f32; g.channels * taps * batch * outputs];
        columns
            .par_chunks_mut(taps * batch * outputs)
            .enumerate()
            .for_each(|(channel, rows)| g.gather(&x, channel, rows));
        let columns = Tensor::from_vec(columns, (g.channels * taps, batch * outputs), device)?;
        let grad_matrix = grad
            .transpose(0, 1)?
            .contiguous()?
            .reshape((cout, batch * outputs))?;
        let grad_weight = grad_matrix.matmul(&columns.t()?)?.reshape(weight.dims())?;
        drop(columns);
        if self.stride == 1 && self.padding == (g.k - 1) / 2 {
            let grad_input = same_convolution_input_gradient(grad, weight)?;
            return Ok((Some(grad_input), Some(grad_weight)));
        }
        let weight_matrix = weight.reshape((cout, g.channels * taps))?;
        let grad_columns: Vec<f32> = weight_matrix
            .t()?
            .matmul(&grad_matrix)?
            .flatten_all()?
            .to_vec1()?;
        let plane = g.h * g.w;
        let mut grad_planes = vec![0f32; g.channels * batch * plane];
        grad_planes
            .par_chunks_mut(batch * plane)
            .zip(grad_columns.par_chunks(taps * batch * outputs))
            .for_each(|(planes, rows)| g.scatter(rows, planes));
        let grad_input = Tensor::from_vec(grad_planes, (g.channels, batch, g.h, g.w), device)?
            .transpose(0, 1)?
            .contiguous()?;
        Ok((Some(grad_input), Some(grad_weight)))
    }
}

/// The input's gradient of a stride-1 convolution that keeps the size:
/// the same-size convolution of the output's gradient with each filter
/// flipped and the channels swapped. The serving kernels run it (Winograd
/// for 3x3), with no columns built and scattered back.
fn same_convolution_input_gradient(grad: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (cout, cin, k, _) = weight.dims4()?;
    let w: Vec<f32> = weight.flatten_all()?.to_vec1()?;
    let mut flipped = vec![0f32; w.len()];
    for co in 0..cout {
        for ci in 0..cin {
            for i in 0..k {
                for j in 0..k {
                    flipped[((ci * cout + co) * k + k - 1 - i) * k + k - 1 - j] =
                        w[((co * cin + ci) * k + i) * k + j];
                }
            }
        }
    }
    let device = grad.device();
    let flipped = Tensor::from_vec(flipped, (cin, cout, k, k), device)?;
    let bias = Tensor::zeros(cin, candle_core::DType::F32, device)?;
    ConvNorm::new(
        flipped,
        bias,
        ConvShape::new(cout, cin, k, 1),
        Activation::None,
    )?
    .forward(&grad.contiguous()?)
}

/// A depthwise convolution (one filter per channel) with its gradients.
/// candle runs a grouped convolution as one small convolution per group,
/// hundreds per MobileNetV2 layer, which makes training crawl.
#[derive(Clone, Copy, Debug)]
struct Depthwise {
    stride: usize,
    padding: usize,
}

fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("the training layers need f32 tensors")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("the training layers need contiguous tensors"),
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
        let p = Window::new(
            input_layout.dims(),
            weight_layout.dims(),
            (self.stride, self.padding),
            true,
        )?;
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
                p.each_tap(|xi, oi, wi| out[oi] += x[xi] * w[wi]);
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
        let p = Window::new(
            input.dims(),
            weight.dims(),
            (self.stride, self.padding),
            true,
        )?;
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
                p.each_tap(|xi, oi, wi| {
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

/// 3x3 max pooling, stride 2, padding 1, with its gradient: each output's
/// gradient goes to the input that was the maximum of its window.
#[derive(Clone, Copy, Debug)]
struct StemPool;

impl StemPool {
    /// Output size, and for each output of one plane the index of its
    /// window's maximum within the input plane.
    fn winners(plane: &[f32], h: usize, w: usize) -> (usize, usize, Vec<usize>) {
        let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
        let mut winners = Vec::with_capacity(oh * ow);
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = (f32::NEG_INFINITY, 0);
                for y in (2 * oy).saturating_sub(1)..(2 * oy + 2).min(h) {
                    for x in (2 * ox).saturating_sub(1)..(2 * ox + 2).min(w) {
                        let value = plane[y * w + x];
                        if value > best.0 || best.0 == f32::NEG_INFINITY {
                            best = (value, y * w + x);
                        }
                    }
                }
                winners.push(best.1);
            }
        }
        (oh, ow, winners)
    }
}

impl candle_core::CustomOp1 for StemPool {
    fn name(&self) -> &'static str {
        "starcast-stem-pool"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (batch, channels, h, w) = layout.shape().dims4()?;
        let x = f32_slice(storage, layout)?;
        let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
        let mut out = vec![0f32; batch * channels * oh * ow];
        out.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(plane, out)| {
                let input = &x[plane * h * w..][..h * w];
                let (_, _, winners) = StemPool::winners(input, h, w);
                for (o, i) in out.iter_mut().zip(winners) {
                    *o = input[i];
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((batch, channels, oh, ow))))
    }

    fn bwd(&self, input: &Tensor, _output: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (batch, channels, h, w) = input.dims4()?;
        let x: Vec<f32> = input.flatten_all()?.to_vec1()?;
        let g: Vec<f32> = grad.contiguous()?.flatten_all()?.to_vec1()?;
        let mut grad_input = vec![0f32; x.len()];
        grad_input
            .par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(plane, grad_input)| {
                let (oh, ow, winners) = StemPool::winners(&x[plane * h * w..][..h * w], h, w);
                for (o, i) in winners.into_iter().enumerate() {
                    grad_input[i] += g[plane * oh * ow + o];
                }
            });
        Ok(Some(Tensor::from_vec(
            grad_input,
            (batch, channels, h, w),
            input.device(),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// The gradient of `Σ y · weights` for `of`: weighted, so every output
    /// position's gradient differs.
    fn weighted_gradient(y: &Tensor, weights: &Tensor, of: &Tensor) -> Tensor {
        let grads = (y * weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        grads.get(of).unwrap().clone()
    }

    /// The largest absolute difference between two tensors.
    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// `op` on a 9x9 batch beside candle's convolution with `groups`:
    /// values, and gradients for the input and the weights `(cout, cin /
    /// groups, k)`. Square inputs: candle's own convolution gradient takes
    /// the output padding from the height alone.
    fn matches_candle_convolution(
        (cout, cin_per_group, k): (usize, usize, usize),
        groups: usize,
        (stride, padding): (usize, usize),
        tolerance: f32,
        op: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) {
        let device = Device::Cpu;
        let random = |shape: (usize, usize, usize, usize)| {
            Var::from_tensor(&Tensor::randn(0f32, 1., shape, &device).unwrap()).unwrap()
        };
        let x = random((2, cin_per_group * groups, 9, 9));
        let w = random((cout, cin_per_group, k, k));
        let ours = op(x.as_tensor(), w.as_tensor()).unwrap();
        let theirs = x
            .as_tensor()
            .conv2d(w.as_tensor(), padding, stride, 1, groups)
            .unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        let case = format!("stride {stride} padding {padding} k {k}");
        let difference = max_difference(&ours, &theirs);
        assert!(difference < tolerance, "{case}: {difference}");
        // Weighted sums so every output position's gradient differs.
        let weights = Tensor::randn(0f32, 1., ours.dims(), &device).unwrap();
        let gradients = |y: Tensor| {
            (y * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        let (ours, theirs) = (gradients(ours), gradients(theirs));
        for var in [&x, &w] {
            let difference = max_difference(
                ours.get(var.as_tensor()).unwrap(),
                theirs.get(var.as_tensor()).unwrap(),
            );
            assert!(difference < tolerance, "{case}, gradient: {difference}");
        }
    }

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
        for (stride, padding, k) in [(1, 1, 3), (2, 1, 3), (2, 2, 5), (1, 0, 3)] {
            let op = Depthwise { stride, padding };
            matches_candle_convolution((3, 1, k), 3, (stride, padding), 1e-4, |x, w| {
                x.apply_op2(w, op)
            });
            // The GPU's form, run here.
            matches_candle_convolution((3, 1, k), 3, (stride, padding), 1e-4, |x, w| {
                depthwise_by_taps(x, w, stride, padding)
            });
        }
    }

    #[test]
    fn stem_pool_matches_the_serving_pool_and_routes_gradients_to_maxima() {
        let device = Device::Cpu;
        for (h, w) in [(7, 7), (8, 6), (1, 1)] {
            let x =
                Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, h, w), &device).unwrap()).unwrap();
            let ours = TrainingConvNorm::stem_pool(x.as_tensor()).unwrap();
            let serving = x
                .as_tensor()
                .pad_with_same(2, 1, 1)
                .unwrap()
                .pad_with_same(3, 1, 1)
                .unwrap()
                .max_pool2d_with_stride(3, 2)
                .unwrap();
            let diff: f32 = (&ours - &serving)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert_eq!(diff, 0.0, "{h}x{w}");
            let grads = ours.sum_all().unwrap().backward().unwrap();
            let grad = grads.get(x.as_tensor()).unwrap();
            let total: f32 = grad.sum_all().unwrap().to_scalar().unwrap();
            assert_eq!(
                total as usize,
                ours.elem_count(),
                "one unit of gradient per output"
            );
            // Only maxima get gradient: every input with gradient equals an output.
            let inputs: Vec<f32> = x.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let flags: Vec<f32> = grad.flatten_all().unwrap().to_vec1().unwrap();
            let outputs: Vec<f32> = ours.flatten_all().unwrap().to_vec1().unwrap();
            for (value, g) in inputs.iter().zip(&flags) {
                if *g > 0.0 {
                    assert!(outputs.contains(value));
                }
            }
        }
    }

    /// The GPU's stem pool, run here on the CPU, against the CPU's: the
    /// same values and gradients after a ReLU, as in ResNet's stem.
    #[test]
    fn composed_stem_pool_matches_the_cpu_one() {
        for (h, w) in [(7, 7), (8, 6), (1, 1), (112, 112)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, h, w), &Device::Cpu).unwrap())
                .unwrap();
            let activated = x.relu().unwrap();
            let ours = activated.apply_op1(StemPool).unwrap();
            let composed = composed_stem_pool(&activated).unwrap();
            assert_eq!(max_difference(&ours, &composed), 0.0, "{h}x{w}");
            let weights = Tensor::randn(0f32, 1., ours.dims(), &Device::Cpu).unwrap();
            let gradient = |y: &Tensor| weighted_gradient(y, &weights, x.as_tensor());
            assert!(max_difference(&gradient(&ours), &gradient(&composed)) < 1e-6);
        }
    }

    /// The GPU's convolution + BatchNorm layer, run here on the CPU,
    /// against the CPU's kernels: outputs, gradients and running averages.
    #[test]
    fn composed_layer_matches_the_cpu_kernels() {
        for (groups, activation) in [(1, Activation::Relu), (4, Activation::Relu6)] {
            let layers: Vec<(VarMap, TrainingConvNorm)> = (0..2)
                .map(|_| {
                    let varmap = VarMap::new();
                    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
                    let shape = ConvShape {
                        cin: 4,
                        cout: 4,
                        kernel: 3,
                        stride: 2,
                        groups,
                    };
                    let layer =
                        TrainingConvNorm::load(vb.pp("conv"), vb.pp("bn"), shape, 1e-5, activation)
                            .unwrap();
                    (varmap, layer)
                })
                .collect();
            // The same starting values in both.
            let mut seeded: Vec<(String, Tensor)> = Vec::new();
            for (name, var) in layers[0].0.data().lock().unwrap().iter() {
                let value = Tensor::randn(0.5f32, 0.3, var.shape(), &Device::Cpu).unwrap();
                var.set(&value).unwrap();
                seeded.push((name.clone(), value));
            }
            for (name, value) in &seeded {
                layers[1].0.data().lock().unwrap()[name].set(value).unwrap();
            }
            let x = Var::from_tensor(&Tensor::randn(0f32, 1., (3, 4, 9, 9), &Device::Cpu).unwrap())
                .unwrap();
            let ours = layers[0].1.forward(x.as_tensor()).unwrap();
            let composed = layers[1].1.forward_composed(x.as_tensor()).unwrap();
            assert!(max_difference(&ours, &composed) < 1e-4, "groups {groups}");
            let weights = Tensor::randn(0f32, 1., ours.dims(), &Device::Cpu).unwrap();
            let gradient = |y: &Tensor, of: &Tensor| weighted_gradient(y, &weights, of);
            assert!(
                max_difference(
                    &gradient(&ours, x.as_tensor()),
                    &gradient(&composed, x.as_tensor())
                ) < 1e-3
            );
            for (mine, theirs) in [
                (&layers[0].1.weight, &layers[1].1.weight),
                (&layers[0].1.gamma, &layers[1].1.gamma),
            ] {
                assert!(
                    max_difference(&gradient(&ours, mine), &gradient(&composed, theirs)) < 1e-3
                );
            }
            for (mine, theirs) in [
                (&layers[0].1.running_mean, &layers[1].1.running_mean),
                (&layers[0].1.running_var, &layers[1].1.running_var),
            ] {
                assert!(max_difference(mine.as_tensor(), theirs.as_tensor()) < 1e-5);
            }
        }
    }

    #[test]
    fn dense_convolution_matches_candle_forward_and_backward() {
        for (stride, padding, k, cin, cout) in [
            (1, 1, 3, 3, 4),
            (2, 1, 3, 2, 5),
            (2, 3, 7, 3, 4),
            (1, 0, 1, 6, 3),
            (2, 0, 1, 4, 4),
        ] {
            let op = Convolution { stride, padding };
            matches_candle_convolution((cout, cin, k), 1, (stride, padding), 1e-3, |x, w| {
                x.apply_op2(w, op)
            });
        }
    }

    #[test]
    fn fused_batch_norm_matches_the_formula_and_its_gradients() {
        for clip in [None, Some(0.5)] {
            fused_batch_norm_case(clip);
        }
    }

    fn fused_batch_norm_case(clip: Option<f32>) {
        let device = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(1f32, 2., (3, 4, 5, 6), &device).unwrap()).unwrap();
        let gamma = Var::from_tensor(&Tensor::randn(1f32, 0.5, 4, &device).unwrap()).unwrap();
        let beta = Var::from_tensor(&Tensor::randn(0f32, 0.5, 4, &device).unwrap()).unwrap();
        let eps = 1e-5;
        let norm = BatchNorm {
            eps,
            clip,
            statistics: Arc::default(),
        };
        let ours = x
            .as_tensor()
            .apply_op3(gamma.as_tensor(), beta.as_tensor(), norm)
            .unwrap();
        // The textbook formula in tensor operations, differentiated by candle.
        let per_channel = x
            .as_tensor()
            .transpose(0, 1)
            .unwrap()
            .reshape((4, ()))
            .unwrap();
        let mean = per_channel.mean_keepdim(1).unwrap();
        let centred = per_channel.broadcast_sub(&mean).unwrap();
        let variance = centred.sqr().unwrap().mean_keepdim(1).unwrap();
        let normalised = centred
            .broadcast_div(&(variance + eps).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&gamma.as_tensor().unsqueeze(1).unwrap())
            .unwrap()
            .broadcast_add(&beta.as_tensor().unsqueeze(1).unwrap())
            .unwrap();
        let theirs = normalised
            .reshape((4, 3, 5, 6))
            .unwrap()
            .transpose(0, 1)
            .unwrap();
        let theirs = match clip {
            Some(clip) => theirs.clamp(0f32, clip).unwrap(),
            None => theirs,
        };
        let close = |a: &Tensor, b: &Tensor, what: &str| {
            let diff: f32 = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(diff < 1e-3, "{what} with clip {clip:?}: {diff}");
        };
        close(&ours, &theirs, "output");
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
        for (var, what) in [(&x, "input"), (&gamma, "gamma"), (&beta, "beta")] {
            close(
                ours_grads.get(var.as_tensor()).unwrap(),
                theirs_grads.get(var.as_tensor()).unwrap(),
                what,
            );
        }
    }
}
