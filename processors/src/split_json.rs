//! SplitJson: one FlowFile per element of a JSON array inside the content.
//!
//! `pointer` (RFC 6901, e.g. `/alerts`) names the array; each element
//! becomes a child FlowFile on `split` whose content is the element as
//! compact JSON, with the attributes `fragment.identifier` (the id of the
//! incoming FlowFile, shared by its fragments), `fragment.index` (from 0) and
//! `fragment.count`. The incoming FlowFile goes to `original` with
//! `fragment.identifier` and `fragment.count` (NiFi's names).
//!
//! `flatten: alert` also writes every scalar leaf of an element as an
//! attribute named by its path: `alert.labels.severity`, `alert.status`,
//! `alert.tags.0` for array items (nulls are skipped; at most
//! `flatten_max_leaves`, past that `split.flatten.truncated` is set and the
//! content still holds everything). `attributes` copies values of the whole
//! document onto every fragment (`alertmanager.receiver: /receiver`):
//! scalars as text, objects and arrays as compact JSON.
//!
//! When the pointer is missing or does not name an array, `when_not_array`
//! decides: `failure` (the default), or `whole`, which makes one fragment of
//! the value at the pointer (an object there is a single element) or, when
//! the pointer is missing, of the whole document; so a monitoring system
//! that posts one alert object passes as one alert. An empty array makes no
//! fragments (the original still goes to `original` with count 0).
//!
//! Content that is not JSON goes to `failure` unchanged, with `split.error`
//! saying what and where (`content is not valid JSON: expected value at
//! line 3 column 14`) and
//! `split.error.line`/`split.error.column`.
//!
//! ```yaml
//! split:
//!   type: SplitJson
//!   properties:
//!     pointer: /alerts
//!     flatten: alert
//!     when_not_array: whole
//!     attributes: { alertmanager.receiver: /receiver }
//! ```

use serde_json::Value;
use sluice_runtime::{
    Attributes, BuildContext, BuildError, FlowFile, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    PropertyError, RelationshipDef, async_trait,
};

/// One FlowFile per array element.
pub const SPLIT: &str = "split";
/// The incoming FlowFile, once split.
pub const ORIGINAL: &str = "original";
/// Not JSON, or no array where `pointer` says (with `when_not_array: failure`).
pub const FAILURE: &str = "failure";

const WHEN_NOT_ARRAY: &[&str] = &["failure", "whole"];

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        "pointer",
        PropKind::Text,
        "JSON pointer (RFC 6901) to the array to split, e.g. `/alerts`; empty = the document itself.",
    ),
    PropertyDescriptor::optional(
        "flatten",
        PropKind::NonEmpty,
        None,
        "Prefix: write each element's scalar leaves as attributes `PREFIX.path.to.leaf`.",
    ),
    PropertyDescriptor::optional(
        "flatten_max_leaves",
        PropKind::Integer {
            min: 1,
            max: 10_000,
        },
        Some("256"),
        "Most leaves `flatten` writes per element; past it `split.flatten.truncated` is set.",
    ),
    PropertyDescriptor::optional(
        "when_not_array",
        PropKind::Choice(WHEN_NOT_ARRAY),
        Some("failure"),
        "When the pointer is missing or not an array: `failure`, or `whole` = one fragment of the value there (the whole document when missing).",
    ),
    PropertyDescriptor::optional(
        "attributes",
        PropKind::MapOf(&PropKind::Text),
        None,
        "Attributes copied onto every fragment: name -> JSON pointer into the whole document (scalars as text, the rest as JSON; missing = not set).",
    ),
];

/// The registry entry.
pub struct SplitJsonType;

fn check_pointer(name: &str, p: &str, props: &Properties) -> Option<PropertyError> {
    (!p.is_empty() && !p.starts_with('/')).then(|| PropertyError {
        name: name.into(),
        message: format!(
            "`{p}` is not a JSON pointer: it must be empty or start with `/` (e.g. `/alerts`)"
        ),
        pos: props.raw(name).map(sluice_runtime::PropValue::pos),
    })
}

