//! `sluice test`: every built-in flow's unit tests pass, a flow-test file
//! exists for every flow in flows/, and a broken expectation prints a
//! readable diff and fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn sluice(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn every_flow_has_tests_and_they_pass() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/flows");
    let mut flows: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| {
            std::path::Path::new(p)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("yaml"))
                && !p.ends_with(".test.yaml")
        })
        .collect();
    flows.sort();
    assert!(!flows.is_empty());
    for f in &flows {
        let t = f.replace(".yaml", ".test.yaml");
        assert!(std::path::Path::new(&t).exists(), "{f} has no {t}");
    }
    let args: Vec<&str> = std::iter::once("test")
        .chain(flows.iter().map(String::as_str))
        .collect();
    let (ok, out) = sluice(&args);
    assert!(ok, "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    // The same flows are the built-ins, embedded in the binary.
    let (ok, listing) = sluice(&["flows"]);
    assert!(ok);
    for f in &flows {
        let name = std::path::Path::new(f)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            listing.contains(&name),
            "{name} is not built in:\n{listing}"
        );
        let (ok, yaml) = sluice(&["flows", "show", &name]);
        assert!(ok);
        assert_eq!(yaml, std::fs::read_to_string(f).unwrap());
    }
    let (ok, out) = sluice(&["test"]);
    assert!(ok, "{out}");
}

#[test]
fn a_broken_expectation_shows_a_readable_diff() {
    let dir = tempfile::tempdir().unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/flows/syslog-to-files.yaml");
    std::fs::copy(src, dir.path().join("f.yaml")).unwrap();
    std::fs::write(
        dir.path().join("f.test.yaml"),
        "flow: f.yaml
cases:
  - name: wrong colour of truth
    inject:
      at: listen
      flowfiles:
        - { content: \"disk full\", attributes: { syslog.severity: \"3\" } }
    expect:
      - at: severity.urgent
        count: 2
        flowfiles:
          - attributes: { message: \"disk empty\" }
",
    )
    .unwrap();
    let (ok, out) = sluice(&["test", dir.path().join("f.yaml").to_str().unwrap()]);
    assert!(!ok, "a failing case must fail the command:\n{out}");
    let path = dir.path().join("f.test.yaml");
    let expected = format!(
        "FAIL {}: wrong colour of truth
       at severity.urgent: expected 2 FlowFile(s), got 1
       at severity.urgent, FlowFile #1: attribute `message`
         - expected: \"disk empty\"
         + actual:   \"disk full\"
0 passed, 1 failed
",
        path.display()
    );
    assert_eq!(out, expected);
}
