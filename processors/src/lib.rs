//! Sluice processors and the registry that maps flow `type:` names to them.
//!
//! One module per processor type, each in the same order: module doc with an
//! example, relationship constants, property descriptors, the registry entry
//! (`*Type`: validate, build), the processor (`on_trigger`), tests.

use std::sync::Arc;

use sluice_runtime::Registry;

mod outbound;
mod update_attribute;

/// Every processor type Sluice ships.
#[must_use]
pub fn registry() -> Registry {
    Registry::new(vec![
        Arc::new(update_attribute::UpdateAttributeType),
        Arc::new(outbound::put_http::PutHttpType),
        Arc::new(outbound::put_slack::PutSlackType),
        Arc::new(outbound::put_ftp::PutFtpType),
        Arc::new(outbound::put_s3_object::PutS3ObjectType),
        Arc::new(outbound::put_email::PutEmailType),
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
