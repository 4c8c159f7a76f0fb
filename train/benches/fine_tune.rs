//! Full fine-tuning throughput: images per second of training steps
//! (forward with BatchNorm in training mode, backward, AdamW) on random
//! 224x224 batches, and the process's peak memory. bench/train.sh runs
//! PyTorch beside it with the same network, batch and threads; on a GPU
//! machine, bench/gpu.sh runs both there.
//!
//! Usage: cargo bench -p starcast-train --bench fine_tune -- [ARCH] [BATCH] [STEPS] [cpu|cuda]
//! Prints one JSON object.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use starcast_model::vision::{Architecture, NamedTensors};
use starcast_train::{AdamW, ParamsAdamW, TrainingConvNorm};

#[path = "../../bench/allocator.rs"]
mod allocator;
#[path = "../../bench/peak_rss.rs"]
mod peak_rss;
use peak_rss::peak_rss_mb;

const CLASSES: usize = 3;

fn architecture(name: &str) -> Architecture {
    let (head, features) = match name {
        "mobilenet_v2" => ("classifier.1.weight", 1280),
        _ => ("fc.weight", 512),
    };
    let head_only: NamedTensors = [(
        head.to_string(),
        Tensor::zeros((CLASSES, features), DType::F32, &Device::Cpu).unwrap(),
    )]
    .into();
    Architecture::named(name, &head_only).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let arch = args.first().map_or("resnet18", String::as_str);
    let batch: usize = args.get(1).map_or(32, |b| b.parse().unwrap());
    let steps: usize = args.get(2).map_or(5, |s| s.parse().unwrap());
    let device = match args.get(3).map(String::as_str) {
        Some("cuda") => Device::new_cuda(0).expect("a CUDA GPU (build with --features cuda)"),
        _ => Device::Cpu,
    };

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let network = architecture(arch)
        .build_with::<TrainingConvNorm>(vb)
        .unwrap();
    // Values don't change the speed, but realistic ones keep the numbers finite.
    for (name, var) in varmap.data().lock().unwrap().iter() {
        let value = if name.ends_with("running_var") || name.ends_with("bn1.weight") {
            Tensor::ones(var.shape(), DType::F32, &device).unwrap()
        } else {
            (Tensor::randn(0f32, 1.0, var.shape(), &device).unwrap() * 0.05).unwrap()
        };
        var.set(&value).unwrap();
    }
    let named = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(name, var)| (name.clone(), var.clone()))
        .collect();
    let mut optimiser = AdamW::new(named, ParamsAdamW::default()).unwrap();
    let input = Tensor::randn(0f32, 1.0, (batch, 3, 224, 224), &device).unwrap();
    let targets = Tensor::from_vec(
        (0..batch as u32).map(|i| i % CLASSES as u32).collect(),
        batch,
        &device,
    )
    .unwrap();
    let mut step = || {
        let logits = network.forward(&input).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
        optimiser.backward_step(&loss).unwrap();
    };
    step();
    device.synchronize().unwrap();
    let start = Instant::now();
    for _ in 0..steps {
        step();
    }
    device.synchronize().unwrap();
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "arch": arch,
            "batch": batch,
            "steps": steps,
            "device": format!("{device:?}"),
            "images_per_s": (batch * steps) as f64 / seconds,
            "peak_rss_mb": peak_rss_mb(),
        })
    );
}
