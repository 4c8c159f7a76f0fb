//! `--device`: where a command's model arithmetic runs.

use anyhow::Context;
use candle_core::{Device, DeviceLocation};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    /// The first NVIDIA GPU; needs a starcast built with `--features cuda`.
    Cuda,
}

impl DeviceChoice {
    pub fn open(self) -> anyhow::Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda if !cfg!(feature = "cuda") => anyhow::bail!(
                "this starcast was built without CUDA: build it with scripts/build-cuda.sh \
                 (README, \"Training and serving on a GPU\") and run that binary on the GPU machine"
            ),
            DeviceChoice::Cuda => Device::new_cuda(0).context(
                "could not open the first CUDA GPU: check that nvidia-smi lists it and that \
                 CUDA 13's libraries (cuBLAS, cuRAND, NVRTC) are on LD_LIBRARY_PATH",
            ),
        }
    }
}

/// A device as `--device` and nvidia-smi name it: `cpu`, `cuda:0`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        DeviceLocation::Cpu => "cpu".into(),
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}
