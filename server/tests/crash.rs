//! Crash consistency, tested with `kill -9`: a server killed while it
//! stores flags keeps every flag it acknowledged and lists no half-written
//! one; `starcast models promote` killed at any moment leaves the registry
//! serving a whole version with a readable history; a server killed in the
//! middle of a pipeline run leaves a whole record, closed as failed when it
//! restarts, and the orphaned step keeps the restarted server from starting
//! a run beside it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    ADMIN_TOKEN, THREE_CLASS_CONFIG, flag_store, free_port, png, post_flag, register_version,
};
use starcast_api::{PipelineRun, RunStatus};
use starcast_pipeline::records::{self, Records};
use starcast_pipeline::registry::{Registry, Task};
use starcast_pipeline::runs::RunRecords;

/// `starcast serve` on `port` over `data`, trusting loopback as the proxy
/// so each test client can have its own address (the flag rate limit is
/// per client).
fn serve(port: u16, data: &std::path::Path) -> Child {
    serve_with(port, data, &[])
}

/// [`serve`] with more arguments.
fn serve_with(port: u16, data: &std::path::Path, more: &[&str]) -> Child {
    let mut server = Command::new(env!("CARGO_BIN_EXE_starcast"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--trusted-proxy", "127.0.0.1"])
        .arg("--data")
        .arg(data)
        .args(more)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not come up"
        );
        assert!(server.try_wait().unwrap().is_none(), "the server exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

#[test]
fn a_server_killed_while_storing_flags_keeps_every_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = serve(port, &data);
    let photo = png(256, 256, [200, 30, 90]);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let gone = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4u32)
        .map(|worker| {
            let (acknowledged, gone, photo) = (acknowledged.clone(), gone.clone(), photo.clone());
            std::thread::spawn(move || {
                let mut client = worker;
                while !gone.load(Ordering::Relaxed) {
                    if let Some(id) = post_flag(port, client, &photo) {
                        acknowledged.lock().unwrap().push(id);
                    }
                    client += 4;
                }
            })
        })
        .collect();
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "flags were not stored"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    gone.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(flag_store(&data));
    let listed = runtime.block_on(store.list()).unwrap();
    let acknowledged = acknowledged.lock().unwrap();
    for id in acknowledged.iter() {
        let record = listed.iter().find(|r| &r.id == id);
        let record = record.unwrap_or_else(|| panic!("acknowledged flag {id} is lost"));
        let stored = runtime.block_on(store.photo(record)).unwrap();
        assert_eq!(stored.as_deref(), Some(&photo[..]), "flag {id}'s photo");
    }
    // Every listed flag is whole, acknowledged or not (the kill may have
    // come between the row's insert and the answer).
    for record in &listed {
        let stored = runtime.block_on(store.photo(record)).unwrap();
        assert_eq!(
            stored.as_deref(),
            Some(&photo[..]),
            "listed flag {}'s photo",
            record.id
        );
    }

    // The restarted server takes new flags beside them.
    let mut server = serve(port, &data);
    let id = post_flag(port, 1 << 20, &photo).expect("the restarted server stores a flag");
    server.kill().unwrap();
    server.wait().unwrap();
    let listed = runtime.block_on(store.list()).unwrap();
    assert!(listed.iter().any(|r| r.id == id));
}

#[test]
fn a_promotion_killed_at_any_moment_leaves_a_whole_version_served() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(dir.path().join("registry"));
    let files = |seed: u8| {
        vec![
            ("config.json", THREE_CLASS_CONFIG.as_bytes().to_vec()),
            ("model.safetensors", vec![seed; 4096]),
        ]
    };
    let versions = [
        register_version(&registry, &files(1), "one").id,
        register_version(&registry, &files(2), "two").id,
    ];
    registry
        .promote(Task::Actors, &versions[0], "start")
        .unwrap();
    let root = registry.to_string();
    for round in 0..24u64 {
        let version = &versions[(round % 2) as usize];
        let mut promote = Command::new(env!("CARGO_BIN_EXE_starcast"))
            .args([
                "models",
                "promote",
                version,
                "--registry",
                &root,
                "--task",
                "actors",
            ])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // From before the command parses its arguments to after it is done.
        std::thread::sleep(Duration::from_micros(round * 700));
        let _ = promote.kill();
        promote.wait().unwrap();
        let served = registry
            .serving(Task::Actors)
            .unwrap()
            .expect("a version is served");
        assert!(
            versions.contains(&served.id),
            "round {round}: serving {}",
            served.id
        );
        let events = registry.events(Task::Actors).unwrap();
        assert!(!events.is_empty(), "round {round}: the history is gone");
    }
    // After all that, a promotion still goes through.
    let output = common::starcast(&[
        "models",
        "promote",
        &versions[1],
        "--registry",
        &root,
        "--task",
        "actors",
    ]);
    common::stdout(&output);
    assert_eq!(
        registry.serving(Task::Actors).unwrap().unwrap().id,
        versions[1]
    );
}

