//! Handlebars templates over FlowFile attributes.
//!
//! Attribute names contain dots (`syslog.severity`), which handlebars would
//! read as a path into nested objects. After compiling, every plain path such
//! as `syslog.severity` is folded into one key, so `{{syslog.severity}}` means
//! the attribute of that name. `{{content}}` is the content as text where the
//! property says templates see content.
//!
//! Helpers beyond handlebars' built-ins (`eq`, `lt`, `and`, `if`, ...):
//! `json` (a JSON string literal, quotes included), `num` (text to number, for
//! comparisons), `upper`, `lower`, `default`, `truncate`, `replace`, `now`
//! (current time, RFC 3339, or a strftime format), `date` (format an RFC 3339
//! or epoch-ms value), `uuid` (a new random UUID, version 4, for names that
//! must not collide, such as object keys).

use std::fmt::Write as _;
use std::sync::Arc;

use handlebars::template::{Parameter, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, Path, PathSeg, RenderContext, RenderError,
    RenderErrorReason, Template as HbTemplate, handlebars_helper,
};
use serde_json::{Map, Value};

use crate::attributes::{AttrStr, Attributes};

/// How rendered values are escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Escape {
    /// As is.
    #[default]
    None,
    /// For use inside a JSON string literal (quotes not added).
    Json,
    /// HTML entities (for mail bodies and web pages).
    Html,
}

/// A template failed to compile or render.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Bad syntax.
    #[error("bad template: {0}")]
    Compile(String),
    /// Rendering failed (a helper got bad arguments, ...).
    #[error("template could not be rendered: {0}")]
    Render(String),
}

/// A compiled template.
#[derive(Clone)]
pub struct Template {
    registry: Arc<Handlebars<'static>>,
    source: String,
    literal: Option<String>,
    /// Set when the template is only text and plain `{{name}}` lookups.
    plain: Option<Arc<[Piece]>>,
    escape: Escape,
    uses_content: bool,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

const NAME: &str = "t";

handlebars_helper!(upper: |s: str| s.to_uppercase());
handlebars_helper!(lower: |s: str| s.to_lowercase());
handlebars_helper!(json_literal: |v: Json| match v {
    Value::String(s) => Value::String(serde_json::to_string(s).unwrap_or_default()),
    other => Value::String(other.to_string()),
});
handlebars_helper!(num: |v: Json| match v {
    Value::String(s) => s.trim().parse::<i64>().map(Value::from)
        .or_else(|_| s.trim().parse::<f64>().map(Value::from))
        .unwrap_or(Value::Null),
    Value::Number(_) => v.clone(),
    _ => Value::Null,
});
handlebars_helper!(default_helper: |v: Json, d: Json| match v {
    Value::Null => d.clone(),
    Value::String(s) if s.is_empty() => d.clone(),
    _ => v.clone(),
});
handlebars_helper!(truncate: |s: str, n: u64| {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    s.chars().take(n).collect::<String>()
});
handlebars_helper!(replace: |s: str, from: str, to: str| s.replace(from, to));

fn now_helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let now = chrono::Utc::now();
    let text = match h.param(0).and_then(|p| p.value().as_str()) {
        Some(fmt) => now.format(fmt).to_string(),
        None => now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    out.write(&text)?;
    Ok(())
}

fn uuid_helper(
    _: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&random_uuid())?;
    Ok(())
}

/// A random (version 4, RFC 9562) UUID in its hyphenated lower-case form.
fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut hex = String::with_capacity(32);
    for x in b {
        let _ = write!(hex, "{x:02x}");
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn date_helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let value = h.param(0).map_or(Value::Null, |p| p.value().clone());
    let fmt = h
        .param(1)
        .and_then(|p| p.value().as_str().map(str::to_string))
        .ok_or_else(|| RenderErrorReason::ParamNotFoundForIndex("date", 1))?;
    let parsed = match &value {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .map(|d| d.with_timezone(&chrono::Utc))
            .ok()
            .or_else(|| {
                s.trim()
                    .parse::<i64>()
                    .ok()
                    .and_then(chrono::DateTime::from_timestamp_millis)
            }),
        Value::Number(n) => n.as_i64().and_then(chrono::DateTime::from_timestamp_millis),
        _ => None,
    };
    let d = parsed.unwrap_or_else(chrono::Utc::now);
    out.write(&d.format(&fmt).to_string())?;
    Ok(())
}

