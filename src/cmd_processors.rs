//! `sluice processors`: the registry, as users read it.

use std::process::ExitCode;

use anyhow::{Result, bail};
use sluice_runtime::{InputRequirement, Properties, Registry};

/// Lists every type, or describes one.
pub fn list(name: Option<&str>, registry: &Registry) -> Result<ExitCode> {
    let Some(name) = name else {
        for t in registry.types() {
            let first = t.description().split(". ").next().unwrap_or_default();
            println!("{:<20} {}", t.name(), first.trim_end_matches('.'));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let Some(t) = registry.get(name) else {
        match registry.suggest(name) {
            Some(s) => bail!("unknown processor type `{name}`; did you mean `{s}`?"),
            None => bail!("unknown processor type `{name}`; `sluice processors` lists them"),
        }
    };
    println!("{}\n\n{}\n", t.name(), t.description());
    println!(
        "Input: {}",
        match t.input() {
            InputRequirement::Forbidden => "none (a source)",
            InputRequirement::Required => "required",
            InputRequirement::Allowed => "optional",
        }
    );
    println!("\nProperties:");
    for d in t.properties() {
        let mut flags = Vec::new();
        if d.required {
            flags.push("required".to_string());
        }
        if let Some(def) = d.default {
            flags.push(format!("default {def}"));
        }
        if d.sensitive {
            flags.push("secret".to_string());
        }
        println!(
            "  {} ({}){}",
            d.name,
            d.kind.describe(),
            if flags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", flags.join(", "))
            }
        );
        println!("      {}", d.description);
    }
    println!("\nRelationships:");
    let props = Properties::new(std::collections::BTreeMap::default(), t.properties());
    for r in t.relationships(&props) {
        println!("  {:<12} {}", r.name, r.description);
    }
    println!("\nExample properties:\n");
    for l in t.example().lines() {
        println!("  {l}");
    }
    Ok(ExitCode::SUCCESS)
}
