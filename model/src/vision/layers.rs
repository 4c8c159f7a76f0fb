//! The building block every network here shares: a convolution whose
//! BatchNorm (eval mode) is folded into its weights and bias at load time,
//! so inference runs one convolution instead of four tensor passes. The
//! networks are generic over that block ([`ConvLayer`]) so that training
//! builds the same network from a trainable one.

use candle_core::{DType, Module, Result, Tensor, bail};

use super::conv::{Conv2d, winograd_fits, winograd_weights};
use candle_nn::VarBuilder;

/// The activation after a convolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    None,
    Relu,
    Relu6,
    Silu,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::None => Ok(x.clone()),
            Activation::Relu => x.relu(),
            Activation::Relu6 => x.clamp(0f32, 6f32),
            Activation::Silu => x.silu(),
        }
    }
}

/// The shape of a convolution: channels in and out, square kernel,
/// stride, groups. Padding keeps "same" size at stride 1, as torchvision does.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
}

impl ConvShape {
    pub fn new(cin: usize, cout: usize, kernel: usize, stride: usize) -> Self {
        ConvShape {
            cin,
            cout,
            kernel,
            stride,
            groups: 1,
        }
    }

    pub fn depthwise(channels: usize, kernel: usize, stride: usize) -> Self {
        ConvShape {
            groups: channels,
            ..ConvShape::new(channels, channels, kernel, stride)
        }
    }
}

/// A convolution + BatchNorm + activation, built from torchvision's tensor
/// names: `weight` under `conv`; `weight`, `bias`, `running_mean`,
/// `running_var` under `norm`.
pub trait ConvLayer: Module + Sized + Send + Sync {
    fn load(
        conv: VarBuilder,
        norm: VarBuilder,
        shape: ConvShape,
        eps: f64,
        activation: Activation,
    ) -> Result<Self>;

    /// ResNet's 3x3, stride 2, padding 1 max pooling after its stem, here
    /// because training needs a version with a gradient (candle's has none
    /// for overlapping windows).
    fn stem_pool(x: &Tensor) -> Result<Tensor> {
        // Repeating the border is the same as padding with -inf for a
        // maximum that already includes the border.
        x.pad_with_same(2, 1, 1)?
            .pad_with_same(3, 1, 1)?
            .max_pool2d_with_stride(3, 2)
    }
}

/// Conv2d (+ folded BatchNorm or scale) + activation.
#[derive(Debug)]
pub struct ConvNorm {
    filters: Filters,
    bias: Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
    activation: Activation,
}

/// A layer's filters, as its forward pass reads them.
#[derive(Debug)]
enum Filters {
    /// `(cout, cin / groups, k, k)`.
    Plain(Tensor),
    /// Only the `(16, cout, cin)` Winograd transform, for the CPU: keeping
    /// the plain filters beside it held ResNet-18's 3x3 weights twice.
    Winograd(Tensor),
}

impl ConvLayer for ConvNorm {
    /// A bias-free convolution at `conv` followed by BatchNorm at `norm`.
    fn load(
        conv: VarBuilder,
        norm: VarBuilder,
        shape: ConvShape,
        eps: f64,
        activation: Activation,
    ) -> Result<Self> {
        ConvNorm::load_portable(conv, norm, shape, eps, activation)?.prepared()
    }
}

impl ConvNorm {
    /// [`ConvLayer::load`] without the CPU's Winograd transform: the layer
    /// as every device runs it, with candle's own operations.
    pub fn load_portable(
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
            groups,
            ..
        } = shape;
        let weight = conv.get((cout, cin / groups, kernel, kernel), "weight")?;
        let gamma = norm.get(cout, "weight")?;
        let beta = norm.get(cout, "bias")?;
        let mean = norm.get(cout, "running_mean")?;
        let var = norm.get(cout, "running_var")?;
        let scale = (gamma / (var + eps)?.sqrt()?)?;
        let weight = weight.broadcast_mul(&scale.reshape((cout, 1, 1, 1))?)?;
        let bias = (beta - (mean * &scale)?)?;
        Ok(ConvNorm::unprepared(weight, bias, shape, activation))
    }

    /// Ready weights `(cout, cin / groups, k, k)` and bias `(cout)`, with
    /// torchvision's padding: "same" size at stride 1.
    pub fn new(
        weight: Tensor,
        bias: Tensor,
        shape: ConvShape,
        activation: Activation,
    ) -> Result<Self> {
        ConvNorm::unprepared(weight, bias, shape, activation).prepared()
    }

    fn unprepared(weight: Tensor, bias: Tensor, shape: ConvShape, activation: Activation) -> Self {
        ConvNorm {
            filters: Filters::Plain(weight),
            bias,
            stride: shape.stride,
            padding: (shape.kernel - 1) / 2,
            groups: shape.groups,
            activation,
        }
    }

    /// The same convolution without padding (TensorFlow's "valid").
    pub fn without_padding(self) -> Result<Self> {
        let Filters::Plain(weight) = self.filters else {
            bail!("a Winograd layer keeps only its transformed filters; unpad it before")
        };
        ConvNorm {
            filters: Filters::Plain(weight),
            padding: 0,
            ..self
        }
        .prepared()
    }

    /// Transforms the weights once for the CPU's Winograd path when it fits.
    fn prepared(mut self) -> Result<Self> {
        if let Filters::Plain(weight) = &self.filters
            && weight.device().is_cpu()
            && winograd_fits(weight.dim(3)?, self.stride, self.padding, self.groups)
        {
            self.filters = Filters::Winograd(winograd_weights(weight)?);
        }
        Ok(self)
    }

    /// A convolution with its own bias and no norm (squeeze-excitation).
    pub fn load_plain(vb: VarBuilder, shape: ConvShape, activation: Activation) -> Result<Self> {
        let ConvShape {
            cin,
            cout,
            kernel,
            groups,
            ..
        } = shape;
        let weight = vb.get((cout, cin / groups, kernel, kernel), "weight")?;
        let bias = vb.get(cout, "bias")?;
        ConvNorm::new(weight, bias, shape, activation)
    }
}

