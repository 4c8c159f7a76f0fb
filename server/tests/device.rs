//! `--device cuda` on a starcast built without the `cuda` feature: every
//! command that runs a model stops at once and says how to get a GPU build.

mod common;

use common::starcast;

#[test]
fn every_model_command_says_how_to_get_a_cuda_build() {
    let photo = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/samples/chelsea.png");
    let commands: [&[&str]; 4] = [
        &[
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--device",
            "cuda",
        ],
        &["predict", "actors", "--device", "cuda", photo],
        &["generate", "horoscope", "--sign", "leo", "--device", "cuda"],
        &[
            "evaluate",
            "data/models/smollm2-135m-instruct",
            "--data",
            "no/such/horoscopes.parquet",
            "--device",
            "cuda",
        ],
    ];
    for args in commands {
        let output = starcast(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} ran: {stderr}");
        assert!(
            stderr.contains("built without CUDA: build it with scripts/build-cuda.sh"),
            "{args:?}: {stderr}"
        );
    }
}
