//! AttributesToJSON: writes a FlowFile's attributes as one JSON object, to the
//! content or to an attribute.
//!
//! - `include` / `exclude` pick attributes by name, with `*` wildcards
//!   (`http.header.*`); an empty `include` means every attribute; `exclude`
//!   wins over `include`.
//! - Values are JSON strings, except for attributes named in `typed` (also
//!   patterns; `typed: ["*"]` types every attribute): a value that is a JSON
//!   number or `true`/`false` is written as a number or boolean. Only exact
//!   JSON spellings convert: `007`, `+1`, `.5`, `1e` and `TRUE` stay strings,
//!   and so does an integer too large for 64 bits (it would lose digits).
//! - `include_core` adds `flowfile.id`, `flowfile.size`, `flowfile.entry_date`
//!   and `flowfile.lineage_start` (ms since the epoch) as numbers.
//! - `nested: true` turns dotted names into nested objects: `http.method` ->
//!   `{"http": {"method": ...}}`. A name with an empty part (`a..b`) stays
//!   flat. When one name is a prefix of another (`a` and `a.b`), the object
//!   cannot hold both: the FlowFile goes to `failure` with `json.error`.
//! - `include_content` adds the content as the string field `content` (invalid
//!   UTF-8 replaced by U+FFFD); it replaces an attribute of that name.
//! - `destination: content` (the default) replaces the content and sets
//!   `mime.type: application/json`; `destination: attribute` leaves the content
//!   and sets the attribute `attribute_name` (default `JSONAttributes`).
//!
//! serde_json writes the text, so any value, however hostile (quotes,
//! newlines, control characters, invalid surrogates), gives valid JSON. A
//! flat object (the default) is written field by field straight into the
//! output, with no JSON tree in between; `nested` builds the tree.
//!
//! ```yaml
//! to_json:
//!   type: AttributesToJSON
//!   properties:
//!     include: [http.*, route.name]
//!     exclude: [http.header.authorization]
//!     typed: [http.status, count]
//!     nested: true
//! ```

use std::collections::HashMap;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Map, Number, Value};
use sluice_runtime::{
    AttrStr, BuildContext, BuildError, FlowFile, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    RelationshipDef, async_trait,
};

use crate::name_pattern::NamePatterns;

/// FlowFiles with their JSON.
pub const SUCCESS: &str = "success";
/// FlowFiles whose JSON could not be made (`json.error` says why).
pub const FAILURE: &str = "failure";

const DESTINATIONS: &[&str] = &["content", "attribute"];

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::optional(
        "include",
        PropKind::ListOf(&PropKind::NonEmpty),
        None,
        "Attribute names or `*` patterns to write; empty = every attribute.",
    ),
    PropertyDescriptor::optional(
        "exclude",
        PropKind::ListOf(&PropKind::NonEmpty),
        None,
        "Attribute names or `*` patterns to leave out (wins over `include`).",
    ),
    PropertyDescriptor::optional(
        "include_core",
        PropKind::Bool,
        Some("false"),
        "Add flowfile.id, flowfile.size, flowfile.entry_date and flowfile.lineage_start as numbers.",
    ),
    PropertyDescriptor::optional(
        "destination",
        PropKind::Choice(DESTINATIONS),
        Some("content"),
        "Where the JSON goes: `content` (sets mime.type) or `attribute` (see attribute_name).",
    ),
    PropertyDescriptor::optional(
        "attribute_name",
        PropKind::NonEmpty,
        Some("JSONAttributes"),
        "The attribute that receives the JSON with `destination: attribute`.",
    ),
    PropertyDescriptor::optional(
        "typed",
        PropKind::ListOf(&PropKind::NonEmpty),
        None,
        "Attribute names or `*` patterns whose values are written as JSON numbers/booleans when they are spelled as one.",
    ),
    PropertyDescriptor::optional(
        "nested",
        PropKind::Bool,
        Some("false"),
        "Turn dotted names into nested objects (`a.b` -> {\"a\": {\"b\": ..}}).",
    ),
    PropertyDescriptor::optional(
        "include_content",
        PropKind::Bool,
        Some("false"),
        "Add the content as the string field `content` (lossy UTF-8).",
    ),
];

/// The registry entry.
pub struct AttributesToJsonType;

