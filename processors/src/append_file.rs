//! AppendFile: appends each FlowFile's content, then a demarcator (a newline
//! by default), to the file a template names: JSON lines, log files.
//!
//! The path is a template over the attributes (`/var/log/sluice/{{route.name}}.json`);
//! a relative path is relative to the flow file's directory. A path that
//! renders empty, ends in `/`, has a `..` component or contains NUL goes to
//! `failure` with `appendfile.error`: templates take values from outside and
//! must not steer writes elsewhere.
//!
//! The FlowFiles of one trigger are written together: per file, their records
//! are joined in queue order and appended with one `write` (the file is
//! opened with `O_APPEND` for each trigger, so a file moved away by log
//! rotation is recreated on the next trigger). With `fsync: batch` (the
//! default) the file's data is then fsynced (and the directory when the file
//! was created) before any of those FlowFiles goes to `success`, so nothing
//! acknowledged is lost if the machine crashes. `fsync: never` leaves it to
//! the operating system: a crash of Sluice loses nothing written, a crash of
//! the machine can lose the last seconds.
//!
//! When a write or fsync fails, the file is cut back to its length before
//! that write (unless something else appended meanwhile), so a retried batch
//! leaves neither half nor doubled records. Trouble that retrying may cure
//! (disk full, quota, busy, timeout) puts that file's FlowFiles and the rest
//! of the batch back at the front of the queue, penalised, counts
//! `appendfile.retries` and yields; anything else (permission denied, a
//! directory in the way) sends that file's FlowFiles to `failure` with
//! `appendfile.error`. Attributes and content are left as they were.
//!
//! ```yaml
//! save:
//!   type: AppendFile
//!   properties:
//!     path: "/var/log/sluice/{{route.name}}.json"
//!     fsync: batch
//!     permissions: "0640"
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parking_lot::Mutex;
use sluice_runtime::{
    BuildContext, BuildError, Escape, FlowFile, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    PropertyError, RelationshipDef, Template, async_trait,
};

use crate::put_file::{
    WriteError, classify, parse_mode, requeue_transient, resolve_dir, sync_dir,
    validate_permissions,
};

/// FlowFiles whose record was appended (and fsynced with `fsync: batch`).
pub const SUCCESS: &str = "success";
/// FlowFiles that could not be appended (`appendfile.error` says why).
pub const FAILURE: &str = "failure";

const FSYNC: &[&str] = &["batch", "never"];

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        "path",
        PropKind::Template,
        "File path template; relative paths are relative to the flow file.",
    ),
    PropertyDescriptor::optional(
        "demarcator",
        PropKind::Text,
        Some("\n"),
        "Written after each FlowFile's content (a newline by default; empty for none).",
    ),
    PropertyDescriptor::optional(
        "fsync",
        PropKind::Choice(FSYNC),
        Some("batch"),
        "batch: fsync each file written before its FlowFiles go to success; never: leave it to the OS.",
    ),
    PropertyDescriptor::optional(
        "create_dirs",
        PropKind::Bool,
        Some("true"),
        "Create missing directories.",
    ),
    PropertyDescriptor::optional(
        "permissions",
        PropKind::NonEmpty,
        None,
        "Octal mode such as 0640 for files this processor creates (default: 0666 minus the umask).",
    ),
];

/// The registry entry.
pub struct AppendFileType;

