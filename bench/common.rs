//! What every benchmark binary shares (included with `#[path]`).

/// True under `cargo bench`, which passes `--bench`. `cargo test
/// --all-targets` runs the binary without it, and a benchmark is no test:
/// then this says how to run it (`name`: the bench target) and is false.
pub fn invoked_as_bench(name: &str) -> bool {
    if std::env::args().any(|a| a == "--bench") {
        return true;
    }
    println!("benchmark: run it with `cargo bench --bench {name}`");
    false
}

/// The environment variable `name` parsed, or `default` when unset or not a number.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