impl ProcessorType for AttributesToJsonType {
    fn name(&self) -> &'static str {
        "AttributesToJSON"
    }
    fn description(&self) -> &'static str {
        "Writes selected attributes (optionally typed, nested, with core fields and content) as a JSON object to the content or to an attribute."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(SUCCESS, "FlowFiles with their JSON."),
            RelationshipDef::new(
                FAILURE,
                "FlowFiles whose JSON could not be made; `json.error` says why.",
            ),
        ]
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let to_attribute = props.str("destination")? == "attribute";
        Ok(Box::new(AttributesToJson {
            include: NamePatterns::new(props.list("include")?),
            exclude: NamePatterns::new(props.list("exclude")?),
            typed: NamePatterns::new(props.list("typed")?),
            include_core: props.bool("include_core")?,
            to_attribute: to_attribute
                .then(|| props.str("attribute_name").map(str::to_string))
                .transpose()?,
            nested: props.bool("nested")?,
            include_content: props.bool("include_content")?,
            mime: (
                AttrStr::constant("mime.type"),
                AttrStr::constant("application/json"),
            ),
            keys: Mutex::new(KeyCache::default()),
        }))
    }
    fn example(&self) -> &'static str {
        "include: [http.*, route.name]\nexclude: [http.header.authorization]\ntyped: [http.status, count]\nnested: true"
    }
}

struct AttributesToJson {
    include: NamePatterns,
    exclude: NamePatterns,
    typed: NamePatterns,
    include_core: bool,
    /// `Some(name)` with `destination: attribute`.
    to_attribute: Option<String>,
    nested: bool,
    include_content: bool,
    /// `mime.type` and `application/json`, built once: shared by every
    /// FlowFile rather than allocated for each.
    mime: (AttrStr, AttrStr),
    /// `"name":` of the constant attribute names met so far.
    keys: Mutex<KeyCache>,
}

/// The JSON text (`"name":`) of attribute names that are constants, kept by
/// the address of their text: a constant is never freed, so the address
/// names the text for the life of the process. Names repeat on every
/// FlowFile; this saves checking and quoting them each time. Bounded: past
/// [`KeyCache::MAX`] names, others are written as they come.
#[derive(Default)]
struct KeyCache {
    written: HashMap<usize, Box<[u8]>, foldhash::fast::FixedState>,
}

impl KeyCache {
    const MAX: usize = 4096;

    /// Appends `"key":` to `out`.
    fn write(&mut self, out: &mut Vec<u8>, key: &AttrStr) -> Result<(), String> {
        if !key.is_constant() {
            write_str(out, key)?;
            out.push(b':');
            return Ok(());
        }
        let at = key.as_ptr() as usize;
        if let Some(text) = self.written.get(&at) {
            out.extend_from_slice(text);
            return Ok(());
        }
        let start = out.len();
        write_str(out, key)?;
        out.push(b':');
        if self.written.len() < Self::MAX {
            self.written.insert(at, out[start..].into());
        }
        Ok(())
    }
}

/// The value as a JSON number or boolean when spelled exactly as one.
fn typed_value(s: &str) -> Option<Value> {
    match s {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    let n: Number = serde_json::from_str(s).ok()?;
    let integer = !s.contains(['.', 'e', 'E']);
    if integer && !(n.is_i64() || n.is_u64()) {
        return None; // too large for 64 bits: keep every digit as text
    }
    Some(Value::Number(n))
}

/// Inserts `value` at the dotted `key` inside `obj`.
fn insert_nested(obj: &mut Map<String, Value>, key: &str, value: Value) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() == 1 || parts.iter().any(|p| p.is_empty()) {
        return insert_flat(obj, key, value);
    }
    let mut cur = obj;
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        let slot = cur
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        cur = match slot {
            Value::Object(m) => m,
            _ => {
                return Err(format!(
                    "`{}` is both a value and the parent of `{key}`",
                    parts[..=i].join(".")
                ));
            }
        };
    }
    let last = parts[parts.len() - 1];
    insert_flat(cur, last, value)
        .map_err(|_| format!("`{key}` is both a value and the parent of other attributes"))
}

fn insert_flat(obj: &mut Map<String, Value>, key: &str, value: Value) -> Result<(), String> {
    if matches!(obj.get(key), Some(Value::Object(_))) {
        return Err(format!(
            "`{key}` is both a value and the parent of other attributes"
        ));
    }
    obj.insert(key.to_string(), value);
    Ok(())
}

