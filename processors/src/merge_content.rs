//! MergeContent: concatenates queued FlowFiles into bins, with an optional
//! header, footer and demarcator, optionally gzipped. Made for archives
//! (many small alerts -> one S3 object).
//!
//! Each trigger looks at the queue, groups FlowFiles by the value of
//! `correlation_attribute` (one bin when it is not set), and cuts each group
//! in arrival order into bins of at most `max_entries` FlowFiles and
//! `max_bytes` bytes. A bin is merged when it is full, when its oldest
//! FlowFile has waited `max_age`, or when it holds at least `min_entries`
//! and nothing more is queued. Bins that are not ready go back to the queue
//! (nothing is held outside a committed queue between triggers, so a crash
//! loses nothing); the processor then yields until the oldest bin would age
//! out or for its yield duration, whichever is sooner. When more than
//! `max_bins` bins wait, the oldest are merged early.
//!
//! The merged FlowFile keeps the attributes all inputs share, plus
//! `merge.count`, `merge.bin_age` (ms the oldest input waited), `filename`
//! and, when gzipped, `mime.type: application/gzip`. The inputs go to
//! `original`. Header, footer, demarcator and filename are templates over
//! those attributes.
//!
//! ```yaml
//! batch:
//!   type: MergeContent
//!   properties:
//!     min_entries: 1000
//!     max_entries: 5000
//!     max_age: 5m
//!     correlation_attribute: syslog.hostname
//!     demarcator: "\n"
//!     compression: gzip
//!     filename: "{{syslog.hostname}}-{{now}}.log.gz"
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use sluice_runtime::{
    Attributes, BuildContext, BuildError, Escape, FlowFile, InputRequirement, Level,
    ProcessContext, ProcessError, ProcessSession, Processor, ProcessorType, PropKind, PropValue,
    Properties, PropertyDescriptor, PropertyError, RelationshipDef, Template, async_trait,
    now_millis,
};

/// The merged FlowFiles.
pub const MERGED: &str = "merged";
/// The inputs of each merge.
pub const ORIGINAL: &str = "original";
/// Inputs of a bin that could not be merged (`merge.error` says why).
pub const FAILURE: &str = "failure";

/// Most FlowFiles one trigger takes from the queue.
const MAX_TAKE: usize = 1_000_000;

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::optional(
        "min_entries",
        PropKind::Integer {
            min: 1,
            max: 1_000_000,
        },
        Some("1"),
        "A bin with fewer FlowFiles waits for more (or for `max_age`).",
    ),
    PropertyDescriptor::optional(
        "max_entries",
        PropKind::Integer {
            min: 1,
            max: 1_000_000,
        },
        Some("1000"),
        "Most FlowFiles in one bin.",
    ),
    PropertyDescriptor::optional(
        "max_bytes",
        PropKind::DataSize,
        None,
        "Most content bytes in one bin (a single larger FlowFile gets a bin of its own).",
    ),
    PropertyDescriptor::optional(
        "max_age",
        PropKind::Duration,
        None,
        "Merge a bin once its oldest FlowFile has waited this long, however few it holds.",
    ),
    PropertyDescriptor::optional(
        "max_bins",
        PropKind::Integer {
            min: 1,
            max: 100_000,
        },
        Some("100"),
        "Most bins waiting at once; past it the oldest are merged early.",
    ),
    PropertyDescriptor::optional(
        "correlation_attribute",
        PropKind::NonEmpty,
        None,
        "Only FlowFiles with the same value of this attribute share a bin.",
    ),
    PropertyDescriptor::optional(
        "header",
        PropKind::Template,
        None,
        "Text written before the first FlowFile (template over the merged attributes).",
    ),
    PropertyDescriptor::optional(
        "footer",
        PropKind::Template,
        None,
        "Text written after the last FlowFile (template over the merged attributes).",
    ),
    PropertyDescriptor::optional(
        "demarcator",
        PropKind::Template,
        None,
        "Text written between FlowFiles (template over the merged attributes).",
    ),
    PropertyDescriptor::optional(
        "compression",
        PropKind::Choice(&["none", "gzip"]),
        Some("none"),
        "Compress the merged content.",
    ),
    PropertyDescriptor::optional(
        "filename",
        PropKind::Template,
        None,
        "The merged FlowFile's `filename` (template over the merged attributes); default `merge-<id>`, with `.gz` when gzipped.",
    ),
];

