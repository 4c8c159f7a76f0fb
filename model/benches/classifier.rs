//! Classifier latency on one photo: decode + preprocess + forward, decode +
//! preprocess alone, the forward pass alone, and the forward pass per photo
//! of a batch of 4, for resnet18 and mobilenet_v2 on the CPU.
//! bench/vision.sh runs PyTorch beside it on the same photo and threads.
//!
//! Usage: cargo bench -p starcast-model --bench classifier -- [PHOTO] [RUNS]
//! Prints one JSON object per architecture.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use starcast_model::photo::decode_photo;
use starcast_model::vision::{Architecture, NamedTensors, Preprocess};

#[path = "../../bench/allocator.rs"]
mod allocator;
#[path = "../../bench/peak_rss.rs"]
mod peak_rss;
use peak_rss::peak_rss_mb;

/// The batch of the batched forward pass: the server's default batch.
const BATCH: usize = 4;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Tensors of the right names and shapes for an architecture (values
/// don't change the speed), from the parity fixture's tensor lists.
fn tensors_for(arch: &str) -> NamedTensors {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vision_parity.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    json["formula"][arch]["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let name = entry[0].as_str().unwrap().to_string();
            let shape: Vec<usize> = entry[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let value = if name.ends_with("running_var") {
                1.0
            } else {
                0.01
            };
            let tensor = (Tensor::ones(shape, candle_core::DType::F32, &Device::Cpu).unwrap()
                * value)
                .unwrap();
            (name, tensor)
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let photo = args
        .first()
        .filter(|a| !a.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/samples/chelsea.png")
        });
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(20);
    let bytes = std::fs::read(&photo).unwrap();
    for arch in ["resnet18", "mobilenet_v2"] {
        let tensors = tensors_for(arch);
        let network = Architecture::infer(&tensors)
            .unwrap()
            .build(tensors, &Device::Cpu)
            .unwrap();
        let preprocess = Preprocess::default();
        let input = preprocess
            .tensor(&decode_photo(&bytes).unwrap().image)
            .unwrap();
        for _ in 0..3 {
            network.forward(&input).unwrap();
        }
        let batch = Tensor::cat(&[&input; BATCH], 0).unwrap();
        let mut forward = Vec::new();
        let mut batched = Vec::new();
        let mut end_to_end = Vec::new();
        let mut preprocessing = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            preprocess
                .tensor(&decode_photo(&bytes).unwrap().image)
                .unwrap();
            preprocessing.push(start.elapsed().as_secs_f64() * 1000.0);
            let start = Instant::now();
            network.forward(&input).unwrap().to_vec2::<f32>().unwrap();
            forward.push(start.elapsed().as_secs_f64() * 1000.0);
            let start = Instant::now();
            network.forward(&batch).unwrap().to_vec2::<f32>().unwrap();
            batched.push(start.elapsed().as_secs_f64() * 1000.0 / BATCH as f64);
            let start = Instant::now();
            let image = decode_photo(&bytes).unwrap().image;
            let x = preprocess.tensor(&image).unwrap();
            let logits = network.forward(&x).unwrap();
            candle_nn::ops::softmax_last_dim(&logits)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            end_to_end.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "{}",
            serde_json::json!({
                "peer": "starcast (candle)",
                "arch": arch,
                "forward_ms": median(forward),
                "batch_forward_ms_per_photo": median(batched),
                "batch": BATCH,
                "end_to_end_ms": median(end_to_end),
                "decode_preprocess_ms": median(preprocessing),
                "peak_rss_mb": peak_rss_mb(),
                "runs": runs,
            })
        );
    }
}