fn escape_json(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

fn base_registry(escape: Escape) -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(false);
    match escape {
        Escape::None => hb.register_escape_fn(handlebars::no_escape),
        Escape::Json => hb.register_escape_fn(escape_json),
        Escape::Html => hb.register_escape_fn(handlebars::html_escape),
    }
    hb.register_helper("upper", Box::new(upper));
    hb.register_helper("lower", Box::new(lower));
    hb.register_helper("json", Box::new(json_literal));
    hb.register_helper("num", Box::new(num));
    hb.register_helper("default", Box::new(default_helper));
    hb.register_helper("truncate", Box::new(truncate));
    hb.register_helper("replace", Box::new(replace));
    hb.register_helper("now", Box::new(now_helper));
    hb.register_helper("date", Box::new(date_helper));
    hb.register_helper("uuid", Box::new(uuid_helper));
    hb
}

/// Folds `a.b.c` paths into the single key `a.b.c`; returns whether `content` is used.
fn fold_paths(t: &mut HbTemplate) -> bool {
    let mut uses_content = false;
    for el in &mut t.elements {
        match el {
            TemplateElement::Expression(h)
            | TemplateElement::HtmlExpression(h)
            | TemplateElement::HelperBlock(h) => {
                uses_content |= fold_param(&mut h.name);
                for p in &mut h.params {
                    uses_content |= fold_param(p);
                }
                for p in h.hash.values_mut() {
                    uses_content |= fold_param(p);
                }
                if let Some(t) = &mut h.template {
                    uses_content |= fold_paths(t);
                }
                if let Some(t) = &mut h.inverse {
                    uses_content |= fold_paths(t);
                }
            }
            _ => {}
        }
    }
    uses_content
}

fn fold_param(p: &mut Parameter) -> bool {
    match p {
        Parameter::Path(Path::Relative((segs, raw))) => {
            let named: Option<Vec<&str>> = segs
                .iter()
                .map(|s| match s {
                    PathSeg::Named(n) => Some(n.as_str()),
                    _ => None,
                })
                .collect();
            if let Some(named) = named {
                if named.len() > 1 && named[0] != "this" {
                    let key = named.join(".");
                    *segs = vec![PathSeg::Named(key)];
                }
                return raw == "content";
            }
            false
        }
        Parameter::Subexpression(sub) => {
            // Subexpressions keep their parameters inside a helper template.
            let mut uses = false;
            if let TemplateElement::Expression(h) = sub.element.as_mut() {
                for p in &mut h.params {
                    uses |= fold_param(p);
                }
                for p in h.hash.values_mut() {
                    uses |= fold_param(p);
                }
            }
            uses
        }
        _ => false,
    }
}

/// One piece of a template made only of text and plain `{{name}}` lookups.
#[derive(Clone, Debug)]
enum Piece {
    Text(String),
    /// An attribute (or `content`); `escape` is false for `{{{name}}}`.
    Value {
        key: String,
        escape: bool,
    },
}

