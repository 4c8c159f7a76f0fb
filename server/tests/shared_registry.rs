//! One registry in S3 for many machines: two `starcast serve` replicas
//! follow a registry in a real S3-compatible server (moto, on loopback)
//! while a third process promotes and rolls back, and a writer killed
//! mid-upload leaves nothing a server could pick up.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::moto::Moto;
use common::{Multipart, ServeProcess, THREE_CLASS_CONFIG, png, three_class_safetensors};

const BUCKET: &str = "models";
const REGISTRY: &str = "s3://models/registry";
/// Per replica.
const CLIENTS: usize = 8;

/// The three-class model, whose answer is always its third label, in a
/// folder with `labels`.
fn model_folder(dir: &Path, labels: [&str; 3]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("model.safetensors"), three_class_safetensors()).unwrap();
    let config = THREE_CLASS_CONFIG.replace(r#"["Ada", "Bea", "Cleo"]"#, &format!("{labels:?}"));
    std::fs::write(dir.join("config.json"), config).unwrap();
}

fn starcast(moto: &Moto, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_starcast"));
    command
        .args(args)
        .envs(moto.env())
        .env("RUST_LOG", "warn")
        .env_remove("STARCAST_REGISTRY");
    command
}

fn run(moto: &Moto, args: &[&str]) -> Output {
    let output = starcast(moto, args).output().unwrap();
    assert!(
        output.status.success(),
        "starcast {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn add(moto: &Moto, folder: &Path, promote: bool) -> String {
    let mut args = vec![
        "models",
        "add",
        folder.to_str().unwrap(),
        "--registry",
        REGISTRY,
    ];
    if promote {
        args.push("--promote");
    }
    String::from_utf8_lossy(&run(moto, &args).stdout).into_owned()
}

/// A server with its own data folder and cache, on the shared registry.
fn replica(moto: &Moto, dir: &Path) -> ServeProcess {
    let mut command = starcast(moto, &[]);
    command.env("XDG_CACHE_HOME", dir.join("cache"));
    let data = dir.join("data");
    let args = ["--registry", REGISTRY, "--registry-poll", "1", "--data"];
    ServeProcess::start(
        command,
        args.iter()
            .map(std::ffi::OsStr::new)
            .chain([data.as_os_str()]),
    )
}

fn serves(replica: &ServeProcess, version: &str) -> bool {
    replica
        .get("/api/models")
        .is_some_and(|models| models.contains(&format!(r#""version":"{version}""#)))
}

/// Seconds until every replica serves `version`.
fn until_served(replicas: &[ServeProcess], version: &str) -> f64 {
    let started = Instant::now();
    while !replicas.iter().all(|replica| serves(replica, version)) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{version} was not served by every replica within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed().as_secs_f64()
}

#[test]
fn replicas_follow_promotions_made_elsewhere_with_no_failed_request() {
    let moto = Moto::start();
    assert_eq!(moto.http("PUT", &format!("/{BUCKET}"), b"").0, 200);
    let dir = tempfile::tempdir().unwrap();
    model_folder(&dir.path().join("first"), ["Ada", "Bea", "Cleo"]);
    model_folder(&dir.path().join("second"), ["Dan", "Eve", "Fay"]);
    let said = add(&moto, &dir.path().join("first"), true);
    assert!(
        said.contains("registered actors version v1 in s3://models/registry"),
        "{said}"
    );
    add(&moto, &dir.path().join("second"), false);

    let replicas = [
        replica(&moto, &dir.path().join("one")),
        replica(&moto, &dir.path().join("two")),
    ];
    assert!(replicas.iter().all(|replica| serves(replica, "v1")));

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let answers: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
    let clients: Vec<_> = (0..CLIENTS * replicas.len())
        .map(|n| {
            let port = replicas[n % replicas.len()].port;
            let (stop, failed, answers) = (stop.clone(), failed.clone(), answers.clone());
            std::thread::spawn(move || {
                let photo = png(64, 48, [200, 30, 30]);
                while !stop.load(Ordering::Relaxed) {
                    let request = Multipart::default()
                        .file("image", "red.png", &photo)
                        .raw("/api/actors/predict", "");
                    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    stream.write_all(&request).unwrap();
                    let mut response = String::new();
                    let read = stream.read_to_string(&mut response);
                    if read.is_err() || !response.starts_with("HTTP/1.1 200") {
                        failed.fetch_add(1, Ordering::Relaxed);
                    } else if response.contains(r#""label":"Cleo""#) {
                        answers[0].fetch_add(1, Ordering::Relaxed);
                    } else if response.contains(r#""label":"Fay""#) {
                        answers[1].fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(1));
    let said = run(&moto, &["models", "promote", "v2", "--registry", REGISTRY]);
    assert!(String::from_utf8_lossy(&said.stdout).contains("serving actors v2"));
    let promoted = until_served(&replicas, "v2");
    std::thread::sleep(Duration::from_secs(1));
    let on_v2 = answers[1].load(Ordering::Relaxed);
    run(&moto, &["models", "rollback", "--registry", REGISTRY]);
    let rolled_back = until_served(&replicas, "v1");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }

    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(on_v2 > 0, "no answer from the promoted version");
    assert!(
        answers[0].load(Ordering::Relaxed) > 0,
        "no answer from the first version"
    );
    // One poll a second: a change is seen within about a second, plus
    // the time to fetch and load the version.
    assert!(
        promoted < 10.0,
        "promotion took {promoted:.1} s to be served"
    );
    assert!(
        rolled_back < 10.0,
        "the rollback took {rolled_back:.1} s to be served"
    );
    let listed = run(&moto, &["models", "list", "--registry", REGISTRY]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("* v1"), "{listed}");
    assert!(listed.contains("  v2"), "{listed}");
}

#[test]
fn a_writer_killed_mid_upload_leaves_the_pointer_and_the_listing_alone() {
    let moto = Moto::start();
    assert_eq!(moto.http("PUT", &format!("/{BUCKET}"), b"").0, 200);
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    model_folder(&first, ["Ada", "Bea", "Cleo"]);
    add(&moto, &first, true);
    // A big model: its upload takes long enough to be cut short.
    let big = dir.path().join("big");
    model_folder(&big, ["Dan", "Eve", "Fay"]);
    std::fs::write(big.join("optimizer.bin"), vec![7u8; 256 << 20]).unwrap();

    let mut writer = starcast(
        &moto,
        &[
            "models",
            "add",
            big.to_str().unwrap(),
            "--registry",
            REGISTRY,
            "--promote",
        ],
    )
    .env("XDG_CACHE_HOME", dir.path().join("writer-cache"))
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let started = Instant::now();
    while !moto
        .keys(BUCKET, "registry/actors/versions/v2/")
        .iter()
        .any(|key| key.ends_with("/.claim"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the upload never started"
        );
        assert!(writer.try_wait().unwrap().is_none(), "the writer exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.kill().unwrap();
    writer.wait().unwrap();

    let keys = moto.keys(BUCKET, "registry/actors/versions/v2/");
    assert!(
        !keys.iter().any(|key| key.ends_with("/version.json")),
        "the upload finished before the kill: {keys:?}"
    );
    let listed = run(&moto, &["models", "list", "--registry", REGISTRY]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.starts_with("* v1"), "{listed}");
    let promote = starcast(&moto, &["models", "promote", "v2", "--registry", REGISTRY])
        .output()
        .unwrap();
    assert!(!promote.status.success());
    let said = String::from_utf8_lossy(&promote.stderr);
    assert!(said.contains("no version 'v2'"), "{said}");
    let said = add(&moto, &first, false);
    assert!(
        said.contains("version v3"),
        "the cut-short v2 stays claimed: {said}"
    );
}
