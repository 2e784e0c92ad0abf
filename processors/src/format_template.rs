//! FormatTemplate: renders new content (or an attribute) from a handlebars
//! template over the attributes and the current content (Sluice's ReplaceText).
//!
//! `{{content}}` is the current content as text (invalid UTF-8 replaced by
//! U+FFFD); it is only read when the template uses it. `escape` applies to
//! every `{{value}}` (attributes and content alike): `json` makes values safe
//! inside a JSON string literal, `html` inside HTML. Triple braces
//! `{{{value}}}` insert a value unescaped, and the `json` helper writes a
//! complete JSON string literal (quotes included) whatever `escape` is.
//!
//! A render error (a helper given bad input) sends the FlowFile, unchanged, to
//! `failure` with the attribute `format.error`.
//!
//! ```yaml
//! format:
//!   type: FormatTemplate
//!   properties:
//!     template: '{"host": "{{syslog.hostname}}", "message": "{{content}}"}'
//!     escape: json
//!     mime_type: application/json
//! ```

use sluice_runtime::{
    BuildContext, BuildError, Escape, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    PropertyError, RelationshipDef, Template, async_trait,
};

/// FlowFiles with the rendered text.
pub const SUCCESS: &str = "success";
/// FlowFiles whose template failed to render (`format.error` says why).
pub const FAILURE: &str = "failure";

const ESCAPES: &[&str] = &["none", "json", "html"];
const DESTINATIONS: &[&str] = &["content", "attribute"];

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        "template",
        PropKind::Template,
        "Handlebars template over the attributes; `{{content}}` is the current content.",
    ),
    PropertyDescriptor::optional(
        "escape",
        PropKind::Choice(ESCAPES),
        Some("none"),
        "How inserted values are escaped: none, json (inside a JSON string) or html.",
    ),
    PropertyDescriptor::optional(
        "destination",
        PropKind::Choice(DESTINATIONS),
        Some("content"),
        "Where the text goes: `content`, or `attribute` (see attribute_name).",
    ),
    PropertyDescriptor::optional(
        "attribute_name",
        PropKind::NonEmpty,
        None,
        "The attribute that receives the text; required with `destination: attribute`.",
    ),
    PropertyDescriptor::optional(
        "mime_type",
        PropKind::NonEmpty,
        None,
        "Sets `mime.type` to this value (with `destination: content`).",
    ),
];

/// The registry entry.
pub struct FormatTemplateType;

fn escape_of(name: &str) -> Escape {
    match name {
        "json" => Escape::Json,
        "html" => Escape::Html,
        _ => Escape::None,
    }
}

impl ProcessorType for FormatTemplateType {
    fn name(&self) -> &'static str {
        "FormatTemplate"
    }
    fn description(&self) -> &'static str {
        "Renders new content, or an attribute, from a handlebars template over the attributes and the current content, with JSON or HTML escaping."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(SUCCESS, "FlowFiles with the rendered text."),
            RelationshipDef::new(
                FAILURE,
                "FlowFiles whose template failed to render; `format.error` says why.",
            ),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        let to_attr = props.str("destination").ok() == Some("attribute");
        let mut errs = Vec::new();
        if to_attr && props.raw("attribute_name").is_none() {
            errs.push(PropertyError {
                name: "attribute_name".into(),
                message: "is required with `destination: attribute`".into(),
                pos: props.raw("destination").map(sluice_runtime::PropValue::pos),
            });
        }
        if to_attr && props.raw("mime_type").is_some() {
            errs.push(PropertyError {
                name: "mime_type".into(),
                message: "only applies with `destination: content`".into(),
                pos: props.raw("mime_type").map(sluice_runtime::PropValue::pos),
            });
        }
        errs
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let template = Template::compile(props.str("template")?, escape_of(props.str("escape")?))
            .map_err(|e| BuildError::Other(format!("template: {e}")))?;
        let to_attribute = match props.str("destination")? {
            "attribute" => Some(props.str("attribute_name")?.to_string()),
            _ => None,
        };
        Ok(Box::new(FormatTemplate {
            template,
            to_attribute,
            mime_type: props.str_opt("mime_type")?.map(str::to_string),
        }))
    }
    fn example(&self) -> &'static str {
        "template: '{\"host\": \"{{syslog.hostname}}\", \"message\": \"{{content}}\"}'\nescape: json\nmime_type: application/json"
    }
}

struct FormatTemplate {
    template: Template,
    to_attribute: Option<String>,
    mime_type: Option<String>,
}