impl ProcessorType for SplitJsonType {
    fn name(&self) -> &'static str {
        "SplitJson"
    }
    fn description(&self) -> &'static str {
        "Splits a JSON array inside the content (at a JSON pointer) into one FlowFile per element, optionally flattening each element's fields into attributes."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(
                SPLIT,
                "One FlowFile per element, with fragment.identifier/index/count.",
            ),
            RelationshipDef::new(ORIGINAL, "The incoming FlowFile, once split."),
            RelationshipDef::new(
                FAILURE,
                "Content that is not JSON, or no array at the pointer (`split.error` says why).",
            ),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        let mut errs = Vec::new();
        if let Ok(p) = props.str("pointer") {
            errs.extend(check_pointer("pointer", p, props));
        }
        match props.map("attributes") {
            Ok(m) => {
                for (_, p) in m {
                    errs.extend(check_pointer("attributes", &p, props));
                }
            }
            Err(e) => errs.push(e),
        }
        errs
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(SplitJson {
            pointer: props.str("pointer")?.to_string(),
            flatten: props.str_opt("flatten")?.map(str::to_string),
            max_leaves: props.usize("flatten_max_leaves")?,
            whole: props.str("when_not_array")? == "whole",
            copy: props.map("attributes")?,
        }))
    }
    fn example(&self) -> &'static str {
        "pointer: /alerts\nflatten: alert\nwhen_not_array: whole\nattributes:\n  alertmanager.receiver: /receiver\n  alertmanager.external_url: /externalURL"
    }
}

struct SplitJson {
    pointer: String,
    flatten: Option<String>,
    max_leaves: usize,
    whole: bool,
    copy: Vec<(String, String)>,
}

/// Why a FlowFile could not be split.
enum Unsplittable {
    NotJson(serde_json::Error),
    NotArray(String),
}

impl SplitJson {
    /// The elements to emit, borrowed from `doc`.
    fn elements<'a>(&self, doc: &'a Value) -> Result<Vec<&'a Value>, String> {
        match doc.pointer(&self.pointer) {
            Some(Value::Array(items)) => Ok(items.iter().collect()),
            Some(other) if self.whole => Ok(vec![other]),
            None if self.whole => Ok(vec![doc]),
            Some(other) => Err(format!(
                "the value at `{}` is {}, not an array",
                self.pointer,
                kind_of(other)
            )),
            None => Err(format!("the document has nothing at `{}`", self.pointer)),
        }
    }

    fn split(
        &self,
        session: &mut ProcessSession,
        original: &mut FlowFile,
        bytes: &[u8],
    ) -> Result<Vec<FlowFile>, Unsplittable> {
        let doc: Value = serde_json::from_slice(bytes).map_err(Unsplittable::NotJson)?;
        let elements = self.elements(&doc).map_err(Unsplittable::NotArray)?;
        // Serialise every element before creating any child, so nothing is
        // left half made if one fails.
        let bodies = elements
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Unsplittable::NotArray(e.to_string()))?;
        let id = original.id.to_string();
        let count = elements.len().to_string();
        let mut shared = Vec::new();
        for (name, p) in &self.copy {
            if let Some(v) = doc.pointer(p) {
                shared.push((name.as_str(), as_text(v)));
            }
        }
        let mut out = Vec::with_capacity(elements.len());
        for (i, (el, body)) in elements.into_iter().zip(bodies).enumerate() {
            let mut ff = session.create_child(original);
            session.write(&mut ff, body);
            let a = &mut ff.attributes;
            a.insert("fragment.identifier", id.as_str());
            a.insert("fragment.index", i.to_string());
            a.insert("fragment.count", count.as_str());
            for (name, v) in &shared {
                a.insert(*name, v.as_str());
            }
            if let Some(prefix) = &self.flatten {
                let mut room = self.max_leaves;
                if !flatten(a, prefix, el, &mut room) {
                    a.insert("split.flatten.truncated", "true");
                }
            }
            out.push(ff);
        }
        original.attributes.insert("fragment.identifier", id);
        original.attributes.insert("fragment.count", count);
        Ok(out)
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as attribute text: strings as they are, the rest as JSON.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Writes the scalar leaves under `path`; false when `room` ran out first.
fn flatten(attrs: &mut Attributes, path: &str, v: &Value, room: &mut usize) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m
            .iter()
            .all(|(k, c)| flatten(attrs, &format!("{path}.{k}"), c, room)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .all(|(i, c)| flatten(attrs, &format!("{path}.{i}"), c, room)),
        scalar => {
            if *room == 0 {
                return false;
            }
            *room -= 1;
            attrs.insert(path, as_text(scalar));
            true
        }
    }
}

