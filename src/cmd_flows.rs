//! `sluice flows` and `sluice test`: the built-in flows and flow unit tests.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use sluice_runtime::Registry;
use sluice_runtime::flowtest::run_file;

use crate::builtin::{BUILTINS, find, summary};

/// `sluice flows [show NAME]`.
pub fn flows(show: Option<&str>) -> Result<ExitCode> {
    match show {
        None => {
            for b in BUILTINS {
                println!("{:<24} {}", b.name, summary(b));
            }
            println!(
                "\nRun one with `sluice run --builtin NAME`; print it with `sluice flows show NAME`."
            );
        }
        Some(name) => match find(name) {
            Some(b) => print!("{}", b.yaml),
            None => bail!("no built-in flow `{name}`; `sluice flows` lists them"),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice test FILE...`: each FILE is a flow (its `NAME.test.yaml` beside it
/// is run) or a test file. With no FILE, the built-in flows' tests run.
pub fn test(files: &[PathBuf], registry: &Registry) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut owned_dir = None;
    let files: Vec<PathBuf> = if files.is_empty() {
        // The built-in flows and their tests, written out to run as files.
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        for b in BUILTINS {
            std::fs::write(dir.path().join(format!("{}.yaml", b.name)), b.yaml)?;
            std::fs::write(dir.path().join(format!("{}.test.yaml", b.name)), b.tests)?;
        }
        let list = BUILTINS
            .iter()
            .map(|b| dir.path().join(format!("{}.yaml", b.name)))
            .collect();
        owned_dir = Some(dir);
        list
    } else {
        files.to_vec()
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    for f in &files {
        let result = rt
            .block_on(run_file(f, registry))
            .with_context(|| format!("running the tests of {}", f.display()))?;
        print!("{}", result.report());
        for c in &result.cases {
            if c.differences.is_empty() {
                passed += 1;
            } else {
                failed += 1;
            }
        }
    }
    drop(owned_dir);
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
