//! The product with a weight that is not being trained. candle's own
//! product always computes both gradients, so under LoRA every frozen
//! projection and the head cost a second product as large as the forward
//! one, and a weight-sized gradient kept until the step ends; this one
//! passes the gradient to the input only.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Layout, Result, Shape, Storage, Tensor};

/// `xs` (`[n, in]`) times the transpose of `weight` (`[out, in]`).
pub fn frozen_product(xs: &Tensor, weight: &Tensor) -> Result<Tensor> {
    xs.apply_op1(FrozenProduct {
        weight: weight.clone(),
    })
}

struct FrozenProduct {
    weight: Tensor,
}

impl FrozenProduct {
    fn forward<S: BackendStorage>(
        &self,
        xs: &S,
        xs_layout: &Layout,
        weight: &S,
        weight_layout: &Layout,
    ) -> Result<(S, Shape)> {
        let (rows, inner) = xs_layout.shape().dims2()?;
        let (outputs, weight_inner) = weight_layout.shape().dims2()?;
        if inner != weight_inner {
            candle_core::bail!(
                "an input of width {inner} can't go through a weight of width {weight_inner}"
            );
        }
        let product = xs.matmul(
            weight,
            (1, rows, outputs, inner),
            xs_layout,
            &weight_layout.transpose(0, 1)?,
        )?;
        Ok((product, Shape::from((rows, outputs))))
    }
}

fn other_device() -> candle_core::Error {
    candle_core::Error::Msg("the input and the weight are on different devices".into())
}

impl CustomOp1 for FrozenProduct {
    fn name(&self) -> &'static str {
        "frozen-product"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (weight, weight_layout) = self.weight.storage_and_layout();
        match &*weight {
            Storage::Cpu(weight) => self.forward(xs, layout, weight, weight_layout),
            _ => Err(other_device()),
        }
    }

    fn cuda_fwd(&self, xs: &CudaStorage, layout: &Layout) -> Result<(CudaStorage, Shape)> {
        let (weight, weight_layout) = self.weight.storage_and_layout();
        match &*weight {
            Storage::Cuda(weight) => self.forward(xs, layout, weight, weight_layout),
            _ => Err(other_device()),
        }
    }

    fn bwd(&self, _xs: &Tensor, _product: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.weight)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn values_and_input_gradient_match_candles_product() {
        let device = Device::Cpu;
        let xs = Var::rand(-1f32, 1., (5, 7), &device).unwrap();
        let weight = Tensor::rand(-1f32, 1., (3, 7), &device).unwrap();
        let target = Tensor::rand(-1f32, 1., (5, 3), &device).unwrap();

        let ours = frozen_product(&xs, &weight).unwrap();
        let transposed = weight.t().unwrap();
        let theirs = xs.matmul(&transposed).unwrap();
        let gap = (&ours - &theirs).unwrap().abs().unwrap().max_all().unwrap();
        assert!(gap.to_scalar::<f32>().unwrap() < 1e-6);

        let grads = |ys: &Tensor| {
            let loss = (ys * &target).unwrap().sum_all().unwrap();
            loss.backward().unwrap()
        };
        let ours = grads(&ours);
        let theirs = grads(&theirs);
        let gap = (ours.get(&xs).unwrap() - theirs.get(&xs).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(gap.to_scalar::<f32>().unwrap() < 1e-6);
        assert!(
            ours.get(&weight).is_none(),
            "the frozen weight got a gradient"
        );
        // The waste this op removes.
        assert!(theirs.get(&transposed).is_some());
    }
}