/// The registry entry.
pub struct MergeContentType;

impl ProcessorType for MergeContentType {
    fn name(&self) -> &'static str {
        "MergeContent"
    }
    fn description(&self) -> &'static str {
        "Concatenates FlowFiles into bins by count, size or age (optionally per attribute value) with header, footer and demarcator, optionally gzipped."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(MERGED, "One FlowFile per merged bin."),
            RelationshipDef::new(ORIGINAL, "The FlowFiles that went into a merge."),
            RelationshipDef::new(
                FAILURE,
                "FlowFiles of a bin that could not be merged (`merge.error`).",
            ),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        match (props.usize("min_entries"), props.usize("max_entries")) {
            (Ok(min), Ok(max)) if min > max => vec![PropertyError {
                name: "min_entries".into(),
                message: format!("{min} is more than max_entries ({max})"),
                pos: props.raw("min_entries").map(PropValue::pos),
            }],
            _ => Vec::new(),
        }
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let template = |name: &str| -> Result<Option<Template>, BuildError> {
            props
                .str_opt(name)?
                .map(|s| Template::compile(s, Escape::None))
                .transpose()
                .map_err(|e| BuildError::Other(format!("{name}: {e}")))
        };
        Ok(Box::new(MergeContent {
            min_entries: props.usize("min_entries")?,
            max_entries: props.usize("max_entries")?,
            max_bytes: props
                .str_opt("max_bytes")?
                .map(|_| props.data_size("max_bytes"))
                .transpose()?,
            max_age: props.duration_opt("max_age")?,
            max_bins: props.usize("max_bins")?,
            correlation: props.str_opt("correlation_attribute")?.map(str::to_string),
            header: template("header")?,
            footer: template("footer")?,
            demarcator: template("demarcator")?,
            gzip: props.str("compression")? == "gzip",
            filename: template("filename")?,
        }))
    }
    fn example(&self) -> &'static str {
        "min_entries: 1000\nmax_entries: 5000\nmax_age: 5m\ncorrelation_attribute: syslog.hostname\ndemarcator: \"\\n\"\ncompression: gzip\nfilename: \"{{syslog.hostname}}-{{now}}.log.gz\""
    }
}

struct MergeContent {
    min_entries: usize,
    max_entries: usize,
    max_bytes: Option<u64>,
    max_age: Option<Duration>,
    max_bins: usize,
    correlation: Option<String>,
    header: Option<Template>,
    footer: Option<Template>,
    demarcator: Option<Template>,
    gzip: bool,
    filename: Option<Template>,
}

/// FlowFiles of one bin, in arrival order.
#[derive(Default)]
struct Bin {
    flowfiles: Vec<FlowFile>,
    bytes: u64,
}

impl Bin {
    fn oldest_entry(&self) -> u64 {
        self.flowfiles
            .iter()
            .map(|f| f.entry_date)
            .min()
            .unwrap_or(u64::MAX)
    }
}

impl MergeContent {
    fn fits(&self, bin: &Bin, ff: &FlowFile) -> bool {
        bin.flowfiles.is_empty()
            || (bin.flowfiles.len() < self.max_entries
                && self.max_bytes.is_none_or(|m| bin.bytes + ff.size() <= m))
    }

    fn is_full(&self, bin: &Bin) -> bool {
        bin.flowfiles.len() >= self.max_entries || self.max_bytes.is_some_and(|m| bin.bytes >= m)
    }

    /// Cuts `flowfiles` into bins: (full bins, the partial bin of each group).
    fn bin(&self, flowfiles: Vec<FlowFile>) -> (Vec<Bin>, Vec<Bin>) {
        let mut full = Vec::new();
        let mut open: Vec<Bin> = Vec::new();
        let mut slot: HashMap<String, usize> = HashMap::new();
        for ff in flowfiles {
            let key = self
                .correlation
                .as_deref()
                .and_then(|a| ff.attr(a))
                .unwrap_or_default()
                .to_string();
            let i = *slot.entry(key).or_insert_with(|| {
                open.push(Bin::default());
                open.len() - 1
            });
            if !self.fits(&open[i], &ff) {
                full.push(std::mem::take(&mut open[i]));
            }
            open[i].bytes += ff.size();
            open[i].flowfiles.push(ff);
            if self.is_full(&open[i]) {
                full.push(std::mem::take(&mut open[i]));
            }
        }
        open.retain(|b| !b.flowfiles.is_empty());
        (full, open)
    }