impl ProcessorType for AppendFileType {
    fn is_external(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "AppendFile"
    }
    fn description(&self) -> &'static str {
        "Appends each FlowFile's content and a demarcator (newline) to a file named by a template, one write per file per batch, fsynced before success unless `fsync: never` (JSON lines, log files)."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(SUCCESS, "FlowFiles whose content was appended."),
            RelationshipDef::new(
                FAILURE,
                "FlowFiles that could not be appended; `appendfile.error` says why.",
            ),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        validate_permissions(props)
    }
    fn build(
        &self,
        props: &Properties,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let path = Template::compile(props.str("path")?, Escape::None)
            .map_err(|e| BuildError::Other(format!("path: {e}")))?;
        let permissions = props
            .str_opt("permissions")?
            .map(parse_mode)
            .transpose()
            .map_err(BuildError::Other)?;
        Ok(Box::new(AppendFile {
            path,
            settings: Settings {
                demarcator: Bytes::copy_from_slice(props.str("demarcator")?.as_bytes()),
                fsync: props.str("fsync")? == "batch",
                create_dirs: props.bool("create_dirs")?,
                permissions,
            },
            base_dir: ctx.base_dir.clone(),
            buffers: Mutex::new(Vec::new()),
        }))
    }
    fn example(&self) -> &'static str {
        "path: \"/var/log/sluice/{{route.name}}.json\"\nfsync: batch\npermissions: \"0640\""
    }
}

#[derive(Clone, Debug)]
struct Settings {
    demarcator: Bytes,
    fsync: bool,
    create_dirs: bool,
    permissions: Option<u32>,
}

struct AppendFile {
    path: Template,
    settings: Settings,
    base_dir: PathBuf,
    /// Write buffers kept between triggers, so a busy file does not grow
    /// (and fault in) a new buffer of a whole batch every time.
    buffers: Mutex<Vec<Vec<u8>>>,
}

/// Buffers kept for reuse, and the largest kept.
const KEPT_BUFFERS: usize = 8;
const KEPT_BUFFER_BYTES: usize = 4 << 20;

/// The records of one trigger for one file.
struct Group {
    /// The path as the template rendered it (most FlowFiles of a batch
    /// render one of a few paths: it is checked once per group).
    rendered: String,
    path: PathBuf,
    /// Indexes into the trigger's FlowFiles, in queue order.
    members: Vec<usize>,
    data: Vec<u8>,
}

/// Checks a rendered path and makes it absolute.
fn resolve_path(base: &Path, rendered: &str) -> Result<PathBuf, String> {
    if rendered.ends_with('/') {
        return Err(format!(
            "path `{}` names a directory, not a file",
            rendered.escape_debug()
        ));
    }
    let path = resolve_dir(base, rendered).map_err(|e| e.replace("directory", "path"))?;
    match path.file_name() {
        Some(_) => Ok(path),
        None => Err(format!("path `{}` has no file name", path.display())),
    }
}

/// Appends `group.data` to its file (see the module docs).
fn append(group: &Group, s: &Settings) -> Result<(), WriteError> {
    if group.members.is_empty() {
        return Ok(()); // its only FlowFile's content could not be read
    }
    let path = &group.path;
    let dir = path.parent().unwrap_or(Path::new("/"));
    if s.create_dirs {
        fs::create_dir_all(dir).map_err(|e| classify("creating directory", dir, &e))?;
    }
    let existed = path.symlink_metadata().is_ok();
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| classify("opening", path, &e))?;
    let before = f
        .metadata()
        .map_err(|e| classify("reading the size of", path, &e))?
        .len();
    let written = write_and_sync(&mut f, group, s, existed);
    if written.is_err() {
        cut_back(&f, before, group.data.len() as u64);
    }
    written?;
    if !existed && s.fsync {
        // The new name is durable only once its directory is.
        sync_dir(dir)?;
    }
    Ok(())
}

fn write_and_sync(
    f: &mut File,
    group: &Group,
    s: &Settings,
    existed: bool,
) -> Result<(), WriteError> {
    let path = &group.path;
    if let (false, Some(mode)) = (existed, s.permissions) {
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| classify("setting permissions of", path, &e))?;
    }
    f.write_all(&group.data)
        .map_err(|e| classify("appending to", path, &e))?;
    if s.fsync {
        f.sync_data().map_err(|e| classify("syncing", path, &e))?;
    }
    Ok(())
}