impl Module for ConvNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            let (weight, winograd) = match &self.filters {
                Filters::Plain(weight) => (weight, false),
                Filters::Winograd(transformed) => (transformed, true),
            };
            let op = Conv2d {
                stride: self.stride,
                padding: self.padding,
                groups: self.groups,
                activation: self.activation,
                winograd,
            };
            return x.contiguous()?.apply_op3_no_bwd(weight, &self.bias, &op);
        }
        self.forward_portable(x)
    }
}

impl ConvNorm {
    /// The layer from candle's operations, which every device runs (the
    /// fused convolution is a CPU kernel).
    pub fn forward_portable(&self, x: &Tensor) -> Result<Tensor> {
        let Filters::Plain(weight) = &self.filters else {
            bail!("this layer was prepared for the CPU's Winograd path: load it with load_portable")
        };
        let y = if is_depthwise(weight, self.groups)? {
            depthwise_by_taps(x, weight, self.stride, self.padding)?
        } else {
            x.conv2d(weight, self.padding, self.stride, 1, self.groups)?
        };
        let y = y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?;
        self.activation.apply(&y)
    }
}

/// Whether a convolution's `weight` (`(cout, cin / groups, k, k)`) filters
/// each channel on its own.
pub fn is_depthwise(weight: &Tensor, groups: usize) -> Result<bool> {
    Ok(groups > 1 && weight.dim(0)? == groups && weight.dim(1)? == 1)
}

/// A depthwise convolution (weight `(C, 1, k, k)`) from candle's
/// differentiable operations, for devices other than the CPU: the sum over
/// the k² taps of a shifted view of the input times the tap's per-channel
/// weight. candle runs a grouped convolution as one convolution per group,
/// launched separately for each of MobileNetV2's up to 960 channels.
/// Strided views come from splitting rows and columns into groups of
/// `stride`: padded row `stride * i + ky` is row `ky % stride` of group
/// `i + ky / stride`.
pub fn depthwise_by_taps(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let (batch, channels, h, w) = x.dims4()?;
    let k = weight.dim(2)?;
    let (oh, ow) = (
        (h + 2 * padding - k) / stride + 1,
        (w + 2 * padding - k) / stride + 1,
    );
    // Enough groups for the last window; never fewer rows than the input.
    let (rows, columns) = (oh + (k - 1) / stride, ow + (k - 1) / stride);
    let grouped = x
        .pad_with_zeros(2, padding, stride * rows - h - padding)?
        .pad_with_zeros(3, padding, stride * columns - w - padding)?
        .reshape((batch, channels, rows, stride, columns, stride))?;
    let mut sum: Option<Tensor> = None;
    for ky in 0..k {
        for kx in 0..k {
            let view = grouped
                .narrow(2, ky / stride, oh)?
                .narrow(3, ky % stride, 1)?
                .narrow(4, kx / stride, ow)?
                .narrow(5, kx % stride, 1)?
                .reshape((batch, channels, oh, ow))?;
            let tap = weight
                .narrow(2, ky, 1)?
                .narrow(3, kx, 1)?
                .reshape((1, channels, 1, 1))?;
            let term = view.broadcast_mul(&tap)?;
            sum = Some(match sum {
                Some(so_far) => (so_far + term)?,
                None => term,
            });
        }
    }
    Ok(sum.expect("at least one tap"))
}

/// A classifier network: pooled features, then a linear head.
pub trait Network: Module + Send + Sync {
    /// The globally pooled features the head reads, `(batch, features)`.
    fn features(&self, x: &Tensor) -> Result<Tensor>;
}

/// torchvision's `features` + `classifier` layout, shared by MobileNetV2
/// and EfficientNet: a stem convolution, the blocks, a last 1x1
/// convolution, then pooling and the linear head.
#[derive(Debug)]
pub struct FeaturesClassifier<B, C = ConvNorm> {
    pub stem: C,
    pub blocks: Vec<B>,
    pub last: C,
    pub head: Head,
}

impl<B: Module + Send + Sync, C: Module + Send + Sync> Network for FeaturesClassifier<B, C> {
    fn features(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.stem.forward(x)?;
        let x = self
            .blocks
            .iter()
            .try_fold(x, |x, block| block.forward(&x))?;
        self.last.forward(&x)?.mean((2, 3))
    }
}

impl<B: Module + Send + Sync, C: Module + Send + Sync> Module for FeaturesClassifier<B, C> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.head.forward(&self.features(x)?)
    }
}

/// The classifier head: a linear layer on the pooled features.
#[derive(Debug)]
pub struct Head {
    linear: candle_nn::Linear,
}

impl Head {
    pub fn load(vb: VarBuilder, features: usize, classes: usize) -> Result<Self> {
        Ok(Head {
            linear: candle_nn::linear(features, classes, vb)?,
        })
    }
}

impl Module for Head {
    /// Row by row: a product of several rows sums in another order than
    /// one of one row, and a photo's answer must not depend on the photos
    /// it was batched with.
    fn forward(&self, pooled: &Tensor) -> Result<Tensor> {
        let rows = pooled.dim(0)?;
        if rows <= 1 {
            return self.linear.forward(pooled);
        }
        let each = (0..rows)
            .map(|row| self.linear.forward(&pooled.narrow(0, row, 1)?))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&each, 0)
    }
}
