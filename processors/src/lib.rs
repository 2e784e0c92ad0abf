//! Sluice processors and the registry that maps flow `type:` names to them.
//!
//! One module per processor type, each in the same order: module doc with an
//! example, relationship constants, property descriptors, the registry entry
//! (`*Type`: validate, build), the processor (`on_trigger`), tests.

use std::sync::Arc;

use sluice_runtime::Registry;

mod append_file;
mod attributes_to_json;
mod consume_kafka;
mod control_rate;
mod detect_duplicate;
mod format_template;
mod generate_flowfile;
mod intern;
mod kafka_client;
mod listen_http;
mod listen_syslog;
mod log_attribute;
mod merge_content;
mod name_pattern;
mod outbound;
mod parse_syslog;
mod publish_kafka;
mod put_file;
mod route_on_attribute;
mod route_on_severity;
mod split_json;
mod syslog_fast;
mod syslog_parse;
mod update_attribute;

/// Every processor type Sluice ships.
#[must_use]
pub fn registry() -> Registry {
    Registry::new(vec![
        Arc::new(generate_flowfile::GenerateFlowFileType),
        Arc::new(listen_http::ListenHttpType),
        Arc::new(update_attribute::UpdateAttributeType),
        Arc::new(outbound::put_http::PutHttpType),
        Arc::new(outbound::put_slack::PutSlackType),
        Arc::new(outbound::put_ftp::PutFtpType),
        Arc::new(outbound::put_s3_object::PutS3ObjectType),
        Arc::new(outbound::put_email::PutEmailType),
        Arc::new(route_on_attribute::RouteOnAttributeType),
        Arc::new(split_json::SplitJsonType),
        Arc::new(attributes_to_json::AttributesToJsonType),
        Arc::new(format_template::FormatTemplateType),
        Arc::new(put_file::PutFileType),
        Arc::new(append_file::AppendFileType),
        Arc::new(log_attribute::LogAttributeType),
        Arc::new(listen_syslog::ListenSyslogType),
        Arc::new(parse_syslog::ParseSyslogType),
        Arc::new(route_on_severity::RouteOnSeverityType),
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

/// A [`TestRunner`](sluice_runtime::testing::TestRunner) for `kind` with
/// these YAML properties and the default scheduling.
///
/// # Panics
/// If the YAML does not validate or the processor does not build (a test mistake).
#[cfg(test)]
pub(crate) fn test_runner(
    kind: &dyn sluice_runtime::ProcessorType,
    yaml: &str,
) -> sluice_runtime::testing::TestRunner {
    let props = test_props(kind, yaml);
    sluice_runtime::testing::TestRunner::with_properties(
        kind,
        props,
        sluice_runtime::Scheduling::default(),
    )
    .unwrap_or_else(|e| panic!("test processor does not build: {e}"))
}
