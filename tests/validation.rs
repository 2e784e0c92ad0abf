//! `sluice validate` on broken flows: every error is reported at once, each
//! with file:line:column and a hint, and the exit code says the flow is bad.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn validate(yaml: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("validate")
        .arg(&path)
        .env_remove("SLUICE_TEST_UNSET")
        .output()
        .unwrap();
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "flow.yaml");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// A valid two-processor loop used as the base of the broken variants.
const GOOD: &str = "\
name: loop
processors:
  a:
    type: UpdateAttribute
    properties:
      set: { seen: \"yes\" }
  b:
    type: UpdateAttribute
connections:
  - { from: a, relationship: success, to: b }
  - { from: b, relationship: success, to: a }
";

fn assert_error(yaml: &str, expected: &[&str]) {
    let (ok, _, err) = validate(yaml);
    assert!(!ok, "flow should be refused:\n{yaml}");
    for line in expected {
        assert!(
            err.lines().any(|l| l.trim_end() == *line),
            "missing line {line:?} in:\n{err}"
        );
    }
}

#[test]
fn a_good_flow_validates() {
    let (ok, out, err) = validate(GOOD);
    assert!(ok, "{err}");
    assert!(
        out.contains("ok: flow `loop`, 2 processors, 2 connections"),
        "{out}"
    );
}

#[test]
fn unknown_type_suggests_the_closest() {
    let yaml = GOOD.replace(
        "type: UpdateAttribute\n    properties",
        "type: UpdateAtribute\n    properties",
    );
    assert_error(
        &yaml,
        &[
            "flow.yaml:4:11: error: unknown processor type `UpdateAtribute`",
            "  hint: did you mean `UpdateAttribute`?",
        ],
    );
}

#[test]
fn unknown_property_and_bad_template_are_both_reported() {
    let yaml = GOOD.replace(
        "set: { seen: \"yes\" }",
        "sett: { seen: \"yes\" }\n      delete: x\n  c:\n    type: UpdateAttribute\n    properties:\n      set: { broken: \"{{#if x}}\" }",
    );
    let (ok, _, err) = validate(&yaml);
    assert!(!ok);
    assert!(
        err.contains("flow.yaml:6:7: error: unknown property `sett` for UpdateAttribute\n  hint: did you mean `set`?"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("flow.yaml:11:22: error: property `set.broken`: bad template")),
        "{err}"
    );
    // c's success is unconnected and c has no input: reported in the same run.
    assert!(
        err.contains(
            "relationship `success` of processor `c` is not connected and not auto-terminated"
        ),
        "{err}"
    );
    assert!(
        err.contains("errors found; the flow was not started"),
        "{err}"
    );
}

#[test]
fn unknown_target_and_relationship() {
    let yaml = GOOD.replace("to: b }", "to: bb }").replace(
        "{ from: b, relationship: success, to: a }",
        "{ from: b, relationship: sucess, to: a }",
    );
    assert_error(
        &yaml,
        &[
            "flow.yaml:10:43: error: unknown processor `bb`",
            "  hint: did you mean `b`?",
            "flow.yaml:11:30: error: processor `b` (UpdateAttribute) has no relationship `sucess`",
            "  hint: did you mean `success`?",
        ],
    );
    // The refused connections are not reported again as unconnected.
    let (_, _, err) = validate(&yaml);
    assert!(err.contains("3 errors found"), "{err}");
}

#[test]
fn unconnected_relationship_has_a_hint() {
    let yaml = GOOD.replace("  - { from: b, relationship: success, to: a }\n", "");
    assert_error(
        &yaml,
        &[
            "flow.yaml:7:3: error: relationship `success` of processor `b` is not connected and not auto-terminated",
            "  hint: connect it, or add `auto_terminate: [success]` to drop what goes there",
        ],
    );
}

#[test]
fn bad_connection_settings() {
    let yaml = GOOD.replace(
        "{ from: a, relationship: success, to: b }",
        "{ from: a, relationship: success, to: b, when_full: drop-newest, back_pressure: { max_bytes: 5 parsecs }, expiration: soon }",
    );
    let (ok, _, err) = validate(&yaml);
    assert!(!ok);
    assert!(
        err.contains(
            "error: unknown when_full policy `drop-newest`\n  hint: did you mean `drop-oldest`?"
        ),
        "{err}"
    );
    assert!(
        err.contains("error: max_bytes: `5 parsecs`: unknown unit `parsecs`"),
        "{err}"
    );
    assert!(
        err.contains("error: expiration: `soon` is not a duration"),
        "{err}"
    );
}

#[test]
fn missing_environment_variable() {
    let yaml = GOOD.replace("seen: \"yes\"", "seen: \"${env:SLUICE_TEST_UNSET}\"");
    assert_error(
        &yaml,
        &[
            "flow.yaml:6:20: error: environment variable `SLUICE_TEST_UNSET` is not set",
            "  hint: export SLUICE_TEST_UNSET=... before starting, or write ${env:SLUICE_TEST_UNSET:-default}",
        ],
    );
    // With a default it validates.
    let yaml = GOOD.replace("seen: \"yes\"", "seen: \"${env:SLUICE_TEST_UNSET:-x}\"");
    assert!(validate(&yaml).0);
}

#[test]
fn unknown_keys_and_yaml_syntax() {
    let yaml = GOOD.replace("name: loop", "name: loop\nconections: []");
    assert_error(
        &yaml,
        &[
            "flow.yaml:2:1: error: unknown key `conections` in the flow",
            "  hint: did you mean `connections`?",
        ],
    );
    let (ok, _, err) = validate("name: x\nprocessors: [unclosed\n");
    assert!(!ok);
    assert!(err.starts_with("flow.yaml:"), "{err}");
    assert!(err.contains("error: invalid YAML"), "{err}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["validate", "/nonexistent/flow.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/flow.yaml:0:0: error: cannot read flow file"),
        "{err}"
    );
    assert!(Path::new(env!("CARGO_BIN_EXE_sluice")).exists());
}