/// Cuts a failed append off the file, unless somebody else appended too
/// (then their records would go with it; the file is left as it is).
fn cut_back(f: &File, before: u64, ours: u64) {
    let Ok(now) = f.metadata().map(|m| m.len()) else {
        return;
    };
    if now > before && now <= before + ours {
        let _ = f.set_len(before).and_then(|()| f.sync_data());
    }
}

/// Appends every group in order; stops at the first transient error (the
/// rest are not tried: the disk that is full for one file is full for the
/// next). `None` = not tried.
fn append_all(groups: &[Group], s: &Settings) -> Vec<Option<Result<(), WriteError>>> {
    let mut out = Vec::with_capacity(groups.len());
    let mut stop = false;
    for g in groups {
        if stop {
            out.push(None);
            continue;
        }
        let r = append(g, s);
        stop = matches!(r, Err(WriteError::Transient(_)));
        out.push(Some(r));
    }
    out
}

impl AppendFile {
    /// The index of `ff`'s group in `groups`, made if new. `scratch` holds
    /// the rendered path: most FlowFiles render the path of a group made
    /// already, and then nothing is allocated.
    fn group_of(
        &self,
        ff: &FlowFile,
        groups: &mut Vec<Group>,
        scratch: &mut String,
    ) -> Result<usize, String> {
        scratch.clear();
        self.path
            .render_into(&ff.attributes, None, scratch)
            .map_err(|e| format!("path: {e}"))?;
        if let Some(i) = groups.iter().position(|g| g.rendered == *scratch) {
            return Ok(i);
        }
        let path = resolve_path(&self.base_dir, scratch)?;
        if let Some(i) = groups.iter().position(|g| g.path == path) {
            return Ok(i);
        }
        groups.push(Group {
            rendered: scratch.clone(),
            path,
            members: Vec::new(),
            data: self.buffers.lock().pop().unwrap_or_default(),
        });
        Ok(groups.len() - 1)
    }
}

