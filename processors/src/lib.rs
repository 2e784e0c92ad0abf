//! Sluice processors and the registry that maps flow `type:` names to them.
//!
//! One module per processor type, each in the same order: module doc with an
//! example, relationship constants, property descriptors, the registry entry
//! (`*Type`: validate, build), the processor (`on_trigger`), tests.

use std::sync::Arc;

use sluice_runtime::Registry;

mod consume_kafka;
mod control_rate;
mod detect_duplicate;
mod kafka_client;
mod merge_content;
mod publish_kafka;
mod update_attribute;

/// Every processor type Sluice ships.
#[must_use]
pub fn registry() -> Registry {
    Registry::new(vec![
        Arc::new(update_attribute::UpdateAttributeType),
        Arc::new(control_rate::ControlRateType),
        Arc::new(detect_duplicate::DetectDuplicateType),
        Arc::new(merge_content::MergeContentType),
        Arc::new(publish_kafka::PublishKafkaType),
        Arc::new(consume_kafka::ConsumeKafkaType),
    ])
}

/// Test helper: validated properties of `kind` from a YAML mapping.
///
/// # Panics
/// If the YAML does not validate (a test mistake).
#[cfg(test)]
pub(crate) fn test_props(
    kind: &dyn sluice_runtime::ProcessorType,
    yaml: &str,
) -> sluice_runtime::Properties {
    sluice_runtime::testing::props_from_yaml(kind, &registry(), yaml)
        .unwrap_or_else(|e| panic!("invalid test properties:\n{e}"))
}
