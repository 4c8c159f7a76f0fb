//! torchvision's EfficientNet-B0 with its tensor names
//! (`features.S.B.block.N`, `classifier.1`).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{Activation, ConvLayer, ConvNorm, ConvShape, FeaturesClassifier, Head};

const EPS: f64 = 1e-5;

/// (expansion, kernel, first stride, output channels, repeats) per stage.
const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
];
const LAST_CHANNELS: usize = 1280;

/// Squeeze-and-excitation: channel weights from the pooled features.
#[derive(Debug)]
struct SqueezeExcitation {
    reduce: ConvNorm,
    expand: ConvNorm,
}

impl Module for SqueezeExcitation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let scale = x.mean_keepdim(3)?.mean_keepdim(2)?;
        let scale = self.expand.forward(&self.reduce.forward(&scale)?)?;
        x.broadcast_mul(&candle_nn::ops::sigmoid(&scale)?)
    }
}

#[derive(Debug)]
pub struct MbConv {
    expand: Option<ConvNorm>,
    depthwise: ConvNorm,
    se: SqueezeExcitation,
    project: ConvNorm,
    residual: bool,
}

impl MbConv {
    fn load(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        expansion: usize,
    ) -> Result<Self> {
        let vb = vb.pp("block");
        let hidden = cin * expansion;
        let mut at = 0;
        let mut next = || {
            at += 1;
            vb.pp(at - 1)
        };
        let expand = if expansion != 1 {
            let b = next();
            Some(ConvNorm::load(
                b.pp(0),
                b.pp(1),
                ConvShape::new(cin, hidden, 1, 1),
                EPS,
                Activation::Silu,
            )?)
        } else {
            None
        };
        let b = next();
        let depthwise = ConvNorm::load(
            b.pp(0),
            b.pp(1),
            ConvShape::depthwise(hidden, kernel, stride),
            EPS,
            Activation::Silu,
        )?;
        let b = next();
        let squeeze = (cin / 4).max(1);
        let se = SqueezeExcitation {
            reduce: ConvNorm::load_plain(
                b.pp("fc1"),
                ConvShape::new(hidden, squeeze, 1, 1),
                Activation::Silu,
            )?,
            expand: ConvNorm::load_plain(
                b.pp("fc2"),
                ConvShape::new(squeeze, hidden, 1, 1),
                Activation::None,
            )?,
        };
        let b = next();
        let project = ConvNorm::load(
            b.pp(0),
            b.pp(1),
            ConvShape::new(hidden, cout, 1, 1),
            EPS,
            Activation::None,
        )?;
        Ok(MbConv {
            expand,
            depthwise,
            se,
            project,
            residual: stride == 1 && cin == cout,
        })
    }
}

impl Module for MbConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.expand {
            Some(expand) => expand.forward(x)?,
            None => x.clone(),
        };
        let y = self
            .project
            .forward(&self.se.forward(&self.depthwise.forward(&y)?)?)?;
        if self.residual { y + x } else { Ok(y) }
    }
}

/// An EfficientNet-B0 classifier.
pub type EfficientNet = FeaturesClassifier<MbConv>;

impl FeaturesClassifier<MbConv> {
    pub fn load_b0(vb: VarBuilder, classes: usize) -> Result<Self> {
        let features = vb.pp("features");
        let stem = ConvNorm::load(
            features.pp("0.0"),
            features.pp("0.1"),
            ConvShape::new(3, 32, 3, 2),
            EPS,
            Activation::Silu,
        )?;
        let mut blocks = Vec::new();
        let mut cin = 32;
        for (stage, (expansion, kernel, stride, cout, repeats)) in STAGES.into_iter().enumerate() {
            let stage_vb = features.pp(stage + 1);
            for i in 0..repeats {
                let stride = if i == 0 { stride } else { 1 };
                blocks.push(MbConv::load(
                    stage_vb.pp(i),
                    cin,
                    cout,
                    kernel,
                    stride,
                    expansion,
                )?);
                cin = cout;
            }
        }
        let at = features.pp(STAGES.len() + 1);
        let last = ConvNorm::load(
            at.pp(0),
            at.pp(1),
            ConvShape::new(cin, LAST_CHANNELS, 1, 1),
            EPS,
            Activation::Silu,
        )?;
        let head = Head::load(vb.pp("classifier.1"), LAST_CHANNELS, classes)?;
        Ok(FeaturesClassifier {
            stem,
            blocks,
            last,
            head,
        })
    }
}
