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

use crate::attributes::Attributes;

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
        hb.register_template(NAME, tpl);
        Ok(Self {
            registry: Arc::new(hb),
            source: source.to_string(),
            literal,
            uses_content,
        })
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