/// One field of the flat object.
enum Field<'a> {
    Text(&'a str),
    Typed(&'a str),
    Number(u64),
    Content(String),
}

impl AttributesToJson {
    /// Writes the JSON of `ff` into `out` (empty on entry).
    fn json(
        &self,
        session: &ProcessSession,
        ff: &FlowFile,
        out: &mut Vec<u8>,
        keys: &mut KeyCache,
    ) -> Result<(), String> {
        if !self.nested {
            return self.flat_json(session, ff, out, keys);
        }
        let mut obj = Map::new();
        for (k, v) in ff.attributes.iter() {
            if !self.picked(k) {
                continue;
            }
            let value = if self.typed.matches(k) {
                typed_value(v).unwrap_or_else(|| Value::String(v.to_string()))
            } else {
                Value::String(v.to_string())
            };
            insert_nested(&mut obj, k, value)?;
        }
        if self.include_core {
            for (k, v) in [
                ("flowfile.id", ff.id),
                ("flowfile.size", ff.size()),
                ("flowfile.entry_date", ff.entry_date),
                ("flowfile.lineage_start", ff.lineage_start),
            ] {
                insert_nested(&mut obj, k, Value::from(v))?;
            }
        }
        if self.include_content {
            let bytes = session.read(ff).map_err(|e| e.message)?;
            obj.insert(
                "content".into(),
                Value::String(String::from_utf8_lossy(&bytes).into_owned()),
            );
        }
        write_json(out, &Value::Object(obj))
    }

    /// The default and most common case: all attributes, as strings,
    /// nothing else.
    fn writes_every_attribute_as_text(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.typed.is_empty()
            && !self.include_core
            && !self.include_content
    }

    fn picked(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.matches(name)) && !self.exclude.matches(name)
    }

    /// The flat object, written straight into text: attributes come in key
    /// order already, so only core fields and content need sorting in.
    fn flat_json(
        &self,
        session: &ProcessSession,
        ff: &FlowFile,
        out: &mut Vec<u8>,
        keys: &mut KeyCache,
    ) -> Result<(), String> {
        if self.writes_every_attribute_as_text() {
            return every_attribute_as_text(ff, out, keys);
        }
        let mut fields: Vec<(&str, Field<'_>)> = Vec::with_capacity(32);
        for (k, v) in ff.attributes.iter() {
            if self.picked(k) {
                let typed = self.typed.matches(k);
                fields.push((
                    k,
                    if typed {
                        Field::Typed(v)
                    } else {
                        Field::Text(v)
                    },
                ));
            }
        }
        let mut extra = Vec::new();
        if self.include_core {
            extra.extend([
                ("flowfile.id", Field::Number(ff.id)),
                ("flowfile.size", Field::Number(ff.size())),
                ("flowfile.entry_date", Field::Number(ff.entry_date)),
                ("flowfile.lineage_start", Field::Number(ff.lineage_start)),
            ]);
        }
        if self.include_content {
            let bytes = session.read(ff).map_err(|e| e.message)?;
            extra.push((
                "content",
                Field::Content(String::from_utf8_lossy(&bytes).into_owned()),
            ));
        }
        if !extra.is_empty() {
            // Later fields replace earlier ones of the same name.
            fields.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
            fields.extend(extra);
            fields.sort_by(|a, b| a.0.cmp(b.0));
        }
        out.push(b'{');
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, k)?;
            out.push(b':');
            match v {
                Field::Text(s) => write_str(out, s)?,
                Field::Typed(s) => match typed_value(s) {
                    Some(t) => write_json(out, &t)?,
                    None => write_str(out, s)?,
                },
                Field::Number(n) => write_json(out, n)?,
                Field::Content(s) => write_str(out, s)?,
            }
        }
        out.push(b'}');
        Ok(())
    }
}

