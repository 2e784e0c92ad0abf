//! The flows shipped inside the binary (`flows/*.yaml`), with their tests.

/// A built-in flow.
pub struct Builtin {
    /// Name (`sluice run --builtin NAME`).
    pub name: &'static str,
    /// The YAML.
    pub yaml: &'static str,
    /// Its flow unit tests.
    pub tests: &'static str,
}

macro_rules! builtin {
    ($name:literal) => {
        Builtin {
            name: $name,
            yaml: include_str!(concat!("../flows/", $name, ".yaml")),
            tests: include_str!(concat!("../flows/", $name, ".test.yaml")),
        }
    };
}

/// Every built-in flow. A test checks this matches `flows/`.
pub const BUILTINS: &[Builtin] = &[
    builtin!("syslog-to-files"),
    builtin!("syslog-to-chat"),
    builtin!("edge-to-kafka"),
    builtin!("kafka-worker"),
    builtin!("http-to-ftp-gateway"),
    builtin!("syslog-archive-s3"),
    builtin!("alert-webhook-router"),
];

/// The built-in flow of this name.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The first line of the flow's `description:` (or its header comment).
pub fn summary(b: &Builtin) -> String {
    b.yaml
        .lines()
        .find_map(|l| l.strip_prefix("description:"))
        .map(|d| d.trim().trim_matches('"').to_string())
        .or_else(|| {
            b.yaml
                .lines()
                .find_map(|l| l.strip_prefix("# ").map(str::to_string))
        })
        .unwrap_or_default()
}
