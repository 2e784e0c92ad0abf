//! The real `sluice` binary as a child process, for end-to-end tests:
//! output goes to a log file the test can show on failure; SIGTERM stops it
//! with its summary; dropping it kills it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SluiceProc {
    child: Option<Child>,
    log: PathBuf,
}

impl SluiceProc {
    /// `sluice ARGS...` in `dir` with `env` set, output to `dir/<name>.log`.
    pub fn start(name: &str, dir: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("sluice starts");
        Self {
            child: Some(child),
            log,
        }
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits (at most 60 s) for it to exit; returns its whole
    /// output. Panics if it does not exit or exits with an error.
    pub async fn terminate(&mut self) -> String {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill runs")
                .success()
        );
        let deadline = Instant::now() + Duration::from_mins(1);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "sluice did not stop within 60 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let log = self.log();
        assert!(status.success(), "sluice exited with {status}:\n{log}");
        log
    }
}

impl Drop for SluiceProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `in` count of processor `id` in a `sluice run` summary.
pub fn summary_in(log: &str, id: &str) -> Option<u64> {
    let line = log
        .lines()
        .skip_while(|l| !l.starts_with("summary:"))
        .find(|l| l.split_whitespace().next() == Some(id))?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == "in")?;
    words.next()?.parse().ok()
}