#[async_trait]
impl Processor for SplitJson {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        for mut ff in session.get_batch(ctx.scheduling().batch_size) {
            let bytes = session.read(&ff)?;
            match self.split(session, &mut ff, &bytes) {
                Ok(parts) => {
                    for part in parts {
                        session.transfer(part, SPLIT);
                    }
                    session.transfer(ff, ORIGINAL);
                }
                Err(Unsplittable::NotJson(e)) => {
                    let a = &mut ff.attributes;
                    // serde_json's message ends with "at line L column C".
                    a.insert("split.error", format!("content is not valid JSON: {e}"));
                    a.insert("split.error.line", e.line().to_string());
                    a.insert("split.error.column", e.column().to_string());
                    session.transfer(ff, FAILURE);
                }
                Err(Unsplittable::NotArray(why)) => {
                    ff.attributes.insert("split.error", why);
                    session.transfer(ff, FAILURE);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sluice_runtime::testing::{TestRunner, check_type_contract};

    const ALERTMANAGER: &str = r#"{
      "version": "4", "status": "firing", "receiver": "sluice",
      "externalURL": "http://am:9093",
      "commonLabels": {"job": "node"},
      "alerts": [
        {"status": "firing", "fingerprint": "a1",
         "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "web-1"},
         "annotations": {"summary": "disk / is full"}, "endsAt": null},
        {"status": "resolved", "fingerprint": "b2",
         "labels": {"alertname": "HighLoad", "severity": "warning"},
         "annotations": {"summary": "load is high"}, "tags": ["x", 7, true]}
      ]}"#;

    fn runner(yaml: &str) -> TestRunner {
        crate::test_runner(&SplitJsonType, yaml)
    }

    #[test]
    fn contract() {
        check_type_contract(&SplitJsonType, &crate::registry()).unwrap();
    }

    #[tokio::test]
    async fn splits_alertmanager_alerts_with_flattened_attributes() {
        let r = runner(
            "pointer: /alerts\nflatten: alert\nattributes: { am.receiver: /receiver, am.common: /commonLabels, am.none: /nope }\n",
        );
        let id = r.enqueue(ALERTMANAGER, &[("http.path", "/alerts")]);
        r.run_once().await.unwrap();
        let parts = r.take(SPLIT);
        assert_eq!(parts.len(), 2);
        let (a, b) = (&parts[0], &parts[1]);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.attr("fragment.identifier"), Some(id.to_string().as_str()));
            assert_eq!(p.attr("fragment.index"), Some(i.to_string().as_str()));
            assert_eq!(p.attr("fragment.count"), Some("2"));
            assert_eq!(p.attr("http.path"), Some("/alerts"));
            assert_eq!(p.attr("am.receiver"), Some("sluice"));
            assert_eq!(p.attr("am.common"), Some(r#"{"job":"node"}"#));
            assert_eq!(p.attr("am.none"), None);
        }
        assert_eq!(a.attr("alert.labels.severity"), Some("critical"));
        assert_eq!(a.attr("alert.annotations.summary"), Some("disk / is full"));
        assert_eq!(a.attr("alert.fingerprint"), Some("a1"));
        assert_eq!(a.attr("alert.endsAt"), None, "nulls are skipped");
        assert_eq!(b.attr("alert.status"), Some("resolved"));
        assert_eq!(b.attr("alert.tags.0"), Some("x"));
        assert_eq!(b.attr("alert.tags.1"), Some("7"));
        assert_eq!(b.attr("alert.tags.2"), Some("true"));
        let json: Value = serde_json::from_str(&TestRunner::text(a)).unwrap();
        assert_eq!(json["labels"]["alertname"], "DiskFull");
        assert_eq!(json["annotations"]["summary"], "disk / is full");

        let orig = r.take(ORIGINAL);
        assert_eq!(orig.len(), 1);
        assert_eq!(orig[0].attr("fragment.count"), Some("2"));
        assert_eq!(TestRunner::text(&orig[0]), ALERTMANAGER);
        assert!(r.take(FAILURE).is_empty());
    }

    #[tokio::test]
    async fn invalid_json_fails_with_line_and_column() {
        let r = runner("pointer: /alerts\n");
        r.enqueue("{\"alerts\": [\n  {\"a\": 1},\n  oops\n]}", &[]);
        r.run_once().await.unwrap();
        assert!(r.take(SPLIT).is_empty());
        let failed = r.take(FAILURE);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].attr("split.error.line"), Some("3"));
        assert_eq!(failed[0].attr("split.error.column"), Some("3"));
        let err = failed[0].attr("split.error").unwrap();
        assert_eq!(
            err,
            "content is not valid JSON: expected value at line 3 column 3"
        );
        assert_eq!(
            TestRunner::text(&failed[0]),
            "{\"alerts\": [\n  {\"a\": 1},\n  oops\n]}"
        );
        assert!(r.take(ORIGINAL).is_empty());
    }

