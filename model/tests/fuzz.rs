//! A stable-toolchain fuzz harness for what a visitor or a student can
//! hand the server: `.pth` files, safetensors, TF.js manifests and photos.
//! Each target replays its committed seed corpus (`tests/fuzz/<target>/`,
//! plus the `.pth` forms of `tests/fixtures/pth/`) and a fixed number of
//! deterministic mutations of every seed: bit flips, interesting bytes,
//! truncations, repeated and inserted runs. Every input must give an
//! answer or an error, never a panic, within a time bound. Set
//! `STARCAST_FUZZ_ROUNDS` to run longer than CI does.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use starcast_model::folder::Files;
use starcast_model::photo::decode_photo;
use starcast_model::vision::{read_pth, read_tfjs};

/// Mutations per seed in CI: a few seconds for every target.
const DEFAULT_ROUNDS: usize = 2_000;
/// The longest one input may take: a hang is a finding too.
const MAX_INPUT_TIME: Duration = Duration::from_secs(5);

fn rounds() -> usize {
    std::env::var("STARCAST_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS)
}

fn corpus(dirs: &[&str], extension: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut seeds: Vec<(PathBuf, Vec<u8>)> = dirs
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no .{extension} seeds in {dirs:?}");
    seeds
}

/// xorshift64*: the same mutations on every run and machine.
struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut bytes = seed.to_vec();
        for _ in 0..1 + self.below(4) {
            if bytes.is_empty() {
                bytes.push(self.next() as u8);
            }
            let at = self.below(bytes.len());
            match self.below(6) {
                0 => bytes[at] ^= 1 << self.below(8),
                1 => bytes[at] = [0x00, 0xff, 0x7f, 0x80, 0x01][self.below(5)],
                2 => bytes.truncate(at),
                3 => {
                    let end = (at + 1 + self.below(16)).min(bytes.len());
                    let run = bytes[at..end].to_vec();
                    for _ in 0..1 + self.below(64) {
                        bytes.splice(at..at, run.iter().copied());
                    }
                }
                4 => {
                    let noise: Vec<u8> =
                        (0..1 + self.below(8)).map(|_| self.next() as u8).collect();
                    bytes.splice(at..at, noise);
                }
                _ => {
                    // A big little-endian count where a length may stand.
                    let end = (at + 4).min(bytes.len());
                    bytes[at..end].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f][..end - at]);
                }
            }
        }
        bytes
    }
}

/// Runs `target` on every seed and its mutations; fails on a panic or a
/// slow input, naming the seed and the input's length.
fn fuzz(name: &str, seeds: &[(PathBuf, Vec<u8>)], target: impl Fn(&[u8])) {
    let started = Instant::now();
    let mut mutator = Mutator(0x9E37_79B9_7F4A_7C15);
    let mut inputs = 0;
    for (path, seed) in seeds {
        let mut run = |input: &[u8]| {
            let clock = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| target(input)));
            assert!(
                outcome.is_ok(),
                "{name}: a mutation of {} ({} bytes) panicked",
                path.display(),
                input.len()
            );
            assert!(
                clock.elapsed() < MAX_INPUT_TIME,
                "{name}: a mutation of {} took {:?}",
                path.display(),
                clock.elapsed()
            );
            inputs += 1;
        };
        run(seed);
        for _ in 0..rounds() {
            run(&mutator.mutate(seed));
        }
    }
    eprintln!(
        "fuzz {name}: {inputs} inputs from {} seeds in {:.1} s, no panic",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn pth_files() {
    let seeds = corpus(&["fixtures/pth", "fuzz/pth"], "pth");
    fuzz("pth", &seeds, |bytes| {
        let _ = read_pth(bytes);
    });
}

#[test]
fn safetensors_files() {
    let seeds = corpus(&["fuzz/safetensors"], "safetensors");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    fuzz("safetensors", &seeds, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let _ = starcast_model::vision::read_weights(&path);
    });
}

#[test]
fn tfjs_manifests() {
    let seeds = corpus(&["fuzz/tfjs"], "json");
    let dir = tempfile::tempdir().unwrap();
    let shard = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/tfjs/group1-shard1of1.bin");
    std::fs::copy(shard, dir.path().join("group1-shard1of1.bin")).unwrap();
    let manifest = dir.path().join("weights_manifest.json");
    fuzz("tfjs", &seeds, |bytes| {
        std::fs::write(&manifest, bytes).unwrap();
        let _ = read_tfjs(&Files::Disk, &manifest);
    });
}

#[test]
fn photos() {
    let seeds = corpus(&["fuzz/photo"], "png")
        .into_iter()
        .chain(corpus(&["fuzz/photo"], "bmp"))
        .collect::<Vec<_>>();
    fuzz("photo", &seeds, |bytes| {
        let _ = decode_photo(bytes);
    });
}