/// The pieces of `tpl` when it is only text and plain value lookups (no
/// helpers, blocks, partials or paths into objects), so it can be rendered
/// straight from the attributes without building a JSON context. Whether a
/// name is a value or a helper is asked of the registry itself: the template
/// is rendered once over probe values and must give back exactly the probes.
fn plain_pieces(hb: &Handlebars<'static>, tpl: &HbTemplate) -> Option<Vec<Piece>> {
    let mut pieces = Vec::new();
    for el in &tpl.elements {
        match el {
            TemplateElement::RawString(s) => pieces.push(Piece::Text(s.clone())),
            TemplateElement::Comment(_) => {}
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                if !h.params.is_empty()
                    || !h.hash.is_empty()
                    || h.block
                    || h.template.is_some()
                    || h.inverse.is_some()
                {
                    return None;
                }
                let Parameter::Path(Path::Relative((segs, _))) = &h.name else {
                    return None;
                };
                let [PathSeg::Named(key)] = segs.as_slice() else {
                    return None;
                };
                pieces.push(Piece::Value {
                    key: key.clone(),
                    escape: matches!(el, TemplateElement::Expression(_)),
                });
            }
            _ => return None,
        }
    }
    let probe = |i: usize| format!("sluiceprobe{i}x");
    let mut ctx = Map::new();
    let mut expected = String::new();
    for (i, p) in pieces.iter().enumerate() {
        match p {
            Piece::Text(s) => expected.push_str(s),
            Piece::Value { key, .. } => {
                let v = ctx
                    .entry(key.clone())
                    .or_insert_with(|| Value::String(probe(i)));
                expected.push_str(v.as_str().unwrap_or_default());
            }
        }
    }
    let got = hb.render(NAME, &Value::Object(ctx)).ok()?;
    (got == expected).then_some(pieces)
}

impl Template {
    /// Compiles `source`.
    ///
    /// # Errors
    /// Bad handlebars syntax.
    pub fn compile(source: &str, escape: Escape) -> Result<Self, TemplateError> {
        let mut hb = base_registry(escape);
        let mut tpl =
            HbTemplate::compile(source).map_err(|e| TemplateError::Compile(e.to_string()))?;
        let uses_content = fold_paths(&mut tpl);
        let literal = if source.contains("{{") {
            None
        } else {
            Some(source.to_string())
        };
        let pieces = tpl.clone();
        hb.register_template(NAME, tpl);
        let plain = plain_pieces(&hb, &pieces).map(Arc::from);
        Ok(Self {
            registry: Arc::new(hb),
            source: source.to_string(),
            literal,
            plain,
            escape,
            uses_content,
        })
    }

    /// The text of a template without any `{{...}}`: it renders to itself.
    #[must_use]
    pub fn literal(&self) -> Option<&str> {
        self.literal.as_deref()
    }

    /// The source text.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template refers to `content`.
    #[must_use]
    pub fn uses_content(&self) -> bool {
        self.uses_content
    }

    /// Renders over `attrs`.
    ///
    /// # Errors
    /// A helper failed.
    pub fn render(&self, attrs: &Attributes) -> Result<String, TemplateError> {
        self.render_with(attrs, None, &[])
    }

    /// Renders over `attrs`, with `content` available as `{{content}}` and
    /// `extra` values added (they win over attributes).
    ///
    /// # Errors
    /// A helper failed.
    pub fn render_with(
        &self,
        attrs: &Attributes,
        content: Option<&str>,
        extra: &[(&str, Value)],
    ) -> Result<String, TemplateError> {
        if let Some(l) = &self.literal {
            return Ok(l.clone());
        }
        if let (Some(pieces), true) = (&self.plain, extra.is_empty()) {
            let mut out = String::new();
            self.render_plain(pieces, attrs, content, &mut out);
            return Ok(out);
        }
        let mut map = Map::with_capacity(attrs.len() + 1 + extra.len());
        for (k, v) in attrs.iter() {
            map.insert(k.to_string(), Value::String(v.to_string()));
        }
        if let Some(c) = content {
            map.insert("content".into(), Value::String(c.to_string()));
        }
        for (k, v) in extra {
            map.insert((*k).to_string(), v.clone());
        }
        self.registry
            .render(NAME, &Value::Object(map))
            .map_err(|e: RenderError| TemplateError::Render(e.to_string()))
    }

