//! UpdateAttribute: sets attributes from templates and deletes attributes.
//!
//! Templates see the attributes as they were when the FlowFile arrived, so
//! the order of `set` entries does not matter.
//!
//! ```yaml
//! tag:
//!   type: UpdateAttribute
//!   properties:
//!     set:
//!       environment: production
//!       colour: "{{#if (lte (num syslog.severity) 3)}}danger{{else}}good{{/if}}"
//!     delete: [http.headers.cookie]
//! ```

use sluice_runtime::{
    AttrStr, BuildContext, BuildError, Escape, InputRequirement, Level, ProcessContext,
    ProcessError, ProcessSession, Processor, ProcessorType, PropKind, Properties,
    PropertyDescriptor, RelationshipDef, Template, async_trait,
};

/// Every FlowFile goes here.
pub const SUCCESS: &str = "success";

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::optional(
        "set",
        PropKind::MapOf(&PropKind::Template),
        None,
        "Attributes to set: name -> template over the incoming attributes.",
    ),
    PropertyDescriptor::optional(
        "delete",
        PropKind::ListOf(&PropKind::NonEmpty),
        None,
        "Attribute names to remove.",
    ),
];

/// The registry entry.
pub struct UpdateAttributeType;

impl ProcessorType for UpdateAttributeType {
    fn name(&self) -> &'static str {
        "UpdateAttribute"
    }
    fn description(&self) -> &'static str {
        "Sets attributes from handlebars templates over the incoming attributes (and `{{content}}`, the content as text) and removes attributes by name."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new(SUCCESS, "Every FlowFile, updated.")]
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let mut set = Vec::new();
        for (name, src) in props.map("set")? {
            let t = Template::compile(&src, Escape::None)
                .map_err(|e| BuildError::Other(format!("set.{name}: {e}")))?;
            // A value without `{{` is built once and shared by every FlowFile.
            let value = match t.literal() {
                Some(text) => Value::Literal(AttrStr::constant(text)),
                None => Value::Template(t),
            };
            set.push((AttrStr::constant(&name), value));
        }
        let uses_content = set
            .iter()
            .any(|(_, v)| matches!(v, Value::Template(t) if t.uses_content()));
        Ok(Box::new(UpdateAttribute {
            set,
            delete: props.list("delete")?,
            uses_content,
        }))
    }
    fn example(&self) -> &'static str {
        "set:\n  environment: production\n  colour: \"{{#if (lte (num syslog.severity) 3)}}danger{{else}}good{{/if}}\"\ndelete: [http.headers.cookie]"
    }
}

/// What one `set` entry writes.
enum Value {
    Literal(AttrStr),
    Template(Template),
}

struct UpdateAttribute {
    set: Vec<(AttrStr, Value)>,
    delete: Vec<String>,
    uses_content: bool,
}

#[async_trait]
impl Processor for UpdateAttribute {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        for mut ff in session.get_batch(ctx.scheduling().batch_size) {
            let original = ff.attributes.clone();
            // `{{content}}` is the content as text, read only when a template uses it.
            // Valid UTF-8 is borrowed, not copied.
            let bytes = if self.uses_content {
                Some(session.read(&ff)?)
            } else {
                None
            };
            // `from_utf8` checks ASCII a word at a time; `from_utf8_lossy`
            // walks byte by byte even when there is nothing to replace.
            let content = bytes.as_deref().map(|b| match std::str::from_utf8(b) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(b),
            });
            for (name, value) in &self.set {
                let t = match value {
                    Value::Literal(v) => {
                        ff.attributes.insert(name.clone(), v.clone());
                        continue;
                    }
                    Value::Template(t) => t,
                };
                match t.render_shared(&original, content.as_deref()) {
                    Ok(v) => ff.attributes.insert(name.clone(), v),
                    Err(e) => {
                        // Helpers can fail on odd input; say so on the FlowFile
                        // and to the operator rather than guess a value.
                        ctx.bulletin(Level::Warn, format!("set.{name}: {e}"));
                        ff.attributes.insert("update.error", e.to_string());
                    }
                }
            }
            for d in &self.delete {
                ff.attributes.remove(d);
            }
            session.transfer(ff, SUCCESS);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::testing::{TestRunner, check_type_contract};

    #[test]
    fn contract() {
        check_type_contract(&UpdateAttributeType, &crate::registry()).unwrap();
    }

    #[tokio::test]
    async fn sets_from_original_attributes_and_deletes() {
        let yaml = "set:\n  a: \"{{b}}-x\"\n  b: new\ndelete: [gone]\n";
        let props = crate::test_props(&UpdateAttributeType, yaml);
        let r = TestRunner::with_properties(
            &UpdateAttributeType,
            props,
            sluice_runtime::Scheduling::default(),
        )
        .unwrap();
        r.enqueue("body", &[("b", "old"), ("gone", "1")]);
        r.run_once().await.unwrap();
        let out = r.take(SUCCESS);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].attr("a"), Some("old-x"));
        assert_eq!(out[0].attr("b"), Some("new"));
        assert_eq!(out[0].attr("gone"), None);
        assert_eq!(TestRunner::text(&out[0]), "body");
    }
}
