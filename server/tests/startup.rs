//! `starcast serve` as a Space starts it: a registry version that can't
//! load leaves the server up with the "no model" notice, an admin token
//! too short to protect a public server stops it at once with the reason,
//! and the CPU kernel path in use is named in the log and on `/healthz`.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{THREE_CLASS_CONFIG, free_port, register_version};
use starcast_pipeline::registry::{Registry, Task};

fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// `/healthz`'s answer once the models are loaded.
fn wait_for_health(port: u16, server: &mut Child) -> String {
    let started = Instant::now();
    loop {
        if let Some(response) = get(port, "/healthz")
            && !response.starts_with("HTTP/1.1 503")
        {
            return response;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not come up"
        );
        assert!(server.try_wait().unwrap().is_none(), "the server exited");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the server: what it logged.
fn stop(mut server: Child) -> String {
    server.kill().unwrap();
    let mut log = String::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    log
}

#[test]
fn a_served_version_that_cannot_load_leaves_the_server_up_without_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(dir.path().join("registry"));
    let files = [
        ("config.json", THREE_CLASS_CONFIG.as_bytes().to_vec()),
        ("model.pth", b"PK\x03\x04 not really a checkpoint".to_vec()),
    ];
    let version = register_version(&registry, &files, "hash");
    registry.promote(Task::Actors, &version.id, "test").unwrap();
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--registry")
        .arg(registry.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let health = wait_for_health(port, &mut server);
    let models = get(port, "/api/models").unwrap();
    let log = stop(server);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#""models":0"#), "{health}");
    assert!(models.ends_with("[]"), "{models}");
    assert!(log.contains("does not load"), "{log}");
}

#[test]
fn a_short_admin_token_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            &free_port().to_string(),
        ])
        .arg("--data")
        .arg(dir.path())
        .args(["--admin-token", "hunter2"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("at least 32"), "{said}");
}

#[test]
fn the_kernel_path_forced_at_start_is_named_in_the_log_and_on_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--data")
        .arg(dir.path())
        .env("STARCAST_KERNELS", "portable")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let health = wait_for_health(port, &mut server);
    let log = stop(server);
    assert!(health.contains(r#""kernels":"portable""#), "{health}");
    assert!(log.contains("kernels=portable"), "{log}");
}