    /// Renders over `attrs` (with `content` as `{{content}}`) and appends
    /// the text to `out`: a caller rendering a template for every FlowFile
    /// of a batch can reuse one buffer.
    ///
    /// # Errors
    /// A helper failed.
    pub fn render_into(
        &self,
        attrs: &Attributes,
        content: Option<&str>,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        if let Some(l) = &self.literal {
            out.push_str(l);
        } else if let Some(pieces) = &self.plain {
            self.render_plain(pieces, attrs, content, out);
        } else {
            out.push_str(&self.render_with(attrs, content, &[])?);
        }
        Ok(())
    }

    /// Renders to an attribute value. A template that is one plain lookup
    /// with nothing to escape (`{{name}}`) shares the value it names rather
    /// than copying it.
    ///
    /// # Errors
    /// A helper failed.
    pub fn render_shared(
        &self,
        attrs: &Attributes,
        content: Option<&str>,
    ) -> Result<AttrStr, TemplateError> {
        if let Some(pieces) = &self.plain
            && let [Piece::Value { key, escape }] = &pieces[..]
            && (!*escape || matches!(self.escape, Escape::None))
        {
            return Ok(match content {
                Some(c) if key == "content" => AttrStr::from(c),
                _ => attrs
                    .get_shared(key)
                    .cloned()
                    .unwrap_or_else(|| AttrStr::from("")),
            });
        }
        let mut out = String::new();
        self.render_into(attrs, content, &mut out)?;
        Ok(AttrStr::from(out))
    }