    #[tokio::test]
    async fn missing_array_fails_by_default_and_passes_whole_when_asked() {
        let single = r#"{"labels": {"severity": "critical"}, "summary": "db down"}"#;
        let strict = runner("pointer: /alerts\n");
        strict.enqueue(single, &[]);
        strict.enqueue(r#"{"alerts": {"x": 1}}"#, &[]);
        strict.run_once().await.unwrap();
        let failed = strict.take(FAILURE);
        assert_eq!(failed.len(), 2);
        assert_eq!(
            failed[0].attr("split.error"),
            Some("the document has nothing at `/alerts`")
        );
        assert_eq!(
            failed[1].attr("split.error"),
            Some("the value at `/alerts` is an object, not an array")
        );

        let lenient = runner("pointer: /alerts\nflatten: alert\nwhen_not_array: whole\n");
        lenient.enqueue(single, &[]);
        lenient.enqueue(r#"{"alerts": {"summary": "one"}}"#, &[]);
        lenient.run_once().await.unwrap();
        let parts = lenient.take(SPLIT);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].attr("alert.labels.severity"), Some("critical"));
        assert_eq!(parts[0].attr("fragment.count"), Some("1"));
        assert_eq!(
            serde_json::from_str::<Value>(&TestRunner::text(&parts[0])).unwrap(),
            serde_json::from_str::<Value>(single).unwrap()
        );
        assert_eq!(parts[1].attr("alert.summary"), Some("one"));
        assert_eq!(lenient.take(ORIGINAL).len(), 2);
    }

    #[tokio::test]
    async fn empty_array_keeps_the_original_and_root_pointer_splits_the_document() {
        let r = runner("pointer: \"\"\nflatten: x\nflatten_max_leaves: 2\n");
        r.enqueue("[]", &[]);
        r.enqueue(r#"[{"a": 1, "b": 2, "c": 3}, "plain"]"#, &[]);
        r.run_once().await.unwrap();
        let orig = r.take(ORIGINAL);
        assert_eq!(orig.len(), 2);
        assert_eq!(orig[0].attr("fragment.count"), Some("0"));
        let parts = r.take(SPLIT);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].attr("x.a"), Some("1"));
        assert_eq!(parts[0].attr("x.b"), Some("2"));
        assert_eq!(parts[0].attr("x.c"), None);
        assert_eq!(parts[0].attr("split.flatten.truncated"), Some("true"));
        assert_eq!(TestRunner::text(&parts[0]), r#"{"a":1,"b":2,"c":3}"#);
        assert_eq!(parts[1].attr("x"), Some("plain"));
        assert_eq!(parts[1].attr("split.flatten.truncated"), None);
    }

    #[test]
    fn a_pointer_without_a_slash_is_refused() {
        let err = sluice_runtime::testing::props_from_yaml(
            &SplitJsonType,
            &crate::registry(),
            "pointer: alerts\nattributes: { r: receiver }\n",
        )
        .unwrap_err();
        assert!(err.contains("`alerts` is not a JSON pointer"), "{err}");
        assert!(err.contains("`receiver` is not a JSON pointer"), "{err}");
    }
}
