//! AdamW (Loshchilov & Hutter: bias-corrected moments, decoupled weight
//! decay) over named variables, with moments that can be saved and
//! restored, so a run resumed from a checkpoint takes the steps an unbroken
//! run would. candle-nn's AdamW does the same maths but keeps its moments
//! private.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};
pub use candle_nn::ParamsAdamW;

/// One trained variable and its first and second moment estimates.
struct Slot {
    name: String,
    var: Var,
    first: Var,
    second: Var,
}

pub struct AdamW {
    slots: Vec<Slot>,
    /// Steps taken, for the bias correction.
    steps: usize,
    params: ParamsAdamW,
}

impl AdamW {
    /// Moves `vars` (name, variable); the names key the saved moments.
    pub fn new(vars: Vec<(String, Var)>, params: ParamsAdamW) -> Result<Self> {
        let slots = vars
            .into_iter()
            .filter(|(_, var)| var.dtype().is_float())
            .map(|(name, var)| {
                let zeros = || Var::zeros(var.shape(), var.dtype(), var.device());
                Ok(Slot {
                    first: zeros()?,
                    second: zeros()?,
                    name,
                    var,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            slots,
            steps: 0,
            params,
        })
    }

    pub fn set_learning_rate(&mut self, learning_rate: f64) {
        self.params.lr = learning_rate;
    }

    /// Back-propagates `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// One step with `grads`; a variable without a gradient is left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let ParamsAdamW {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.params;
        let first_correction = 1.0 / (1.0 - beta1.powi(self.steps as i32));
        let second_correction = 1.0 / (1.0 - beta2.powi(self.steps as i32));
        for slot in &self.slots {
            let Some(grad) = grads.get(&slot.var) else {
                continue;
            };
            let first = ((slot.first.as_tensor() * beta1)? + (grad * (1.0 - beta1))?)?;
            let second = ((slot.second.as_tensor() * beta2)? + (grad.sqr()? * (1.0 - beta2))?)?;
            let update =
                ((&first * first_correction)? / ((&second * second_correction)?.sqrt()? + eps)?)?;
            let decayed = (slot.var.as_tensor() * (1.0 - lr * weight_decay))?;
            slot.var.set(&(decayed - (update * lr)?)?)?;
            slot.first.set(&first)?;
            slot.second.set(&second)?;
        }
        Ok(())
    }

    /// The moments by name (`first.<name>`, `second.<name>`) and the
    /// number of steps taken.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for slot in &self.slots {
            tensors.insert(
                format!("first.{}", slot.name),
                slot.first.as_tensor().clone(),
            );
            tensors.insert(
                format!("second.{}", slot.name),
                slot.second.as_tensor().clone(),
            );
        }
        tensors.insert(
            "steps".to_string(),
            Tensor::new(&[self.steps as u32], &Device::Cpu)?,
        );
        candle_core::safetensors::save(&tensors, path)
    }

    /// Restores what `save` wrote, for the same variables.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)?;
        let mut take = |name: String| {
            tensors.remove(&name).ok_or_else(|| {
                candle_core::Error::Msg(format!("the optimiser state has no {name}"))
            })
        };
        for slot in &self.slots {
            let device = slot.first.device();
            slot.first
                .set(&take(format!("first.{}", slot.name))?.to_device(device)?)?;
            slot.second
                .set(&take(format!("second.{}", slot.name))?.to_device(device)?)?;
        }
        self.steps = take("steps".to_string())?.to_vec1::<u32>()?[0] as usize;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_nn::Optimizer;

    use super::*;

    /// The same steps as candle-nn's AdamW, whose maths this follows.
    #[test]
    fn steps_match_candle_nn_and_resume_exactly() {
        let params = ParamsAdamW {
            lr: 0.05,
            weight_decay: 0.01,
            ..Default::default()
        };
        let start = Tensor::new(&[1.0f32, -2.0, 3.0], &Device::Cpu).unwrap();
        let loss = |var: &Var| (var.as_tensor().sqr().unwrap().sum_all().unwrap() * 0.5).unwrap();

        let theirs = Var::from_tensor(&start).unwrap();
        let mut reference = candle_nn::AdamW::new(vec![theirs.clone()], params.clone()).unwrap();
        let ours = Var::from_tensor(&start).unwrap();
        let mut optimiser = AdamW::new(vec![("w".into(), ours.clone())], params.clone()).unwrap();
        for _ in 0..3 {
            reference.backward_step(&loss(&theirs)).unwrap();
            optimiser.backward_step(&loss(&ours)).unwrap();
        }
        let gap = (theirs.as_tensor() - ours.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(gap < 1e-6, "{gap}");

        // Saved after 3 steps and restored into a fresh optimiser, the 4th
        // step is the unbroken run's.
        let dir = tempfile::tempdir().unwrap();
        optimiser
            .save(&dir.path().join("adamw.safetensors"))
            .unwrap();
        let resumed = Var::from_tensor(ours.as_tensor()).unwrap();
        let mut restored = AdamW::new(vec![("w".into(), resumed.clone())], params).unwrap();
        restored
            .load(&dir.path().join("adamw.safetensors"))
            .unwrap();
        optimiser.backward_step(&loss(&ours)).unwrap();
        restored.backward_step(&loss(&resumed)).unwrap();
        assert_eq!(
            ours.as_tensor().to_vec1::<f32>().unwrap(),
            resumed.as_tensor().to_vec1::<f32>().unwrap()
        );
    }
}
