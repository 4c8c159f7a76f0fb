//! A real PostgreSQL server for the records tests: Debian's `postgresql`
//! package (scripts/setup.sh --test installs it), a fresh cluster in a
//! temporary folder, listening on loopback only. PostgreSQL refuses to run
//! as root, so as root the cluster belongs to the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster, stopped and removed when dropped.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
    /// `postgres://starcast@127.0.0.1:PORT/postgres`
    pub url: String,
}

fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .max();
    let version = newest.unwrap_or_else(|| {
        panic!("PostgreSQL is not installed: run scripts/setup.sh --test (it installs Debian's postgresql)")
    });
    root.join(version.to_string()).join("bin")
}

fn as_owner(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("cluster");
        std::fs::create_dir(&data).unwrap();
        if unsafe { libc::geteuid() } == 0 {
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(owned.success());
        }
        let initialised = as_owner(&bin.join("initdb"))
            .args([
                "--auth=trust",
                "--username=starcast",
                "--encoding=UTF8",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(initialised.success(), "initdb failed");
        let port = super::free_port();
        let options = format!("-p {port} -h 127.0.0.1 -k {}", data.display());
        let started = as_owner(&bin.join("pg_ctl"))
            .args(["-D"])
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(data.join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(started.success(), "pg_ctl start failed");
        let postgres = Postgres {
            bin,
            data,
            _dir: dir,
            url: format!("postgres://starcast@127.0.0.1:{port}/postgres"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        postgres
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_owner(&self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
