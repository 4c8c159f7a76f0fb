//! An uploaded model is loaded first by a child process, `starcast models
//! check`, under a deadline and a cap on its address space: a file that
//! makes the reader crash, spin or swell takes the child down, and the
//! server answers with the reason instead.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Runs `program models check FOLDER` for each upload.
#[derive(Clone, Debug)]
pub struct ModelChecker {
    program: PathBuf,
    timeout: Duration,
    memory_bytes: u64,
}

/// Why an upload failed its check, in words for the admin.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailed {
    #[error("{0}")]
    Refused(String),
    #[error("loading it took longer than {0} s; the check was stopped")]
    TimedOut(u64),
    #[error(
        "loading it crashed the check ({0}); a file that does that is not a model Starcast can serve"
    )]
    Crashed(String),
    #[error("the model check could not start: {0}")]
    NotStarted(std::io::Error),
}

impl ModelChecker {
    /// Checks with `program` (the `starcast` binary), stopping it after
    /// `timeout` and capping its address space at `memory_bytes`.
    pub fn new(program: impl Into<PathBuf>, timeout: Duration, memory_bytes: u64) -> Self {
        ModelChecker {
            program: program.into(),
            timeout,
            memory_bytes,
        }
    }

    /// Ok when the child loaded the model in `folder`.
    pub async fn check(&self, folder: &Path) -> Result<(), CheckFailed> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(["models", "check"])
            .arg(folder)
            .env("RUST_LOG", "error")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let limit = self.memory_bytes;
        // SAFETY: between fork and exec the closure only calls setrlimit,
        // which is async-signal-safe, and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                let cap = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &cap) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(CheckFailed::NotStarted)?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            // Dropping the child's future kills it (kill_on_drop).
            Err(_) => return Err(CheckFailed::TimedOut(self.timeout.as_secs())),
            Ok(output) => output.map_err(CheckFailed::NotStarted)?,
        };
        if output.status.success() {
            return Ok(());
        }
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = output.status.signal() {
            return Err(CheckFailed::Crashed(format!("signal {signal}")));
        }
        let said = String::from_utf8_lossy(&output.stderr);
        let reason = said
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| line.strip_prefix("error: ").unwrap_or(line))
            .collect::<Vec<_>>()
            .join(": ");
        if reason.contains("memory allocation") || reason.contains("out of memory") {
            return Err(CheckFailed::Crashed(format!(
                "it needed more than {} MB",
                self.memory_bytes >> 20
            )));
        }
        Err(CheckFailed::Refused(if reason.is_empty() {
            format!("the model check failed ({})", output.status)
        } else {
            reason
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A stand-in for `starcast` that runs `body` as a shell script.
    fn checker(dir: &Path, body: &str, timeout: Duration) -> ModelChecker {
        let program = dir.join("check.sh");
        std::fs::write(&program, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        ModelChecker::new(program, timeout, 1 << 32)
    }

    #[tokio::test]
    async fn a_check_is_passed_refused_stopped_or_crashed_as_the_child_ends() {
        let dir = tempfile::tempdir().unwrap();
        let second = Duration::from_secs(1);
        let passes = checker(
            dir.path(),
            r#"[ "$1 $2" = "models check" ] && [ -d "$3" ]"#,
            second,
        );
        passes.check(dir.path()).await.unwrap();

        let refuses = checker(
            dir.path(),
            "echo 'error: no weights in the folder' >&2; exit 1",
            second,
        );
        let error = refuses.check(dir.path()).await.unwrap_err();
        assert_eq!(error.to_string(), "no weights in the folder");

        let spins = checker(dir.path(), "sleep 30", Duration::from_millis(300));
        let started = std::time::Instant::now();
        assert!(matches!(
            spins.check(dir.path()).await,
            Err(CheckFailed::TimedOut(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(10));

        let crashes = checker(dir.path(), "kill -SEGV $$", second);
        let error = crashes.check(dir.path()).await.unwrap_err();
        assert!(error.to_string().contains("signal 11"), "{error}");
    }
}
