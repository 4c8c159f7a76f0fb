//! face-api's faceRecognitionNet: a ResNet-34-like port of dlib's face
//! descriptor network, 150x150 RGB in, 128 numbers out. Photos of the same
//! person land about 0.4 apart (Euclidean), different people about 0.65.

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use image::RgbImage;

use crate::vision::layers::{Activation, ConvNorm, ConvShape};

/// The side of the square the network reads.
pub const INPUT_SIDE: usize = 150;
/// The length of a face descriptor.
pub const DESCRIPTOR_LEN: usize = 128;
const MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];

/// A TF.js convolution (`prefix/conv/{filters,bias}`) followed by its
/// scale layer (`prefix/scale/{weights,biases}`), folded into one.
fn conv(vb: VarBuilder, shape: ConvShape, activation: Activation) -> Result<ConvNorm> {
    let ConvShape {
        cin, cout, kernel, ..
    } = shape;
    let filters = vb.get((kernel, kernel, cin, cout), "conv.filters")?;
    let bias = vb.get(cout, "conv.bias")?;
    let scale = vb.get(cout, "scale.weights")?;
    let shift = vb.get(cout, "scale.biases")?;
    let weight = filters
        .permute((3, 2, 0, 1))?
        .broadcast_mul(&scale.reshape((cout, 1, 1, 1))?)?
        .contiguous()?;
    let bias = ((bias * &scale)? + shift)?;
    ConvNorm::new(weight, bias, shape, activation)
}

/// Two 3x3 convolutions and a shortcut; a downsampling block halves the
/// size with an unpadded stride-2 convolution and average-pools the shortcut.
#[derive(Debug)]
struct Residual {
    conv1: ConvNorm,
    conv2: ConvNorm,
    down: bool,
}

impl Residual {
    fn load(vb: VarBuilder, cin: usize, cout: usize, down: bool) -> Result<Self> {
        let stride = if down { 2 } else { 1 };
        let conv1 = conv(
            vb.pp("conv1"),
            ConvShape::new(cin, cout, 3, stride),
            Activation::Relu,
        )?;
        let conv1 = if down {
            conv1.without_padding()?
        } else {
            conv1
        };
        let conv2 = conv(
            vb.pp("conv2"),
            ConvShape::new(cout, cout, 3, 1),
            Activation::None,
        )?;
        Ok(Residual { conv1, conv2, down })
    }
}

impl Module for Residual {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut out = self.conv2.forward(&self.conv1.forward(x)?)?;
        if !self.down {
            return (out + x)?.relu();
        }
        let mut shortcut = x.avg_pool2d(2)?;
        // Where the convolution comes out one smaller than the pooling,
        // face-api appends a zero row and column.
        if out.dim(2)? != shortcut.dim(2)? {
            out = out.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
        }
        if out.dim(1)? != shortcut.dim(1)? {
            shortcut = Tensor::cat(&[&shortcut, &shortcut.zeros_like()?], 1)?;
        }
        (out + shortcut)?.relu()
    }
}

/// The face descriptor network.
#[derive(Debug)]
pub struct FaceEmbedder {
    stem: ConvNorm,
    blocks: Vec<Residual>,
    fc: Tensor,
}

impl FaceEmbedder {
    /// Loads from TF.js names (`conv32_down.conv.filters`, ..., `fc`).
    pub fn load(vb: VarBuilder) -> Result<Self> {
        let stem = conv(
            vb.pp("conv32_down"),
            ConvShape::new(3, 32, 7, 2),
            Activation::Relu,
        )?
        .without_padding()?;
        let layout: [(&str, usize, usize, bool); 14] = [
            ("conv32_1", 32, 32, false),
            ("conv32_2", 32, 32, false),
            ("conv32_3", 32, 32, false),
            ("conv64_down", 32, 64, true),
            ("conv64_1", 64, 64, false),
            ("conv64_2", 64, 64, false),
            ("conv64_3", 64, 64, false),
            ("conv128_down", 64, 128, true),
            ("conv128_1", 128, 128, false),
            ("conv128_2", 128, 128, false),
            ("conv256_down", 128, 256, true),
            ("conv256_1", 256, 256, false),
            ("conv256_2", 256, 256, false),
            ("conv256_down_out", 256, 256, true),
        ];
        let blocks = layout
            .iter()
            .map(|&(name, cin, cout, down)| Residual::load(vb.pp(name), cin, cout, down))
            .collect::<Result<Vec<_>>>()?;
        let fc = vb.get((256, DESCRIPTOR_LEN), "fc")?;
        Ok(FaceEmbedder { stem, blocks, fc })
    }

    /// The descriptor of a face crop.
    pub fn embed(&self, face: &RgbImage) -> Result<Vec<f32>> {
        let x = self
            .stem
            .forward(&input(face)?)?
            .max_pool2d_with_stride(3, 2)?;
        let x = self
            .blocks
            .iter()
            .try_fold(x, |x, block| block.forward(&x))?;
        x.mean((2, 3))?.matmul(&self.fc)?.squeeze(0)?.to_vec1()
    }
}

/// face-api's input: the crop padded to a centred square with black,
/// resized to 150x150 with TensorFlow's bilinear (no antialiasing, no half
/// pixel offset), the mean colour subtracted and divided by 255.
fn input(face: &RgbImage) -> Result<Tensor> {
    let (w, h) = (face.width() as usize, face.height() as usize);
    if w == 0 || h == 0 {
        candle_core::bail!("the face crop is empty");
    }
    let side = w.max(h);
    let diff = side - w.min(h);
    // face-api appends round(diff / 2) and prepends the rest.
    let before = diff - (diff as f64 * 0.5).round() as usize;
    let (dx, dy) = if h > w { (before, 0) } else { (0, before) };
    let pixel = |x: usize, y: usize, c: usize| -> f32 {
        match (x.checked_sub(dx), y.checked_sub(dy)) {
            (Some(x), Some(y)) if x < w && y < h => {
                f32::from(face.get_pixel(x as u32, y as u32)[c])
            }
            _ => 0.0,
        }
    };
    let scale = side as f32 / INPUT_SIDE as f32;
    let plane = INPUT_SIDE * INPUT_SIDE;
    let mut data = vec![0f32; 3 * plane];
    for oy in 0..INPUT_SIDE {
        let sy = oy as f32 * scale;
        let (y0, fy) = (sy.floor() as usize, sy.fract());
        let y1 = (y0 + 1).min(side - 1);
        for ox in 0..INPUT_SIDE {
            let sx = ox as f32 * scale;
            let (x0, fx) = (sx.floor() as usize, sx.fract());
            let x1 = (x0 + 1).min(side - 1);
            for (c, mean) in MEAN_RGB.iter().enumerate() {
                let top = pixel(x0, y0, c) + (pixel(x1, y0, c) - pixel(x0, y0, c)) * fx;
                let bottom = pixel(x0, y1, c) + (pixel(x1, y1, c) - pixel(x0, y1, c)) * fx;
                let value = top + (bottom - top) * fy;
                data[c * plane + oy * INPUT_SIDE + ox] = (value - mean) / 255.0;
            }
        }
    }
    Tensor::from_vec(data, (1, 3, INPUT_SIDE, INPUT_SIDE), &Device::Cpu)
}
