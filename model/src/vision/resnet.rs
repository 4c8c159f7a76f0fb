//! torchvision's ResNet (18/34/50/101/152) with its tensor names.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{Activation, ConvLayer, ConvNorm, ConvShape, Head, Network};

const EPS: f64 = 1e-5;

/// Blocks per stage and the block kind; what tells resnet18 from resnet50.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub blocks: [usize; 4],
    pub bottleneck: bool,
    pub classes: usize,
}

impl Config {
    /// The torchvision preset by name (`resnet18` ... `resnet152`).
    pub fn named(name: &str, classes: usize) -> Option<Self> {
        let (blocks, bottleneck) = match name {
            "resnet18" => ([2, 2, 2, 2], false),
            "resnet34" => ([3, 4, 6, 3], false),
            "resnet50" => ([3, 4, 6, 3], true),
            "resnet101" => ([3, 4, 23, 3], true),
            "resnet152" => ([3, 8, 36, 3], true),
            _ => return None,
        };
        Some(Config {
            blocks,
            bottleneck,
            classes,
        })
    }

    /// The preset's name, for people.
    pub fn name(&self) -> String {
        let per_block = if self.bottleneck { 3 } else { 2 };
        format!(
            "resnet{}",
            self.blocks.iter().sum::<usize>() * per_block + 2
        )
    }

    /// Reads the configuration from tensor names: how many `layerN.i`
    /// blocks, whether blocks have a `conv3`, the rows of `fc.weight`.
    pub fn infer(has: impl Fn(&str) -> bool, fc_rows: usize) -> Option<Self> {
        if !has("conv1.weight") || !has("layer1.0.conv1.weight") {
            return None;
        }
        let mut blocks = [0; 4];
        for (stage, count) in blocks.iter_mut().enumerate() {
            while has(&format!("layer{}.{}.conv1.weight", stage + 1, *count)) {
                *count += 1;
            }
        }
        Some(Config {
            blocks,
            bottleneck: has("layer1.0.conv3.weight"),
            classes: fc_rows,
        })
    }
}

#[derive(Debug)]
struct Block<C> {
    convs: Vec<C>,
    downsample: Option<C>,
}

impl<C: ConvLayer> Block<C> {
    fn load(
        vb: VarBuilder,
        cin: usize,
        width: usize,
        stride: usize,
        bottleneck: bool,
    ) -> Result<(Self, usize)> {
        let conv = |i: usize, shape: ConvShape, activation| {
            C::load(
                vb.pp(format!("conv{i}")),
                vb.pp(format!("bn{i}")),
                shape,
                EPS,
                activation,
            )
        };
        let (convs, cout) = if bottleneck {
            let cout = width * 4;
            let convs = vec![
                conv(1, ConvShape::new(cin, width, 1, 1), Activation::Relu)?,
                conv(2, ConvShape::new(width, width, 3, stride), Activation::Relu)?,
                conv(3, ConvShape::new(width, cout, 1, 1), Activation::None)?,
            ];
            (convs, cout)
        } else {
            let convs = vec![
                conv(1, ConvShape::new(cin, width, 3, stride), Activation::Relu)?,
                conv(2, ConvShape::new(width, width, 3, 1), Activation::None)?,
            ];
            (convs, width)
        };
        let downsample = if stride != 1 || cin != cout {
            let ds = vb.pp("downsample");
            Some(C::load(
                ds.pp(0),
                ds.pp(1),
                ConvShape::new(cin, cout, 1, stride),
                EPS,
                Activation::None,
            )?)
        } else {
            None
        };
        Ok((Block { convs, downsample }, cout))
    }
}

impl<C: Module> Module for Block<C> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = x.clone();
        for conv in &self.convs {
            y = conv.forward(&y)?;
        }
        let shortcut = match &self.downsample {
            Some(ds) => ds.forward(x)?,
            None => x.clone(),
        };
        (y + shortcut)?.relu()
    }
}

/// A ResNet classifier, served or being trained.
#[derive(Debug)]
pub struct ResNet<C = ConvNorm> {
    stem: C,
    blocks: Vec<Block<C>>,
    head: Head,
}

impl<C: ConvLayer> ResNet<C> {
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let stem = C::load(
            vb.pp("conv1"),
            vb.pp("bn1"),
            ConvShape::new(3, 64, 7, 2),
            EPS,
            Activation::Relu,
        )?;
        let mut blocks = Vec::new();
        let mut cin = 64;
        for (stage, &count) in config.blocks.iter().enumerate() {
            let width = 64 << stage;
            let layer = vb.pp(format!("layer{}", stage + 1));
            for i in 0..count {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                let (block, cout) =
                    Block::load(layer.pp(i), cin, width, stride, config.bottleneck)?;
                blocks.push(block);
                cin = cout;
            }
        }
        let head = Head::load(vb.pp("fc"), cin, config.classes)?;
        Ok(ResNet { stem, blocks, head })
    }
}

impl<C: ConvLayer> Network for ResNet<C> {
    fn features(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = C::stem_pool(&self.stem.forward(x)?)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        x.mean((2, 3))
    }
}

impl<C: ConvLayer> Module for ResNet<C> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.head.forward(&self.features(x)?)
    }
}
