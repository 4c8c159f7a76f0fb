//! torchvision's MobileNetV2 with its tensor names (`features.N...`,
//! `classifier.1`).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{Activation, ConvLayer, ConvNorm, ConvShape, FeaturesClassifier, Head};

const EPS: f64 = 1e-5;

/// (expansion, output channels, repeats, first stride) per stage, as in
/// the MobileNetV2 paper and torchvision.
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];
const LAST_CHANNELS: usize = 1280;

#[derive(Debug)]
pub struct InvertedResidual<C = ConvNorm> {
    convs: Vec<C>,
    residual: bool,
}

impl<C: ConvLayer> InvertedResidual<C> {
    fn load(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        stride: usize,
        expansion: usize,
    ) -> Result<Self> {
        let vb = vb.pp("conv");
        let hidden = cin * expansion;
        let mut convs = Vec::new();
        if expansion != 1 {
            let at = vb.pp(convs.len());
            convs.push(C::load(
                at.pp(0),
                at.pp(1),
                ConvShape::new(cin, hidden, 1, 1),
                EPS,
                Activation::Relu6,
            )?);
        }
        let at = vb.pp(convs.len());
        convs.push(C::load(
            at.pp(0),
            at.pp(1),
            ConvShape::depthwise(hidden, 3, stride),
            EPS,
            Activation::Relu6,
        )?);
        let i = convs.len();
        convs.push(C::load(
            vb.pp(i),
            vb.pp(i + 1),
            ConvShape::new(hidden, cout, 1, 1),
            EPS,
            Activation::None,
        )?);
        Ok(InvertedResidual {
            convs,
            residual: stride == 1 && cin == cout,
        })
    }
}

impl<C: Module> Module for InvertedResidual<C> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = x.clone();
        for conv in &self.convs {
            y = conv.forward(&y)?;
        }
        if self.residual { y + x } else { Ok(y) }
    }
}

/// A MobileNetV2 classifier (width 1.0), served or being trained.
pub type MobileNetV2<C = ConvNorm> = FeaturesClassifier<InvertedResidual<C>, C>;

impl<C: ConvLayer> FeaturesClassifier<InvertedResidual<C>, C> {
    pub fn load(vb: VarBuilder, classes: usize) -> Result<Self> {
        let features = vb.pp("features");
        let stem = C::load(
            features.pp("0.0"),
            features.pp("0.1"),
            ConvShape::new(3, 32, 3, 2),
            EPS,
            Activation::Relu6,
        )?;
        let mut blocks = Vec::new();
        let mut cin = 32;
        for (expansion, cout, repeats, stride) in STAGES {
            for i in 0..repeats {
                let stride = if i == 0 { stride } else { 1 };
                blocks.push(InvertedResidual::load(
                    features.pp(blocks.len() + 1),
                    cin,
                    cout,
                    stride,
                    expansion,
                )?);
                cin = cout;
            }
        }
        let at = features.pp(blocks.len() + 1);
        let last = C::load(
            at.pp(0),
            at.pp(1),
            ConvShape::new(cin, LAST_CHANNELS, 1, 1),
            EPS,
            Activation::Relu6,
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
