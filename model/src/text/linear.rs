//! A weight matrix as the decoder-only models hold it: dense F32, GGUF
//! blocks multiplied as stored, or another GGUF format through candle;
//! with optional LoRA adapters, and projections of one input stacked.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Result, Tensor};

use super::blocks::BlockMatrix;
use super::frozen::frozen_product;

/// Low-rank adapters on one projection: `W x + scale · B (A x)`.
#[derive(Clone, Debug)]
pub struct Lora {
    /// `[rank, in]`.
    pub a: Tensor,
    /// `[out, rank]`.
    pub b: Tensor,
    pub scale: f64,
}

/// A weight matrix `[out, in]`, as PyTorch stores it.
#[derive(Clone, Debug)]
pub(super) enum Weight {
    Dense(Tensor),
    /// Q4_1 or Q8_0 GGUF blocks, multiplied as stored.
    Blocks(BlockMatrix),
    /// Another GGUF format (the K-quants), through candle's product.
    Quantized(QMatMul, (usize, usize)),
}

/// The CPU, where quantized weights live.
pub(super) static CPU: Device = Device::Cpu;

impl Weight {
    /// A GGUF tensor as served: float tensors dequantized, block formats
    /// kept. `lookup` says rows will be looked up (an embedding), which
    /// only the dense and Q4_1/Q8_0 forms can do.
    pub(super) fn from_gguf(tensor: QTensor, lookup: bool) -> Result<Self> {
        if matches!(
            tensor.dtype(),
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16
        ) {
            return Ok(Weight::Dense(tensor.dequantize(&CPU)?));
        }
        if let Some(blocks) = BlockMatrix::from_qtensor(&tensor)? {
            return Ok(Weight::Blocks(blocks));
        }
        if lookup {
            return Ok(Weight::Dense(tensor.dequantize(&CPU)?));
        }
        let dims = tensor.shape().dims2()?;
        Ok(Weight::Quantized(QMatMul::from_qtensor(tensor)?, dims))
    }

    pub(super) fn dims(&self) -> Result<(usize, usize)> {
        match self {
            Weight::Dense(tensor) => tensor.dims2(),
            Weight::Blocks(blocks) => Ok(blocks.dims()),
            Weight::Quantized(_, dims) => Ok(*dims),
        }
    }

    pub(super) fn device(&self) -> &Device {
        match self {
            Weight::Dense(tensor) => tensor.device(),
            Weight::Blocks(_) | Weight::Quantized(..) => &CPU,
        }
    }

    /// `xs` (`[n, in]`) times the transposed weight: `[n, out]`.
    pub(super) fn matmul(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Weight::Dense(tensor) if tensor.is_variable() => xs.matmul(&tensor.t()?),
            Weight::Dense(tensor) => frozen_product(xs, tensor),
            Weight::Blocks(blocks) => blocks.matmul(xs),
            Weight::Quantized(matmul, _) => matmul.forward(xs),
        }
    }

    /// The rows `ids` (`[n]`): `[n, in]`.
    pub(super) fn rows(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Weight::Dense(tensor) => tensor.embedding(ids),
            Weight::Blocks(blocks) => {
                let ids = ids.to_vec1::<u32>()?;
                let rows = blocks.dequantize_rows(&ids)?;
                Tensor::from_vec(rows, (ids.len(), blocks.dims().1), &CPU)
            }
            Weight::Quantized(..) => candle_core::bail!("a quantized matrix has no row lookup"),
        }
    }

    pub(super) fn dense(&self) -> Result<&Tensor> {
        match self {
            Weight::Dense(tensor) => Ok(tensor),
            Weight::Blocks(_) | Weight::Quantized(..) => Err(served_quantized()),
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Linear {
    pub(super) weight: Weight,
    pub(super) lora: Option<Lora>,
}

impl Linear {
    pub(super) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (batch, positions, width) = xs.dims3()?;
        let flat = xs.reshape((batch * positions, width))?;
        let mut ys = self.weight.matmul(&flat)?;
        if let Some(lora) = &self.lora {
            let low = flat.matmul(&lora.a.t()?)?.matmul(&lora.b.t()?)?;
            ys = (ys + (low * lora.scale)?)?;
        }
        ys.reshape((batch, positions, ()))
    }

    /// Folds the adapters into the weight, for serving.
    pub(super) fn merge(&mut self) -> Result<()> {
        if let Some(lora) = self.lora.take() {
            let delta = (lora.b.matmul(&lora.a)? * lora.scale)?;
            self.weight = Weight::Dense((self.weight.dense()? + delta)?);
        }
        Ok(())
    }
}

/// Projections of the same input. Served block weights are stacked into
/// one matrix: one product and one hand-off to the threads instead of one
/// each.
#[derive(Clone, Debug)]
pub(super) enum Projections<const N: usize> {
    Apart([Linear; N]),
    Stacked {
        weight: BlockMatrix,
        outputs: [usize; N],
    },
}

impl<const N: usize> Projections<N> {
    pub(super) fn forward(&self, xs: &Tensor) -> Result<[Tensor; N]> {
        let parts = match self {
            Projections::Apart(linears) => linears
                .iter()
                .map(|linear| linear.forward(xs))
                .collect::<Result<Vec<_>>>()?,
            Projections::Stacked { weight, outputs } => {
                let (batch, positions, width) = xs.dims3()?;
                let ys = weight.matmul(&xs.reshape((batch * positions, width))?)?;
                let mut start = 0;
                outputs
                    .iter()
                    .map(|&width| {
                        let part = ys.narrow(1, start, width)?;
                        start += width;
                        part.reshape((batch, positions, width))
                    })
                    .collect::<Result<Vec<_>>>()?
            }
        };
        parts
            .try_into()
            .map_err(|_| candle_core::Error::Msg("a projection went missing".into()))
    }

    /// The projections one by one; none once stacked.
    pub(super) fn apart_mut(&mut self) -> &mut [Linear] {
        match self {
            Projections::Apart(linears) => linears,
            Projections::Stacked { .. } => &mut [],
        }
    }

    /// Stacks the projections when all are block weights without adapters.
    pub(super) fn stack(&mut self) {
        let Projections::Apart(linears) = self else {
            return;
        };
        let parts: Option<Vec<&BlockMatrix>> = linears
            .iter()
            .map(|linear| match (&linear.weight, &linear.lora) {
                (Weight::Blocks(blocks), None) => Some(blocks),
                _ => None,
            })
            .collect();
        let Some(parts) = parts else {
            return;
        };
        let outputs = std::array::from_fn(|i| parts[i].dims().0);
        if let Some(weight) = BlockMatrix::stack(&parts) {
            *self = Projections::Stacked { weight, outputs };
        }
    }
}

pub(super) fn served_quantized() -> candle_core::Error {
    candle_core::Error::Msg(
        "the model is served quantized: load its GGUF dequantized (Llama::from_gguf) to train, move or save it".into(),
    )
}