/// A horoscope site that holds every request open until `release` is set
/// (or a minute passes), counting the requests it got.
fn hanging_site(release: Arc<AtomicBool>, requests: Arc<AtomicUsize>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (release, requests) = (release.clone(), requests.clone());
            std::thread::spawn(move || {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head);
                requests.fetch_add(1, Ordering::SeqCst);
                let started = Instant::now();
                while !release.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60)
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let page =
                    "<html><section class=sign><h2>Овен</h2><p>Звёзды молчат.</p></section></html>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
            });
        }
    });
    port
}

/// `(status, body)` of a request with the admin's token.
fn as_admin(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

#[test]
fn a_server_killed_mid_run_leaves_a_whole_record_and_no_overlapping_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let release = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let site = hanging_site(release.clone(), requests.clone());
    let sources = dir.path().join("sources.toml");
    std::fs::write(
        &sources,
        format!(
            "[[source]]\nname = \"hanging\"\nurls = [\"http://127.0.0.1:{site}/today/\"]\nlanguage = \"ru\"\nitem = \"section.sign\"\nsign = \"h2\"\ntext = \"p\"\n"
        ),
    )
    .unwrap();
    let sources = sources.to_str().unwrap().to_string();
    let args = ["--admin-token", ADMIN_TOKEN, "--sources", &sources];
    let port = free_port();
    let mut server = serve_with(port, &data, &args);
    let (status, body) = as_admin(port, "POST", "/api/admin/pipeline/runs");
    assert_eq!(status, 202, "{body}");
    let started = Instant::now();
    while requests.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the collect step never asked the site"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill().unwrap();
    server.wait().unwrap();

    // The record in the data folder's records is whole, and says the run
    // was under way.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let records = runtime.block_on(async {
        let records = Records::open(&records::default_url(&data)).await.unwrap();
        RunRecords::new(records, "reader").latest(10).await.unwrap()
    });
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].status, RunStatus::Running);
    assert_eq!(records[0].steps[0].status, RunStatus::Running);

    // Restarted, the server closes the run; the orphaned collect step still
    // holds the data folder, so no second run starts beside it.
    let server = serve_with(port, &data, &args);
    let (status, body) = as_admin(port, "GET", "/api/pipeline/runs");
    assert_eq!(status, 200, "{body}");
    let runs: Vec<PipelineRun> = serde_json::from_str(&body).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, RunStatus::Failed);
    assert_eq!(runs[0].steps[0].status, RunStatus::Failed);
    assert!(
        runs[0].steps[0].log.contains("the server stopped"),
        "{runs:?}"
    );
    assert!(
        runs[0].steps[1..]
            .iter()
            .all(|s| s.status == RunStatus::Skipped),
        "{runs:?}"
    );
    let (status, body) = as_admin(port, "POST", "/api/admin/pipeline/runs");
    assert_eq!(status, 409, "a run beside the orphaned step: {body}");

    // Once the orphan finishes, runs start again.
    release.store(true, Ordering::SeqCst);
    let started = Instant::now();
    loop {
        let (status, body) = as_admin(port, "POST", "/api/admin/pipeline/runs");
        if status == 202 {
            break;
        }
        assert_eq!(status, 409, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the orphaned step never let go"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(server);
}

/// Stops a server as its host would (SIGTERM), so it stops its steps.
fn stop(mut server: Child) {
    // SAFETY: kill only sends a signal to the child we started.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    let started = Instant::now();
    while server.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            server.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    server.wait().unwrap();
}
