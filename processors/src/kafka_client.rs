//! What PublishKafka and ConsumeKafka share: the librdkafka client
//! configuration built from their properties, and how Kafka errors and bytes
//! become attributes.

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use sluice_runtime::{PropValue, Properties, PropertyError};

/// Property: the brokers to bootstrap from.
pub const BOOTSTRAP: &str = "bootstrap_servers";
/// Property: librdkafka settings passed through as they are.
pub const CLIENT_PROPERTIES: &str = "client_properties";

fn prop_err(props: &Properties, name: &str, message: String) -> PropertyError {
    PropertyError {
        name: name.into(),
        message,
        pos: props.raw(name).map(PropValue::pos),
    }
}

/// Checks `bootstrap_servers` and each entry of `client_properties` against
/// librdkafka (no connection is made). `owned` names settings the processor
/// sets itself, which a client property may not override. Values never
/// appear in the messages: client properties often hold passwords.
pub fn validate(props: &Properties, owned: &[&str]) -> Vec<PropertyError> {
    let mut errs = Vec::new();
    let map = match props.map(CLIENT_PROPERTIES) {
        Ok(m) => m,
        Err(e) => return vec![e],
    };
    for (k, v) in &map {
        if k == "bootstrap.servers" || owned.contains(&k.as_str()) {
            errs.push(prop_err(
                props,
                CLIENT_PROPERTIES,
                format!("`{k}` is set by the processor and cannot be overridden here"),
            ));
            continue;
        }
        let mut one = ClientConfig::new();
        one.set(k.as_str(), v.as_str());
        if let Err(e) = one.create_native_config() {
            errs.push(prop_err(
                props,
                CLIENT_PROPERTIES,
                format!("librdkafka refused `{k}`: {}", redact(&e.to_string(), v)),
            ));
        }
    }
    errs
}

/// A client configuration: bootstrap servers, a client id, then the client
/// properties, then `fixed` (the processor's own settings, which win).
///
/// # Errors
/// A property cannot be read, or librdkafka refuses the result (with the
/// values of client properties redacted from the message).
pub fn config(
    props: &Properties,
    client_id: &str,
    fixed: &[(&str, String)],
) -> Result<ClientConfig, PropertyError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", props.str(BOOTSTRAP)?);
    c.set("client.id", client_id);
    let map = props.map(CLIENT_PROPERTIES)?;
    for (k, v) in &map {
        c.set(k.as_str(), v.as_str());
    }
    for (k, v) in fixed {
        c.set(*k, v.as_str());
    }
    if let Err(e) = c.create_native_config() {
        let mut msg = e.to_string();
        for (_, v) in &map {
            msg = redact(&msg, v);
        }
        return Err(prop_err(
            props,
            CLIENT_PROPERTIES,
            format!("librdkafka refused the configuration: {msg}"),
        ));
    }
    Ok(c)
}

fn redact(message: &str, secret: &str) -> String {
    if secret.is_empty() {
        message.to_string()
    } else {
        message.replace(secret, "***")
    }
}

/// The error code of a Kafka error, if it has one.
pub fn code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// Whether a produce error is about the message or the permissions, so that
/// sending it again cannot succeed. Everything else (broker down, timeouts,
/// full queues, leader elections, a topic not there yet) is worth a retry.
pub fn is_permanent_produce_error(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code(e),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessage
                | C::InvalidMessageSize
                | C::InvalidRecord
                | C::InvalidTopic
                | C::InvalidArgument
                | C::BadMessage
                | C::UnsupportedCompressionType
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::Authentication
                | C::SaslAuthenticationFailed
        )
    )
}

/// Bytes as an attribute value: the UTF-8 text when it is valid, else hex
/// (the second value says which).
pub fn bytes_to_attr(bytes: &[u8]) -> (String, &'static str) {
    use std::fmt::Write as _;
    if let Ok(s) = std::str::from_utf8(bytes) {
        return (s.to_string(), "utf-8");
    }
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    (s, "hex")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_client_properties_are_named_without_their_value() {
        let yaml = "bootstrap_servers: 127.0.0.1:9\ntopic: t\nclient_properties:\n  sasl.password: hunter2\n  queue.buffering.max.ms: not-a-number-hunter2\n  no.such.setting: x\n";
        let kind = crate::publish_kafka::PublishKafkaType;
        let text = sluice_runtime::testing::props_from_yaml(&kind, &crate::registry(), yaml)
            .expect_err("refused");
        assert!(text.contains("queue.buffering.max.ms"), "{text}");
        assert!(text.contains("no.such.setting"), "{text}");
        assert!(!text.contains("sasl.password"), "accepted: {text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn owned_settings_cannot_be_overridden() {
        let yaml = "bootstrap_servers: 127.0.0.1:9\ntopics: [t]\ngroup_id: g\nclient_properties:\n  enable.auto.commit: \"true\"\n";
        let kind = crate::consume_kafka::ConsumeKafkaType;
        let text = sluice_runtime::testing::props_from_yaml(&kind, &crate::registry(), yaml)
            .expect_err("refused");
        assert!(text.contains("enable.auto.commit"), "{text}");
        assert!(text.contains("set by the processor"), "{text}");
    }

    #[test]
    fn permanent_and_transient_errors() {
        use rdkafka::error::KafkaError::MessageProduction as P;
        assert!(is_permanent_produce_error(&P(
            RDKafkaErrorCode::MessageSizeTooLarge
        )));
        assert!(is_permanent_produce_error(&P(
            RDKafkaErrorCode::TopicAuthorizationFailed
        )));
        assert!(!is_permanent_produce_error(&P(
            RDKafkaErrorCode::MessageTimedOut
        )));
        assert!(!is_permanent_produce_error(&P(RDKafkaErrorCode::QueueFull)));
        assert!(!is_permanent_produce_error(&P(
            RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(!is_permanent_produce_error(&P(
            RDKafkaErrorCode::UnknownTopicOrPartition
        )));
    }

    #[test]
    fn keys_are_text_or_hex() {
        assert_eq!(bytes_to_attr(b"host-1"), ("host-1".into(), "utf-8"));
        assert_eq!(bytes_to_attr(&[0xff, 0x00, 0x10]), ("ff0010".into(), "hex"));
    }
}
