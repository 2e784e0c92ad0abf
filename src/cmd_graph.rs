//! `sluice graph`: the flow as Graphviz dot or Mermaid text.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use sluice_runtime::{FlowSpec, Registry};

use crate::GraphFormat;

/// Prints the graph of `flow`.
pub fn graph(flow: &Path, format: GraphFormat, registry: &Registry) -> Result<ExitCode> {
    let spec = crate::flows::load_all(&[flow.to_path_buf()], registry)?;
    print!(
        "{}",
        match format {
            GraphFormat::Dot => dot(&spec),
            GraphFormat::Mermaid => mermaid(&spec),
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz dot, left to right.
pub fn dot(spec: &FlowSpec) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", esc(&spec.name));
    out.push_str("  rankdir=LR;\n  node [shape=box, style=rounded];\n");
    for p in &spec.processors {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\"];",
            esc(&p.id),
            esc(&p.id),
            esc(p.kind.name())
        );
    }
    for c in &spec.connections {
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [label=\"{}\"];",
            esc(&c.from),
            esc(&c.to),
            esc(&c.relationships.join(", "))
        );
    }
    out.push_str("}\n");
    out
}

fn mermaid_id(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// Mermaid flowchart, left to right.
pub fn mermaid(spec: &FlowSpec) -> String {
    let mut out = String::from("flowchart LR\n");
    for p in &spec.processors {
        let _ = writeln!(
            out,
            "  {}[\"{}<br/><i>{}</i>\"]",
            mermaid_id(&p.id),
            mermaid_text(&p.id),
            p.kind.name()
        );
    }
    for c in &spec.connections {
        let _ = writeln!(
            out,
            "  {} -->|\"{}\"| {}",
            mermaid_id(&c.from),
            mermaid_text(&c.relationships.join(", ")),
            mermaid_id(&c.to)
        );
    }
    out
}
