//! `sluice run --watch` on the real binary: the flow file is edited while
//! data flows. A route's predicate and the routes themselves change; every
//! FlowFile arrives exactly once, those after the change take the new route.
//! An invalid edit is refused with its error and the flow keeps running.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/sluice_proc.rs"]
#[allow(dead_code)] // shared with other tests
mod sluice_proc;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sluice_proc::SluiceProc;
use sluice_testkit::{finished_files, wait_until};

const TOTAL: usize = 3000;
const DEADLINE: Duration = Duration::from_secs(90);

/// v1 splits on `n % 2` (even, odd); v2 on `n % 3` (thirds, other). The
/// directory is the route's name, so each file says which version routed it.
fn flow(out: &Path, version: u8) -> String {
    let (routes, rels) = if version == 1 {
        (
            r#"{ even: 'int(attr["n"]) % 2 == 0', odd: 'int(attr["n"]) % 2 == 1' }"#,
            "even, odd",
        )
    } else {
        (
            r#"{ thirds: 'int(attr["n"]) % 3 == 0', other: 'int(attr["n"]) % 3 != 0' }"#,
            "thirds, other",
        )
    };
    format!(
        r#"name: watched
processors:
  gen:
    type: GenerateFlowFile
    properties: {{ count: {TOTAL}, rate: 600, content: "{{{{seq}}}}", attributes: {{ n: "{{{{seq}}}}" }} }}
  route:
    type: RouteOnAttribute
    properties: {{ routes: {routes} }}
  save:
    type: PutFile
    properties: {{ directory: "{out}/{{{{route.name}}}}", filename: "{{{{n}}}}", conflict: unique }}
    auto_terminate: [success, failure]
connections:
  - {{ from: gen, relationship: success, to: route }}
  - {{ from: route, relationships: [{rels}, unmatched], to: save, back_pressure: {{ max_count: 100 }} }}
"#,
        out = out.display()
    )
}

/// Writes the flow file by rename, as editors and `git checkout` do.
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// File name (the sequence number, maybe with a `-N` suffix for a
/// duplicate) -> directories it is in.
fn written(out: &Path) -> BTreeMap<String, Vec<String>> {
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in std::fs::read_dir(out).into_iter().flatten().flatten() {
        let dir = d.file_name().to_string_lossy().into_owned();
        for f in finished_files(&d.path()) {
            let name = f
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            all.entry(name).or_default().push(dir.clone());
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_changed_while_flowing_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let path = dir.path().join("flow.yaml");
    write(&path, &flow(&out, 1));
    let repo = dir.path().join("repo").display().to_string();
    let p = path.display().to_string();
    let mut sluice = SluiceProc::start(
        "sluice",
        dir.path(),
        &["run", "--watch", "--no-ui", "--repository", &repo, &p],
        &[],
    );
    wait_until(DEADLINE, || written(&out).len() >= 300)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sluice.log()));

    // An invalid edit: refused, the flow keeps going.
    write(
        &path,
        &flow(&out, 1).replace("RouteOnAttribute", "RouteOnAttribut"),
    );
    wait_until(DEADLINE, || sluice.log().contains("flow change refused"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sluice.log()));
    let log = sluice.log();
    assert!(
        log.contains("unknown processor type `RouteOnAttribut`"),
        "{log}"
    );
    let before = written(&out).len();
    wait_until(DEADLINE, || written(&out).len() > before + 100)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the flow stopped after a refused edit: {e}\n{}",
                sluice.log()
            )
        });

    // The route changes.
    write(&path, &flow(&out, 2));
    wait_until(DEADLINE, || sluice.log().contains("flow reloaded"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sluice.log()));
    wait_until(DEADLINE, || written(&out).len() >= TOTAL)
        .await
        .unwrap_or_else(|e| panic!("{e}: {} files\n{}", written(&out).len(), sluice.log()));
    let log = sluice.terminate().await;

    let all = written(&out);
    let dupes: Vec<_> = all.iter().filter(|(_, dirs)| dirs.len() > 1).collect();
    assert!(dupes.is_empty(), "written twice: {dupes:?}");
    let names: Vec<usize> = all
        .keys()
        .map(|k| k.parse().expect("no -N copies"))
        .collect();
    assert_eq!(names.len(), TOTAL, "{log}");
    // `seq` counts from 0.
    assert_eq!(
        (names.iter().min(), names.iter().max()),
        (Some(&0), Some(&(TOTAL - 1)))
    );
    let mut per_version = [0usize; 2];
    for (name, dirs) in &all {
        let n: usize = name.parse().unwrap();
        let want = match dirs[0].as_str() {
            "even" => n.is_multiple_of(2),
            "odd" => n % 2 == 1,
            "thirds" => n.is_multiple_of(3),
            "other" => !n.is_multiple_of(3),
            unexpected => panic!("{n} is in {unexpected}"),
        };
        assert!(want, "{n} is in {}", dirs[0]);
        per_version[usize::from(matches!(dirs[0].as_str(), "thirds" | "other"))] += 1;
    }
    assert!(
        per_version[0] >= 400 && per_version[1] > 0,
        "both versions routed some: {per_version:?}"
    );
}
