//! Loading flow files: validation of each file, then one combined graph.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use sluice_runtime::{FlowSpec, Registry, load_flow};

/// Loads and validates `paths` and the built-in flows named in `builtins`;
/// prints every error of every file. Several files form one graph: processor
/// and connection ids must be unique across them.
pub fn load_all(paths: &[PathBuf], registry: &Registry) -> Result<FlowSpec> {
    load_with_builtins(paths, &[], registry)
}

/// As [`load_all`], with built-in flows too.
pub fn load_with_builtins(
    paths: &[PathBuf],
    builtins: &[String],
    registry: &Registry,
) -> Result<FlowSpec> {
    let mut specs = Vec::new();
    let mut failed = 0usize;
    for name in builtins {
        let Some(b) = crate::builtin::find(name) else {
            let names: Vec<&str> = crate::builtin::BUILTINS.iter().map(|b| b.name).collect();
            match sluice_runtime::suggest(name, names.iter().copied()) {
                Some(s) => bail!("no built-in flow `{name}`; did you mean `{s}`?"),
                None => bail!("no built-in flow `{name}`; `sluice flows` lists them"),
            }
        };
        let path = PathBuf::from(format!("{}.yaml", b.name));
        match sluice_runtime::parse_flow(b.yaml, &path, registry, &|k| std::env::var(k).ok()) {
            Ok(s) => specs.push(s),
            Err(e) => {
                failed += e.0.len();
                eprintln!("{e}");
            }
        }
    }
    for p in paths {
        match load_flow(p, registry) {
            Ok(s) => specs.push(s),
            Err(e) => {
                failed += e.0.len();
                eprintln!("{e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} error(s) in flow files; nothing was started");
    }
    combine(specs)
}

fn combine(mut specs: Vec<FlowSpec>) -> Result<FlowSpec> {
    let Some(mut first) = (!specs.is_empty()).then(|| specs.remove(0)) else {
        bail!("no flow file given");
    };
    for s in specs {
        for p in s.processors {
            if let Some(prev) = first.processor(&p.id) {
                bail!(
                    "{}:{}: processor `{}` is also declared in {}:{}; ids must be unique across flow files",
                    s.path.display(),
                    p.pos,
                    p.id,
                    first.path.display(),
                    prev.pos
                );
            }
            first.processors.push(p);
        }
        for c in s.connections {
            if first.connections.iter().any(|x| x.id == c.id) {
                bail!(
                    "{}:{}: connection `{}` is declared in two flow files",
                    s.path.display(),
                    c.pos,
                    c.id
                );
            }
            first.connections.push(c);
        }
        first.name = format!("{}+{}", first.name, s.name);
        first.source.push_str("\n---\n");
        first.source.push_str(&s.source);
    }
    Ok(first)
}

/// `sluice validate`.
#[allow(clippy::unnecessary_wraps)] // every command returns Result
pub fn validate(paths: &[PathBuf], registry: &Registry) -> Result<ExitCode> {
    let mut ok = true;
    for p in paths {
        match load_flow(p, registry) {
            Ok(s) => println!(
                "{}: ok: flow `{}`, {} processors, {} connections",
                p.display(),
                s.name,
                s.processors.len(),
                s.connections.len()
            ),
            Err(e) => {
                ok = false;
                eprintln!("{e}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