/// The flat object of every attribute as a string, written straight from
/// the map (already in key order, keys unique) in one pass.
fn every_attribute_as_text(
    ff: &FlowFile,
    out: &mut Vec<u8>,
    keys: &mut KeyCache,
) -> Result<(), String> {
    out.push(b'{');
    for (i, (k, v)) in ff.attributes.iter_shared().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        keys.write(out, k)?;
        write_str(out, v)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> Result<(), String> {
    serde_json::to_writer(&mut *out, v).map_err(|e| e.to_string())
}

/// A JSON string. Most attribute values need no escape: they are copied
/// between quotes; the rest go through serde_json's escaper.
// Inlined into the two calls per attribute: a call costs a fifth of the work.
#[allow(clippy::inline_always)]
#[inline(always)]
fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
    if needs_escape(s.as_bytes()) {
        return write_escaped(out, s);
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

/// Whether `s` holds a byte JSON must escape, eight bytes at a time (SWAR,
/// see [`marks`]). The words' marks are or-ed and tested once, as escapes
/// are rare. A tail shorter than eight bytes is read again as the last eight
/// bytes of `s` (bytes seen twice are harmless).
#[inline]
fn needs_escape(s: &[u8]) -> bool {
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        u64::from_le_bytes(w)
    };
    if s.len() < 8 {
        // Short values (numbers, names): a table look-up per byte.
        return s
            .iter()
            .fold(false, |any, &b| any | ESCAPED[usize::from(b)]);
    }
    let mut chunks = s.chunks_exact(8);
    let mut marked = 0;
    for chunk in chunks.by_ref() {
        marked |= marks(word(chunk));
    }
    if !chunks.remainder().is_empty() {
        marked |= marks(word(&s[s.len() - 8..]));
    }
    marked != 0
}

/// Bytes JSON must escape in a string: `"`, `\\` and controls below 0x20.
const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The top bit of each byte of `x` that JSON must escape (`"`, `\\`, a
/// control character below 0x20), and maybe of bytes above it, but never
/// any bit in a word without one: `x - 0x01..01` borrows into a byte's top
/// bit only where that byte was zero (or below the subtracted value for the
/// `< 0x20` test), and `& !x` drops bytes that had the top bit set already
/// (UTF-8 continuation and lead bytes).
#[inline]
fn marks(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = x ^ (ONES * u64::from(b'"'));
    let backslash = x ^ (ONES * u64::from(b'\\'));
    ((x.wrapping_sub(ONES * 0x20) & !x)
        | (quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash))
        & HIGH
}

#[cold]
#[inline(never)]
fn write_escaped(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
    write_json(out, s)
}

#[async_trait]
impl Processor for AttributesToJson {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        // Each object is written into one buffer kept for the batch, then
        // copied out at its exact size.
        let mut text = Vec::with_capacity(4096);
        let mut keys = self.keys.lock();
        for mut ff in session.get_batch(ctx.scheduling().batch_size) {
            text.clear();
            match self.json(session, &ff, &mut text, &mut keys) {
                Ok(()) => {
                    if let Some(name) = &self.to_attribute {
                        // serde_json writes UTF-8 only: nothing is replaced.
                        let text = String::from_utf8_lossy(&text);
                        ff.attributes.insert(name.as_str(), text.as_ref());
                    } else {
                        session.write(&mut ff, Bytes::copy_from_slice(&text));
                        ff.attributes
                            .insert(self.mime.0.clone(), self.mime.1.clone());
                    }
                    session.transfer(ff, SUCCESS);
                }
                Err(e) => {
                    ff.attributes.insert("json.error", e);
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

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        // Every byte value at every position of strings of 0 to 24 bytes,
        // among plain ASCII, UTF-8 and 0x7f/0x20 neighbours, after some
        // text already in the buffer.
        let check = |s: &str| {
            // The check is exact (no needless trips through the escaper)...
            let slow = s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
            assert_eq!(needs_escape(s.as_bytes()), slow, "{s:?}");
            // ...and the text is serde_json's.
            let mut out = b"{x".to_vec();
            write_str(&mut out, s).unwrap();
            let mut want = b"{x".to_vec();
            serde_json::to_writer(&mut want, s).unwrap();
            assert_eq!(out, want, "{s:?}");
        };
        for len in 0..24 {
            for fill in ['a', 'é', '\u{7f}', ' ', '€'] {
                check(&fill.to_string().repeat(len));
                for pos in 0..len {
                    for c in (0..=0x7fu8)
                        .map(char::from)
                        .chain(['é', '\u{80}', '\u{ffff}', '😀'])
                    {
                        let mut v: Vec<char> = vec![fill; len];
                        v[pos] = c;
                        check(&v.iter().collect::<String>());
                    }
                }
            }
        }
        check("héllo wörld, plain text here");
        check("0123456789abcdef\\");
    }

    #[test]
    fn cached_names_are_written_as_serde_json_writes_them() {
        let mut keys = KeyCache::default();
        for name in ["syslog.severity", "say \"hi\"", "tab\there", "é"] {
            let want = format!("{}:", serde_json::to_string(name).unwrap());
            for key in [AttrStr::constant(name), AttrStr::from(name)] {
                // Twice: written, then from the cache (constants only).
                for _ in 0..2 {
                    let mut out = b"{".to_vec();
                    keys.write(&mut out, &key).unwrap();
                    assert_eq!(&out[1..], want.as_bytes(), "{name:?}");
                }
            }
        }
        assert_eq!(keys.written.len(), 4, "only constants are kept");
    }

    fn runner(yaml: &str) -> TestRunner {
        crate::test_runner(&AttributesToJsonType, yaml)
    }

    async fn one(r: &TestRunner, content: &str, attrs: &[(&str, &str)]) -> Value {
        r.enqueue(content.to_string(), attrs);
        r.run_once().await.unwrap();
        let out = r.take(SUCCESS);
        assert_eq!(out.len(), 1, "failure: {:?}", r.take(FAILURE));
        serde_json::from_str(&TestRunner::text(&out[0])).unwrap()
    }

    #[test]
    fn contract() {
        check_type_contract(&AttributesToJsonType, &crate::registry()).unwrap();
    }

    #[tokio::test]
    async fn all_attributes_as_strings_to_content() {
        let r = runner("{}");
        r.enqueue("old body", &[("a", "1"), ("b", "x")]);
        r.run_once().await.unwrap();
        let out = r.take(SUCCESS);
        let v: Value = serde_json::from_str(&TestRunner::text(&out[0])).unwrap();
        assert_eq!(v, serde_json::json!({"a": "1", "b": "x"}));
        assert_eq!(out[0].attr("mime.type"), Some("application/json"));
    }

    #[tokio::test]
    async fn hostile_values_give_valid_json_with_exact_values() {
        let r = runner("{}");
        let nasty =
            "quote\" back\\slash\nnew\tline \u{0}nul \u{1f}ctl </script> \u{2028} é 🦀 {{x}}";
        let v = one(&r, "", &[("evil\"key\n", nasty), ("plain", "ok")]).await;
        assert_eq!(v["evil\"key\n"], nasty);
        assert_eq!(v["plain"], "ok");
    }

    #[tokio::test]
    async fn include_exclude_with_patterns() {
        let r = runner("include: ['http.*', route.name]\nexclude: [http.header.authorization]");
        let v = one(
            &r,
            "",
            &[
                ("http.method", "POST"),
                ("http.header.authorization", "Bearer s3cret"),
                ("http.header.x-id", "7"),
                ("route.name", "web"),
                ("other", "no"),
            ],
        )
        .await;
        assert_eq!(
            v,
            serde_json::json!({"http.method": "POST", "http.header.x-id": "7", "route.name": "web"})
        );
    }

    #[tokio::test]
    async fn typed_only_where_asked_and_only_exact_spellings() {
        let r = runner("typed: [num, flt, flag, zip, big, neg, word]");
        let v = one(
            &r,
            "",
            &[
                ("num", "42"),
                ("flt", "2.5"),
                ("flag", "true"),
                ("zip", "007"),
                ("big", "123456789012345678901234567890"),
                ("neg", "-3"),
                ("word", "TRUE"),
                ("untyped", "5"),
            ],
        )
        .await;
        assert_eq!(v["num"], serde_json::json!(42));
        assert_eq!(v["flt"], serde_json::json!(2.5));
        assert_eq!(v["flag"], serde_json::json!(true));
        assert_eq!(v["zip"], "007");
        assert_eq!(v["big"], "123456789012345678901234567890");
        assert_eq!(v["neg"], serde_json::json!(-3));
        assert_eq!(v["word"], "TRUE");
        assert_eq!(v["untyped"], "5");
        let r = runner("typed: ['*']");
        let v = one(&r, "", &[("a", "1"), ("b", "x")]).await;
        assert_eq!(v, serde_json::json!({"a": 1, "b": "x"}));
    }

    #[tokio::test]
    async fn core_fields_are_numbers() {
        let r = runner("include_core: true\ninclude: [keep]");
        let id = r.enqueue("12345", &[("keep", "k"), ("drop", "d")]);
        r.run_once().await.unwrap();
        let out = r.take(SUCCESS);
        let v: Value = serde_json::from_str(&TestRunner::text(&out[0])).unwrap();
        assert_eq!(v["flowfile.id"], serde_json::json!(id));
        assert_eq!(v["flowfile.size"], serde_json::json!(5));
        assert!(
            v["flowfile.entry_date"]
                .as_u64()
                .is_some_and(|t| t > 1_600_000_000_000)
        );
        assert!(v["flowfile.lineage_start"].is_u64());
        assert_eq!(v["keep"], "k");
        assert!(v.get("drop").is_none());
    }

    #[tokio::test]
    async fn nested_objects_and_conflicts_go_to_failure() {
        let r = runner("nested: true\ntyped: [http.status]");
        let v = one(
            &r,
            "",
            &[
                ("http.method", "GET"),
                ("http.status", "200"),
                ("plain", "p"),
                ("odd..name", "o"),
            ],
        )
        .await;
        assert_eq!(
            v,
            serde_json::json!({"http": {"method": "GET", "status": 200}, "plain": "p", "odd..name": "o"})
        );
        // `a` has a value and is the parent of `a.b`: both orders fail.
        for attrs in [[("a", "1"), ("a.b", "2")], [("a.b", "2"), ("a.b.c", "3")]] {
            r.enqueue("body", &attrs);
            r.run_once().await.unwrap();
            let failed = r.take(FAILURE);
            assert_eq!(failed.len(), 1);
            assert!(
                failed[0]
                    .attr("json.error")
                    .is_some_and(|e| e.contains("parent")),
                "{failed:?}"
            );
            assert_eq!(
                TestRunner::text(&failed[0]),
                "body",
                "content untouched on failure"
            );
        }
    }

    #[tokio::test]
    async fn to_attribute_keeps_the_content() {
        let r = runner("destination: attribute\ninclude: [a]");
        r.enqueue("body", &[("a", "1")]);
        r.run_once().await.unwrap();
        let out = r.take(SUCCESS);
        assert_eq!(TestRunner::text(&out[0]), "body");
        assert_eq!(out[0].attr("JSONAttributes"), Some(r#"{"a":"1"}"#));
        assert_eq!(out[0].attr("mime.type"), None);
        let r = runner("destination: attribute\nattribute_name: j\ninclude: [a]");
        r.enqueue("", &[("a", "1")]);
        r.run_once().await.unwrap();
        assert_eq!(r.take(SUCCESS)[0].attr("j"), Some(r#"{"a":"1"}"#));
    }

    /// The flat writer gives exactly the text serde_json gives for the same
    /// object (keys sorted, same escapes and numbers), core fields and
    /// content sorted in among the attributes.
    #[tokio::test]
    async fn default_text_is_exactly_serde_jsons_of_the_attributes() {
        let r = runner("{}");
        let attrs = [
            ("zz", "last"),
            ("a\"k", "x\ty\u{7f}é"),
            ("n", "-12"),
            (
                "syslog.message",
                "say \"hi\" \\ and 32 bytes or more, to cross a chunk",
            ),
            ("u", "é\u{7f}🦀\u{1}"),
        ];
        r.enqueue("content is not written", &attrs);
        r.run_once().await.unwrap();
        let out = r.take(SUCCESS);
        let want: std::collections::BTreeMap<&str, &str> = attrs.into_iter().collect();
        assert_eq!(
            TestRunner::text(&out[0]),
            serde_json::to_string(&want).unwrap()
        );
    }

    #[tokio::test]
    async fn flat_text_is_exactly_serde_jsons() {
        let r = runner("include_core: true\ninclude_content: true\ntyped: [n, f, b]");
        r.enqueue(
            "body \"q\"\n\u{1}",
            &[
                ("zz", "last"),
                ("content", "replaced"),
                ("a\"k", "x\ty\u{7f}é"),
                ("n", "-12"),
                ("f", "1e3"),
                ("b", "false"),
                ("flowfile.zzz", "between"),
                ("u", "é\u{7f}🦀 and 32 bytes or more, to cross a chunk"),
            ],
        );
        r.run_once().await.unwrap();
        let out = r.take(SUCCESS);
        let text = TestRunner::text(&out[0]);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), text);
        assert_eq!(v["content"], "body \"q\"\n\u{1}");
        assert_eq!(v["f"], serde_json::json!(1000.0));
        assert_eq!(v["flowfile.zzz"], "between");
        assert_eq!(v["u"], "é\u{7f}🦀 and 32 bytes or more, to cross a chunk");
    }

    #[tokio::test]
    async fn include_content_is_lossy_utf8() {
        let r = runner("include_content: true\ninclude: [a, content]");
        r.enqueue(
            vec![b'h', b'i', 0xff, b'"'],
            &[("a", "1"), ("content", "attr")],
        );
        r.run_once().await.unwrap();
        let out = r.take(SUCCESS);
        let v: Value = serde_json::from_str(&TestRunner::text(&out[0])).unwrap();
        assert_eq!(v["content"], "hi\u{fffd}\"");
        assert_eq!(v["a"], "1");
    }
}
