//! Every form of `.pth` a student saves yields the same tensors, written by
//! PyTorch itself (scripts/reference/pth_forms.py made the fixtures).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use starcast_model::vision::read_pth;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pth")
}

#[derive(serde::Deserialize)]
struct Expected {
    shape: Vec<usize>,
    values: Vec<f32>,
}

fn expected() -> HashMap<String, Expected> {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn check(file: &str, tolerance: f32) {
    let bytes = std::fs::read(fixtures().join(file)).unwrap();
    let tensors = read_pth(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    let expected = expected();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut wanted: Vec<&String> = expected.keys().collect();
    wanted.sort();
    assert_eq!(names, wanted, "{file}");
    for (name, want) in &expected {
        let got = &tensors[name];
        assert_eq!(got.dims(), want.shape.as_slice(), "{file} {name}");
        let values = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (g, w) in values.iter().zip(&want.values) {
            assert!((g - w).abs() <= tolerance, "{file} {name}: {g} vs {w}");
        }
    }
}

#[test]
fn a_zip_state_dict() {
    check("state_dict.pth", 0.0);
}

#[test]
fn a_legacy_state_dict() {
    check("state_dict_legacy.pth", 0.0);
}

#[test]
fn checkpoint_dicts() {
    check("checkpoint.pth", 0.0);
    check("checkpoint_legacy.pth", 0.0);
}

#[test]
fn data_parallel_names_lose_their_prefix() {
    check("data_parallel.pth", 0.0);
}

#[test]
fn whole_pickled_modules_are_read_as_data() {
    check("whole_module.pth", 0.0);
    check("whole_module_legacy.pth", 0.0);
}

#[test]
fn half_precision_and_strided_tensors() {
    check("half.pth", 2e-3);
    check("transposed.pth", 0.0);
}

#[test]
fn truncated_files_are_errors() {
    for file in [
        "state_dict.pth",
        "state_dict_legacy.pth",
        "whole_module_legacy.pth",
    ] {
        let bytes = std::fs::read(fixtures().join(file)).unwrap();
        for cut in [10, bytes.len() / 3, bytes.len() / 2, bytes.len() - 9] {
            assert!(read_pth(&bytes[..cut]).is_err(), "{file} cut at {cut}");
        }
    }
}
