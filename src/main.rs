//! `sluice`: a NiFi-style dataflow router. This file is the command line only;
//! each command lives in its own module.

mod builtin;
mod cmd_flows;
mod cmd_graph;
mod cmd_processors;
mod cmd_repo;
mod cmd_run;
mod cmd_run_repo;
mod flows;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// A dataflow router: back-pressured processors wired from YAML flow files.
#[derive(Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Run one or more flow files (their processors form one graph).
    Run(cmd_run::RunArgs),
    /// Validate flow files and report every error with file:line:column.
    Validate {
        /// Flow files.
        #[arg(required = true)]
        flows: Vec<PathBuf>,
    },
    /// Print a flow's graph as Graphviz dot or Mermaid.
    Graph {
        /// Flow file.
        flow: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// List processor types, or show one type's properties and relationships.
    Processors {
        /// A type name, e.g. RouteOnAttribute.
        name: Option<String>,
    },
    /// List the built-in flows, or print one (`sluice flows show NAME`).
    Flows {
        #[command(subcommand)]
        show: Option<FlowsCmd>,
    },
    /// Inspect a FlowFile repository without running its flow.
    Repo {
        #[command(subcommand)]
        cmd: RepoCmd,
    },
    /// Run flow unit tests (`NAME.test.yaml` beside each flow); with no file,
    /// the built-in flows' tests.
    Test {
        /// Flow files or test files.
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RepoCmd {
    /// Verify every segment and live content claim; report damage with
    /// offsets. Exit code 0: clean, 1: damaged.
    Check {
        /// Repository directory.
        dir: PathBuf,
    },
    /// List the live FlowFiles per connection with their attributes.
    Dump {
        /// Repository directory.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum FlowsCmd {
    /// Print a built-in flow's YAML, to copy and edit.
    Show {
        /// Built-in flow name.
        name: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
}

/// mimalloc: the flow's many small, short-lived allocations (attribute
/// strings, JSON text), often freed on another worker thread than the one
/// that made them, cost about a third less CPU than with glibc's malloc
/// (bench/syslog/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let registry = sluice_processors::registry();
    let result = match cli.command {
        Command::Run(args) => cmd_run::run(args, &registry),
        Command::Validate { flows } => flows::validate(&flows, &registry),
        Command::Graph { flow, format } => cmd_graph::graph(&flow, format, &registry),
        Command::Processors { name } => cmd_processors::list(name.as_deref(), &registry),
        Command::Flows { show } => cmd_flows::flows(match &show {
            Some(FlowsCmd::Show { name }) => Some(name.as_str()),
            None => None,
        }),
        Command::Test { files } => cmd_flows::test(&files, &registry),
        Command::Repo {
            cmd: RepoCmd::Check { dir },
        } => cmd_repo::check(&dir).map(|clean| {
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }),
        Command::Repo {
            cmd: RepoCmd::Dump { dir },
        } => cmd_repo::dump(&dir, &mut std::io::stdout().lock()).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the
/// message before it already ends with (library errors often print their
/// source too).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[test]
    fn a_cause_the_message_already_shows_is_not_repeated() {
        #[derive(Debug)]
        struct Repo(std::io::Error);
        impl std::fmt::Display for Repo {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "opening repository r: {}", self.0)
            }
        }
        impl std::error::Error for Repo {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::other("in use by another process");
        let e = anyhow::Error::new(Repo(io)).context("opening the repository r");
        assert_eq!(
            error_chain(&e),
            "opening the repository r: opening repository r: in use by another process"
        );
        let plain = anyhow::anyhow!("bad flow").context("loading f.yaml");
        assert_eq!(error_chain(&plain), "loading f.yaml: bad flow");
    }
}