#[async_trait]
impl Processor for FormatTemplate {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        for mut ff in session.get_batch(ctx.scheduling().batch_size) {
            let rendered = if self.template.uses_content() {
                match session.read(&ff) {
                    Ok(bytes) => {
                        let text = String::from_utf8_lossy(&bytes);
                        self.template.render_with(&ff.attributes, Some(&text), &[])
                    }
                    Err(e) => {
                        ff.attributes.insert("format.error", e.message);
                        session.transfer(ff, FAILURE);
                        continue;
                    }
                }
            } else {
                self.template.render(&ff.attributes)
            };
            match rendered {
                Ok(text) => {
                    if let Some(name) = &self.to_attribute {
                        ff.attributes.insert(name.as_str(), text);
                    } else {
                        session.write(&mut ff, text);
                        if let Some(m) = &self.mime_type {
                            ff.attributes.insert("mime.type", m.as_str());
                        }
                    }
                    session.transfer(ff, SUCCESS);
                }
                Err(e) => {
                    ff.attributes.insert("format.error", e.to_string());
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
    use serde_json::Value;

    use sluice_runtime::testing::{TestRunner, check_type_contract, props_from_yaml};

    fn runner(yaml: &str) -> TestRunner {
        crate::test_runner(&FormatTemplateType, yaml)
    }

    async fn render(yaml: &str, content: &str, attrs: &[(&str, &str)]) -> sluice_runtime::FlowFile {
        let r = runner(yaml);
        r.enqueue(content.to_string(), attrs);
        r.run_once().await.unwrap();
        let mut out = r.take(SUCCESS);
        assert_eq!(out.len(), 1, "failure: {:?}", r.take(FAILURE));
        out.remove(0)
    }

    const HOSTILE: &str = "say \"hi\" \\ </b><script>alert('x')</script>\n\t\u{1} & é";

    #[test]
    fn contract() {
        check_type_contract(&FormatTemplateType, &crate::registry()).unwrap();
    }

    #[tokio::test]
    async fn renders_attributes_and_content_into_new_content() {
        let ff = render(
            "template: '[{{syslog.hostname}}] {{content}}'\nmime_type: text/plain",
            "body text",
            &[("syslog.hostname", "web-1")],
        )
        .await;
        assert_eq!(TestRunner::text(&ff), "[web-1] body text");
        assert_eq!(ff.attr("mime.type"), Some("text/plain"));
    }

    #[tokio::test]
    async fn json_escaping_of_hostile_attributes_and_content() {
        let ff = render(
            "template: '{\"host\": \"{{host}}\", \"message\": \"{{content}}\"}'\nescape: json",
            HOSTILE,
            &[("host", HOSTILE)],
        )
        .await;
        let v: Value = serde_json::from_str(&TestRunner::text(&ff)).unwrap();
        assert_eq!(v["host"], HOSTILE);
        assert_eq!(v["message"], HOSTILE);
    }

    #[tokio::test]
    async fn html_escaping_and_none() {
        let ff = render(
            "template: '<p>{{m}}</p>'\nescape: html",
            "",
            &[("m", HOSTILE)],
        )
        .await;
        let text = TestRunner::text(&ff);
        assert!(!text.contains("<script>"), "{text}");
        assert!(
            text.contains("&lt;script&gt;") && text.contains("&amp;"),
            "{text}"
        );
        let ff = render("template: '<p>{{m}}</p>'", "", &[("m", "<b>")]).await;
        assert_eq!(TestRunner::text(&ff), "<p><b></p>");
    }

    #[tokio::test]
    async fn to_attribute_leaves_content() {
        let ff = render(
            "template: '{{a}}-{{content}}'\ndestination: attribute\nattribute_name: out",
            "body",
            &[("a", "x")],
        )
        .await;
        assert_eq!(ff.attr("out"), Some("x-body"));
        assert_eq!(TestRunner::text(&ff), "body");
    }

    #[tokio::test]
    async fn render_error_goes_to_failure_unchanged() {
        let r = runner("template: '{{truncate a \"many\"}}'");
        r.enqueue("body", &[("a", "x")]);
        r.run_once().await.unwrap();
        assert!(r.take(SUCCESS).is_empty());
        let failed = r.take(FAILURE);
        assert_eq!(failed.len(), 1);
        assert_eq!(TestRunner::text(&failed[0]), "body");
        assert!(
            failed[0]
                .attr("format.error")
                .is_some_and(|e| e.contains("render")),
            "{failed:?}"
        );
    }

    #[test]
    fn attribute_destination_needs_a_name() {
        let reg = crate::registry();
        let err = props_from_yaml(
            &FormatTemplateType,
            &reg,
            "template: x\ndestination: attribute",
        )
        .unwrap_err();
        assert!(
            err.contains("attribute_name") && err.contains("required"),
            "{err}"
        );
        let err = props_from_yaml(&FormatTemplateType, &reg, "template: '{{#if x}}'").unwrap_err();
        assert!(err.contains("bad template"), "{err}");
    }
}