    /// Renders text and plain lookups without a JSON context; the same
    /// output as handlebars gives (missing values are empty).
    fn render_plain(
        &self,
        pieces: &[Piece],
        attrs: &Attributes,
        content: Option<&str>,
        out: &mut String,
    ) {
        for p in pieces {
            match p {
                Piece::Text(s) => out.push_str(s),
                Piece::Value { key, escape } => {
                    let value = match content {
                        Some(c) if key == "content" => Some(c),
                        _ => attrs.get(key),
                    };
                    let Some(v) = value else { continue };
                    match (escape, self.escape) {
                        (false, _) | (true, Escape::None) => out.push_str(v),
                        (true, Escape::Json) => out.push_str(&escape_json(v)),
                        (true, Escape::Html) => out.push_str(&handlebars::html_escape(v)),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Attributes {
        [
            ("syslog.severity", "3"),
            ("syslog.hostname", "web-1"),
            ("msg", "say \"hi\"\n"),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn dotted_names_are_attributes() {
        let t = Template::compile("{{syslog.hostname}}:{{syslog.severity}}", Escape::None).unwrap();
        assert_eq!(t.render(&attrs()).unwrap(), "web-1:3");
    }

    #[test]
    fn dotted_names_work_in_helpers_and_blocks() {
        let t = Template::compile(
            "{{#if (lte (num syslog.severity) 3)}}red{{else}}green{{/if}} {{upper syslog.hostname}}",
            Escape::None,
        )
        .unwrap();
        assert_eq!(t.render(&attrs()).unwrap(), "red WEB-1");
    }

    #[test]
    fn json_escaping() {
        let t = Template::compile("{\"m\":\"{{msg}}\"}", Escape::Json).unwrap();
        let out = t.render(&attrs()).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["m"], "say \"hi\"\n");
        let t = Template::compile("{\"m\":{{json msg}}}", Escape::None).unwrap();
        let v: Value = serde_json::from_str(&t.render(&attrs()).unwrap()).unwrap();
        assert_eq!(v["m"], "say \"hi\"\n");
    }

    #[test]
    fn content_and_missing_values() {
        let t = Template::compile(
            "[{{content}}][{{nope}}][{{default nope \"d\"}}]",
            Escape::None,
        )
        .unwrap();
        assert!(t.uses_content());
        assert_eq!(
            t.render_with(&attrs(), Some("body"), &[]).unwrap(),
            "[body][][d]"
        );
    }

    /// Renders through handlebars itself, skipping the plain fast path.
    fn slow(t: &Template, attrs: &Attributes, content: Option<&str>) -> String {
        let mut t = t.clone();
        t.plain = None;
        t.render_with(attrs, content, &[]).unwrap()
    }

    #[test]
    fn plain_templates_render_as_handlebars_does_without_it() {
        let mut a = attrs();
        a.insert("html", "<b>&'\"</b>");
        a.insert("content", "attribute named content");
        for escape in [Escape::None, Escape::Json, Escape::Html] {
            for src in [
                "{{syslog.hostname}}",
                "[{{content}}] {{msg}} {{{msg}}} {{html}} {{{html}}} [{{missing}}] {{! comment }}x",
                "a {{~ syslog.severity ~}} b",
                "{{syslog.severity}}{{syslog.severity}}",
            ] {
                let t = Template::compile(src, escape).unwrap();
                assert!(t.plain.is_some(), "{src} is plain");
                for content in [None, Some("body \"q\" <i>")] {
                    let want = slow(&t, &a, content);
                    assert_eq!(
                        t.render_with(&a, content, &[]).unwrap(),
                        want,
                        "{src} with {escape:?}"
                    );
                    let shared = t.render_shared(&a, content).unwrap();
                    assert_eq!(&*shared, want, "render_shared {src} with {escape:?}");
                    let mut into = String::from("kept:");
                    t.render_into(&a, content, &mut into).unwrap();
                    assert_eq!(into, format!("kept:{want}"), "render_into {src}");
                }
            }
        }
    }

    #[test]
    fn a_single_lookup_shares_the_value_it_names() {
        let a = attrs();
        let t = Template::compile("{{syslog.hostname}}", Escape::None).unwrap();
        let shared = t.render_shared(&a, None).unwrap();
        assert!(AttrStr::ptr_eq(
            &shared,
            a.get_shared("syslog.hostname").unwrap()
        ));
        // What needs escaping is rendered, not shared.
        let mut b = attrs();
        b.insert("q", "say \"hi\"");
        let t = Template::compile("{{q}}", Escape::Json).unwrap();
        assert_eq!(&*t.render_shared(&b, None).unwrap(), "say \\\"hi\\\"");
        // Helpers still go through handlebars.
        let t = Template::compile("{{upper syslog.hostname}}", Escape::None).unwrap();
        assert_eq!(&*t.render_shared(&a, None).unwrap(), t.render(&a).unwrap());
    }

    #[test]
    fn helpers_paths_and_blocks_are_not_plain() {
        for src in [
            "{{now}}",
            "{{upper msg}}",
            "{{#if msg}}x{{/if}}",
            "{{this}}",
            "{{@index}}",
            "{{../up}}",
            "{{lookup this \"msg\"}}",
        ] {
            let t = Template::compile(src, Escape::None).unwrap();
            assert!(t.plain.is_none(), "{src} must go through handlebars");
        }
        // A name that is a helper is called, not looked up.
        let t = Template::compile("{{now}}", Escape::None).unwrap();
        let mut a = attrs();
        a.insert("now", "attribute");
        assert_ne!(t.render(&a).unwrap(), "attribute");
    }

    #[test]
    fn uuid_is_a_new_version_4_uuid_each_render() {
        let t = Template::compile("log-{{uuid}}.gz", Escape::None).unwrap();
        let a = t.render(&attrs()).unwrap();
        let b = t.render(&attrs()).unwrap();
        assert_ne!(a, b);
        let id = a
            .strip_prefix("log-")
            .and_then(|r| r.strip_suffix(".gz"))
            .unwrap();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(
            id.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert!(groups[2].starts_with('4'), "version nibble: {id}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "variant bits: {id}"
        );
    }

    #[test]
    fn bad_syntax_is_an_error() {
        assert!(Template::compile("{{#if x}}unclosed", Escape::None).is_err());
    }
}