#[async_trait]
impl Processor for AppendFile {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let batch = session.get_batch(ctx.scheduling().batch_size);
        if batch.is_empty() {
            return Ok(());
        }
        let mut groups: Vec<Group> = Vec::new();
        let mut slots: Vec<Option<FlowFile>> = Vec::with_capacity(batch.len());
        let mut scratch = String::new();
        for mut ff in batch {
            let target = self
                .group_of(&ff, &mut groups, &mut scratch)
                .and_then(|gi| {
                    session
                        .read(&ff)
                        .map(|data| (gi, data))
                        .map_err(|e| e.message)
                });
            match target {
                Ok((gi, data)) => {
                    let g = &mut groups[gi];
                    g.members.push(slots.len());
                    g.data.extend_from_slice(&data);
                    g.data.extend_from_slice(&self.settings.demarcator);
                    slots.push(Some(ff));
                }
                Err(e) => {
                    ff.attributes.insert("appendfile.error", e);
                    session.transfer(ff, FAILURE);
                }
            }
        }
        let settings = self.settings.clone();
        let (groups, results) = tokio::task::spawn_blocking(move || {
            let r = append_all(&groups, &settings);
            (groups, r)
        })
        .await
        .map_err(|e| ProcessError::new(format!("file writer task failed: {e}")))?;
        let mut retry = Vec::new();
        let mut first_transient = None;
        for (group, result) in groups.iter().zip(results) {
            let uri = format!("file://{}", group.path.display());
            for &i in &group.members {
                let Some(mut ff) = slots[i].take() else {
                    continue;
                };
                match &result {
                    Some(Ok(())) => {
                        session.send(&ff, &uri);
                        session.transfer(ff, SUCCESS);
                    }
                    Some(Err(WriteError::Permanent(e))) => {
                        ff.attributes.insert("appendfile.error", e.as_str());
                        session.transfer(ff, FAILURE);
                    }
                    Some(Err(WriteError::Transient(e))) => {
                        first_transient.get_or_insert_with(|| e.clone());
                        retry.push(ff);
                    }
                    None => retry.push(ff),
                }
            }
        }
        requeue_transient(ctx, session, "appendfile.retries", retry, first_transient);
        let mut kept = self.buffers.lock();
        for mut g in groups {
            if kept.len() < KEPT_BUFFERS && g.data.capacity() <= KEPT_BUFFER_BYTES {
                g.data.clear();
                kept.push(g.data);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sluice_runtime::testing::{TestRunner, check_type_contract, props_from_yaml};

    fn runner(yaml: &str) -> TestRunner {
        crate::test_runner(&AppendFileType, yaml)
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap()
    }

    #[test]
    fn contract() {
        check_type_contract(&AppendFileType, &crate::registry()).unwrap();
    }

    #[tokio::test]
    async fn appends_lines_per_templated_path_in_queue_order_across_triggers() {
        let tmp = tempfile::tempdir().unwrap();
        let r = runner(&format!(
            "path: '{}/{{{{route.name}}}}.json'\nfsync: batch",
            tmp.path().join("out").display()
        ));
        r.enqueue(r#"{"n":1}"#, &[("route.name", "errors")]);
        r.enqueue(r#"{"n":2}"#, &[("route.name", "routine")]);
        r.enqueue(r#"{"n":3}"#, &[("route.name", "errors")]);
        r.run_once().await.unwrap();
        let out = r.take(SUCCESS);
        assert_eq!(out.len(), 3, "failure: {:?}", r.take(FAILURE));
        assert_eq!(TestRunner::text(&out[0]), r#"{"n":1}"#, "content untouched");
        let errors = tmp.path().join("out/errors.json");
        let routine = tmp.path().join("out/routine.json");
        assert_eq!(read(&errors), "{\"n\":1}\n{\"n\":3}\n");
        assert_eq!(read(&routine), "{\"n\":2}\n");
        // A later trigger appends; what was there stays.
        r.enqueue(r#"{"n":4}"#, &[("route.name", "errors")]);
        r.run_once().await.unwrap();
        assert_eq!(r.take(SUCCESS).len(), 1);
        assert_eq!(read(&errors), "{\"n\":1}\n{\"n\":3}\n{\"n\":4}\n");
    }

    #[tokio::test]
    async fn demarcator_can_be_changed_or_empty_and_fsync_never_still_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a.log");
        let r = runner(&format!(
            "path: '{}'\ndemarcator: \"\\r\\n--\\r\\n\"\nfsync: never",
            file.display()
        ));
        r.enqueue("one", &[]);
        r.enqueue("two", &[]);
        r.run_once().await.unwrap();
        assert_eq!(r.take(SUCCESS).len(), 2);
        assert_eq!(read(&file), "one\r\n--\r\ntwo\r\n--\r\n");
        let file = tmp.path().join("b.bin");
        let r = runner(&format!("path: '{}'\ndemarcator: ''", file.display()));
        r.enqueue(vec![0u8, 1], &[]);
        r.enqueue(vec![2u8], &[]);
        r.run_once().await.unwrap();
        assert_eq!(fs::read(&file).unwrap(), vec![0u8, 1, 2]);
    }

    #[tokio::test]
    async fn bad_paths_fail_alone_and_the_rest_of_the_batch_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let r = runner(&format!("path: '{}/{{{{name}}}}'", tmp.path().display()));
        r.enqueue("escape", &[("name", "../outside")]);
        r.enqueue("dir", &[("name", "sub/")]);
        r.enqueue("empty", &[]);
        r.enqueue("fine", &[("name", "ok.log")]);
        r.run_once().await.unwrap();
        let failed = r.take(FAILURE);
        assert_eq!(failed.len(), 3);
        let errors: Vec<_> = failed
            .iter()
            .map(|f| f.attr("appendfile.error").unwrap_or_default().to_string())
            .collect();
        assert!(errors[0].contains(".."), "{errors:?}");
        assert!(errors[1].contains("directory"), "{errors:?}");
        assert!(errors[2].contains("names a directory"), "{errors:?}");
        assert_eq!(r.take(SUCCESS).len(), 1);
        assert_eq!(read(&tmp.path().join("ok.log")), "fine\n");
        assert!(!tmp.path().parent().unwrap().join("outside").exists());
    }

    #[tokio::test]
    async fn a_directory_in_the_way_is_a_failure_and_permissions_apply_to_new_files() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("taken")).unwrap();
        let r = runner(&format!(
            "path: '{}/{{{{name}}}}'\npermissions: '0600'",
            tmp.path().display()
        ));
        r.enqueue("a", &[("name", "taken")]);
        r.enqueue("b", &[("name", "new.log")]);
        r.run_once().await.unwrap();
        let failed = r.take(FAILURE);
        assert_eq!(failed.len(), 1);
        assert!(
            failed[0]
                .attr("appendfile.error")
                .is_some_and(|e| e.contains("taken")),
            "{failed:?}"
        );
        assert_eq!(r.take(SUCCESS).len(), 1);
        let mode = fs::metadata(tmp.path().join("new.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn no_directory_without_create_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let r = runner(&format!(
            "path: '{}/missing/a.log'\ncreate_dirs: false",
            tmp.path().display()
        ));
        r.enqueue("a", &[]);
        r.run_once().await.unwrap();
        assert_eq!(r.take(FAILURE).len(), 1);
        assert!(!tmp.path().join("missing").exists());
    }

    #[tokio::test]
    async fn disk_full_keeps_the_batch_in_the_queue_penalised_and_writes_nothing_twice() {
        // /dev/full answers every write with ENOSPC: a real disk-full error.
        let tmp = tempfile::tempdir().unwrap();
        let good = tmp.path().join("good.log");
        let r = runner("path: '{{file}}'");
        let first = r.enqueue("fits", &[("file", &good.display().to_string())]);
        let full = r.enqueue("no room", &[("file", "/dev/full")]);
        let after = r.enqueue("later", &[("file", &good.display().to_string())]);
        r.run_once().await.unwrap();
        // `good.log` was written first (one write for both of its records),
        // then /dev/full failed: its FlowFile waits, penalised.
        let ok: Vec<u64> = r.take(SUCCESS).iter().map(|f| f.id).collect();
        assert_eq!(ok, vec![first, after]);
        assert!(r.take(FAILURE).is_empty(), "disk full is not a failure");
        assert_eq!(read(&good), "fits\nlater\n");
        crate::put_file::assert_requeued_transient(&r, "appendfile.retries", 1);
        let back = r.take_input();
        assert_eq!(back.iter().map(|f| f.id).collect::<Vec<_>>(), vec![full]);
        assert!(back[0].penalized_until > sluice_runtime::now_millis());
    }

    #[tokio::test]
    async fn transient_error_stops_the_files_after_it() {
        let tmp = tempfile::tempdir().unwrap();
        let later = tmp.path().join("later.log");
        let r = runner("path: '{{file}}'");
        let full = r.enqueue("x", &[("file", "/dev/full")]);
        let next = r.enqueue("y", &[("file", &later.display().to_string())]);
        r.run_once().await.unwrap();
        assert!(r.take(SUCCESS).is_empty());
        assert!(!later.exists(), "not tried after the disk was full");
        let back = r.take_input();
        assert_eq!(
            back.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![full, next]
        );
    }

    #[test]
    fn bad_permissions_are_refused() {
        let err = props_from_yaml(
            &AppendFileType,
            &crate::registry(),
            "path: /tmp/x\npermissions: '999'",
        )
        .unwrap_err();
        assert!(err.contains("octal"), "{err}");
    }
}