    /// The merged attributes and content of `bin`.
    fn merge(
        &self,
        session: &ProcessSession,
        bin: &Bin,
        id: u64,
        now: u64,
    ) -> Result<(Attributes, Bytes), String> {
        let mut attrs = common_attributes(&bin.flowfiles);
        attrs.insert("merge.count", bin.flowfiles.len().to_string());
        attrs.insert(
            "merge.bin_age",
            now.saturating_sub(bin.oldest_entry()).to_string(),
        );
        let render = |t: &Option<Template>, what: &str| -> Result<String, String> {
            t.as_ref()
                .map(|t| t.render(&attrs).map_err(|e| format!("{what}: {e}")))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        let header = render(&self.header, "header")?;
        let footer = render(&self.footer, "footer")?;
        let demarcator = render(&self.demarcator, "demarcator")?;
        let mut body = Vec::with_capacity(
            usize::try_from(bin.bytes).unwrap_or(0) + header.len() + footer.len(),
        );
        body.extend_from_slice(header.as_bytes());
        for (i, ff) in bin.flowfiles.iter().enumerate() {
            if i > 0 {
                body.extend_from_slice(demarcator.as_bytes());
            }
            let content = session.read(ff).map_err(|e| e.message)?;
            body.extend_from_slice(&content);
        }
        body.extend_from_slice(footer.as_bytes());
        if self.gzip {
            let mut enc =
                GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
            enc.write_all(&body)
                .and_then(|()| enc.finish())
                .map(|gz| body = gz)
                .map_err(|e| format!("gzip: {e}"))?;
            attrs.insert("mime.type", "application/gzip");
        }
        let filename = match &self.filename {
            Some(t) => t.render(&attrs).map_err(|e| format!("filename: {e}"))?,
            None if self.gzip => format!("merge-{id}.gz"),
            None => format!("merge-{id}"),
        };
        attrs.insert("filename", filename);
        Ok((attrs, Bytes::from(body)))
    }

    fn emit(&self, ctx: &ProcessContext, session: &mut ProcessSession, bin: Bin, now: u64) {
        let mut merged = session.create_merged(&bin.flowfiles);
        match self.merge(session, &bin, merged.id, now) {
            Ok((attrs, body)) => {
                merged.attributes = attrs;
                session.write(&mut merged, body);
                session.transfer(merged, MERGED);
                for ff in bin.flowfiles {
                    session.transfer(ff, ORIGINAL);
                }
            }
            Err(e) => {
                ctx.bulletin(Level::Warn, format!("merge failed: {e}"));
                session.remove(merged);
                for mut ff in bin.flowfiles {
                    ff.attributes.insert("merge.error", e.clone());
                    session.transfer(ff, FAILURE);
                }
            }
        }
    }
}

/// The attributes every FlowFile of `ffs` has with the same value.
fn common_attributes(ffs: &[FlowFile]) -> Attributes {
    let Some((first, rest)) = ffs.split_first() else {
        return Attributes::new();
    };
    let mut out = first.attributes.clone();
    for (k, v) in first.attributes.iter() {
        if rest.iter().any(|f| f.attr(k) != Some(v)) {
            out.remove(k);
        }
    }
    out
}

#[async_trait]
impl Processor for MergeContent {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let limit = self
            .max_entries
            .saturating_mul(self.max_bins)
            .max(ctx.scheduling().batch_size)
            .min(MAX_TAKE);
        let taken = session.get_batch(limit);
        if taken.is_empty() {
            return Ok(());
        }
        let input_drained = session.queued() == 0;
        let now = now_millis();
        let (full, mut partial) = self.bin(taken);
        let mut merged = full.len();
        for bin in full {
            self.emit(ctx, session, bin, now);
        }
        // Oldest first: the ones to force out when there are too many.
        partial.sort_by_key(Bin::oldest_entry);
        let max_age_ms = self
            .max_age
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let excess = partial.len().saturating_sub(self.max_bins);
        let mut soonest_age: Option<u64> = None;
        for (i, bin) in partial.into_iter().enumerate() {
            let waited = now.saturating_sub(bin.oldest_entry());
            let aged = max_age_ms.is_some_and(|m| waited >= m);
            let enough = input_drained && bin.flowfiles.len() >= self.min_entries;
            if aged || enough || i < excess {
                if i < excess && !(aged || enough) {
                    ctx.counter("merge.bins_forced")
                        .fetch_add(1, Ordering::Relaxed);
                }
                merged += 1;
                self.emit(ctx, session, bin, now);
            } else {
                if let Some(m) = max_age_ms {
                    let left = m - waited;
                    soonest_age = Some(soonest_age.map_or(left, |s| s.min(left)));
                }
                for ff in bin.flowfiles {
                    session.requeue(vec![ff], false);
                }
            }
        }
        if merged == 0 {
            // Nothing ready: rest until the oldest bin ages out, or the yield
            // duration, rather than look at the same queue again at once.
            let rest = ctx.scheduling().yield_duration;
            let rest = soonest_age.map_or(rest, |ms| rest.min(Duration::from_millis(ms)));
            ctx.yield_for(rest.max(Duration::from_millis(1)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::Content;

    use sluice_runtime::testing::{TestRunner, check_type_contract};
    use std::io::Read;

    #[test]
    fn contract() {
        check_type_contract(&MergeContentType, &crate::registry()).unwrap();
    }

    fn runner(yaml: &str) -> TestRunner {
        crate::test_runner(&MergeContentType, yaml)
    }

    fn aged(content: &str, attrs: &[(&str, &str)], age_ms: u64) -> FlowFile {
        let mut ff = FlowFile::new();
        ff.content = Content::Memory(Bytes::from(content.to_string()));
        ff.entry_date = now_millis() - age_ms;
        for (k, v) in attrs {
            ff.attributes.insert(*k, *v);
        }
        ff
    }

    #[tokio::test]
    async fn merges_with_header_demarcator_footer_and_keeps_common_attributes() {
        let r = runner(
            "header: \"[{{merge.count}} from {{host}}]\\n\"\ndemarcator: \"\\n\"\nfooter: \"\\n[end]\"\nfilename: \"{{host}}.log\"\n",
        );
        r.enqueue("one", &[("host", "web-1"), ("n", "1")]);
        r.enqueue("two", &[("host", "web-1"), ("n", "2")]);
        r.enqueue("three", &[("host", "web-1"), ("n", "3")]);
        r.run_once().await.unwrap();
        let merged = r.take(MERGED);
        assert_eq!(merged.len(), 1);
        assert_eq!(
            TestRunner::text(&merged[0]),
            "[3 from web-1]\none\ntwo\nthree\n[end]"
        );
        assert_eq!(merged[0].attr("merge.count"), Some("3"));
        assert_eq!(merged[0].attr("host"), Some("web-1"));
        assert_eq!(
            merged[0].attr("n"),
            None,
            "differing attributes are dropped"
        );
        assert_eq!(merged[0].attr("filename"), Some("web-1.log"));
        assert!(merged[0].attr("merge.bin_age").is_some());
        assert_eq!(r.take(ORIGINAL).len(), 3);
    }

    #[tokio::test]
    async fn waits_for_min_entries_and_keeps_nothing_outside_the_queue() {
        let r = runner("min_entries: 3\nmax_entries: 3\n");
        r.enqueue("a", &[]);
        r.enqueue("b", &[]);
        r.run_once().await.unwrap();
        assert!(r.take(MERGED).is_empty());
        assert_eq!(r.input_queued(), 2, "an incomplete bin stays in the queue");
        r.enqueue("c", &[]);
        r.enqueue("d", &[]);
        r.run_once().await.unwrap();
        let merged = r.take(MERGED);
        assert_eq!(merged.len(), 1, "a full bin of 3");
        assert_eq!(TestRunner::text(&merged[0]), "abc");
        assert_eq!(r.input_queued(), 1, "d waits for two more");
    }

    #[tokio::test]
    async fn max_entries_and_max_bytes_cut_bins() {
        let r = runner("max_entries: 2\n");
        for c in ["a", "b", "c", "d", "e"] {
            r.enqueue(c, &[]);
        }
        r.run_once().await.unwrap();
        let texts: Vec<_> = r.take(MERGED).iter().map(TestRunner::text).collect();
        assert_eq!(
            texts,
            ["ab", "cd", "e"],
            "min_entries 1: the rest goes when drained"
        );

        let r = runner("max_bytes: 10 B\nmin_entries: 100\nmax_entries: 100\n");
        for c in ["12345", "1234", "12", "x".repeat(20).as_str(), "tail"] {
            r.enqueue(c.to_string(), &[]);
        }
        r.run_once().await.unwrap();
        let texts: Vec<_> = r.take(MERGED).iter().map(TestRunner::text).collect();
        assert_eq!(texts, ["123451234", "12", &"x".repeat(20)]);
        assert_eq!(
            r.input_queued(),
            1,
            "`tail` waits: below min_entries, not full"
        );
    }

    #[tokio::test]
    async fn an_aged_bin_is_merged_however_small() {
        let r = runner("min_entries: 10\nmax_age: 5m\n");
        r.enqueue_flowfile(aged("old", &[], 6 * 60_000));
        r.enqueue_flowfile(aged("new", &[], 1_000));
        r.run_once().await.unwrap();
        let merged = r.take(MERGED);
        assert_eq!(merged.len(), 1);
        assert_eq!(TestRunner::text(&merged[0]), "oldnew");
        let age: u64 = merged[0].attr("merge.bin_age").unwrap().parse().unwrap();
        assert!(age >= 6 * 60_000, "bin age {age}");

        r.enqueue_flowfile(aged("young", &[], 60_000));
        r.run_once().await.unwrap();
        assert!(r.take(MERGED).is_empty());
        assert_eq!(r.input_queued(), 1);
    }

    #[tokio::test]
    async fn correlation_attribute_bins_per_value() {
        let r = runner("correlation_attribute: host\nmin_entries: 2\ndemarcator: \",\"\n");
        r.enqueue("a1", &[("host", "a")]);
        r.enqueue("b1", &[("host", "b")]);
        r.enqueue("a2", &[("host", "a")]);
        r.enqueue("c1", &[("host", "c")]);
        r.run_once().await.unwrap();
        let merged = r.take(MERGED);
        assert_eq!(merged.len(), 1);
        assert_eq!(TestRunner::text(&merged[0]), "a1,a2");
        assert_eq!(merged[0].attr("host"), Some("a"));
        assert_eq!(
            r.input_queued(),
            2,
            "b and c wait for a second FlowFile each"
        );
    }

    #[tokio::test]
    async fn too_many_bins_force_the_oldest_out() {
        let r = runner("correlation_attribute: k\nmin_entries: 5\nmax_bins: 2\n");
        r.enqueue_flowfile(aged("oldest", &[("k", "1")], 3_000));
        r.enqueue_flowfile(aged("middle", &[("k", "2")], 2_000));
        r.enqueue_flowfile(aged("newest", &[("k", "3")], 1_000));
        r.run_once().await.unwrap();
        let texts: Vec<_> = r.take(MERGED).iter().map(TestRunner::text).collect();
        assert_eq!(texts, ["oldest"]);
        assert_eq!(r.input_queued(), 2);
        assert_eq!(
            r.ctx.counter("merge.bins_forced").load(Ordering::Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn gzip_compresses_and_names_the_file() {
        let r = runner("compression: gzip\ndemarcator: \"\\n\"\n");
        r.enqueue("line one", &[]);
        r.enqueue("line two", &[]);
        r.run_once().await.unwrap();
        let merged = r.take(MERGED);
        let Content::Memory(gz) = &merged[0].content else {
            panic!("in memory")
        };
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "line one\nline two");
        assert_eq!(merged[0].attr("mime.type"), Some("application/gzip"));
        let name = merged[0].attr("filename").unwrap();
        assert_eq!(name, format!("merge-{}.gz", merged[0].id));
    }

    #[test]
    fn min_above_max_is_refused() {
        let props =
            Properties::from_pairs(&[("min_entries", "10"), ("max_entries", "5")], PROPERTIES);
        let errs = MergeContentType.validate(&props);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("max_entries"));
    }
}
