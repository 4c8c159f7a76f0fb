//! Named tensors from a weights file, and a `VarBuilder` over them that
//! remembers which names a network used, so a file that doesn't fit the
//! architecture is described by name: missing, unexpected, wrong shape.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;

use super::error::NetworkError;
use super::pth::read_pth;
use crate::folder::{Files, LoadError};

/// The float tensors of a weights file by name, as f32 on the CPU.
pub type NamedTensors = HashMap<String, Tensor>;

/// Reads `.pth`/`.pt`/`.bin` (PyTorch) or `.safetensors`.
pub fn read_weights(path: &Path) -> Result<NamedTensors, LoadError> {
    read_weights_in(&Files::Disk, path)
}

/// [`read_weights`] from `files`.
pub fn read_weights_in(files: &Files, path: &Path) -> Result<NamedTensors, LoadError> {
    let unusable = |reason: String| LoadError::Weights {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = files.read(path)?;
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let tensors = if is_safetensors {
        candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| unusable(format!("not a safetensors file ({e})")))?
            .into_iter()
            .filter(|(_, t)| t.dtype().is_float())
            .map(|(k, t)| Ok((k, t.to_dtype(DType::F32)?)))
            .collect::<candle_core::Result<NamedTensors>>()
            .map_err(|e| unusable(e.to_string()))?
    } else {
        read_pth(&bytes).map_err(|e| unusable(e.to_string()))?
    };
    Ok(tensors)
}

/// Tensors handed over as they are asked for, remembering which were:
/// each is dropped once its layer has made its own weights from it, so a
/// network being built never holds its file's tensors and its own in full.
struct Tracked {
    tensors: Mutex<NamedTensors>,
    used: Mutex<BTreeSet<String>>,
}

/// Shares one `Tracked` between the `VarBuilder` and the check after it.
#[derive(Clone)]
struct Shared(Arc<Tracked>);

impl SimpleBackend for Shared {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.get_unchecked(name, dtype, device)?;
        if tensor.shape() != &shape {
            return Err(candle_core::Error::Msg(format!(
                "tensor {name} has shape {:?}, the architecture needs {:?}",
                tensor.dims(),
                shape.dims()
            )));
        }
        Ok(tensor)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let taken = lock(&self.0.tensors).remove(name);
        let Some(tensor) = taken else {
            let reason = if lock(&self.0.used).contains(name) {
                "was asked for twice"
            } else {
                "is not in the weights"
            };
            return Err(candle_core::Error::Msg(format!(
                "the tensor {name} {reason}"
            )));
        };
        lock(&self.0.used).insert(name.to_string());
        tensor.to_dtype(dtype)?.to_device(device)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        lock(&self.0.tensors).contains_key(name)
    }
}

/// The guarded value even if a thread panicked holding it: the maps stay
/// whole whatever a layer's builder did.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Builds a network on `device` from named tensors and refuses tensors it
/// didn't use: a file for another architecture fails here rather than
/// predicting nonsense.
pub fn build_exactly<M>(
    tensors: NamedTensors,
    device: &Device,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<M>,
) -> Result<M, NetworkError> {
    let tracked = Shared(Arc::new(Tracked {
        tensors: Mutex::new(tensors),
        used: Mutex::new(BTreeSet::new()),
    }));
    let vb = VarBuilder::from_backend(Box::new(tracked.clone()), DType::F32, device.clone());
    let model = build(vb).map_err(NetworkError::Layers)?;
    let left = lock(&tracked.0.tensors);
    let mut unexpected: Vec<&String> = left.keys().collect();
    if !unexpected.is_empty() {
        unexpected.sort();
        let shown: Vec<&str> = unexpected.iter().take(5).map(|s| s.as_str()).collect();
        return Err(NetworkError::Unexpected {
            shown: shown.join(", "),
            more: unexpected.len() - shown.len(),
        });
    }
    Ok(model)
}
