//! Keeping secrets out of every answer.
//!
//! - A property is shown as written in the flow file (`raw`), so an
//!   `${env:NAME}` reference shows as the reference, never its value.
//! - A sensitive property (declared with `.secret()`) shows as `***`.
//! - *Needles* are the values sensitive properties resolved to (with the parts
//!   that came from the environment), and every value substituted from the
//!   environment into any property, when at least [`MIN_ENV_NEEDLE`]
//!   characters long (shorter ones such as `true` or `8080` would mask
//!   unrelated text and are rarely secrets). Every free text the API returns
//!   (bulletin messages, provenance details, attribute values, the flow
//!   source) is scrubbed of them, and a source line holding one is masked
//!   after its key.
//! - Attributes whose name looks like a credential (`password`, `token`,
//!   `authorization`, `cookie`...) show as `***`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;
use sluice_runtime::{Attributes, FlowSpec, PropValue, PropertyDescriptor, Scalar};

/// What replaces a secret.
pub const MASK: &str = "***";

/// Shortest value substituted from the environment into a non-sensitive
/// property that is scrubbed from free text.
pub const MIN_ENV_NEEDLE: usize = 6;

/// Substrings of normalised attribute names that mark a credential.
const SECRET_NAME_PARTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "privatekey",
    "sessionid",
];

/// Whether an attribute named `name` holds a credential
/// (`http.headers.authorization`, `api_key`, `X-Api-Key`, `db.password`...).
#[must_use]
pub fn is_secret_name(name: &str) -> bool {
    let norm: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_NAME_PARTS.iter().any(|p| norm.contains(p))
}

/// The secrets of one flow and the scrubbing built on them.
#[derive(Debug, Default)]
pub struct Redactor {
    /// Longest first, so a secret containing another is masked whole.
    needles: Vec<String>,
}

impl Redactor {
    /// Collects the needles of `spec` (see the module docs).
    #[must_use]
    pub fn from_spec(spec: &FlowSpec) -> Self {
        let mut needles = Vec::new();
        for p in &spec.processors {
            for (name, value) in p.properties.iter() {
                let sensitive = descriptor(p.kind.properties(), name).is_none_or(|d| d.sensitive);
                for s in scalars(value) {
                    if sensitive {
                        needles.push(s.value.clone());
                        needles.extend(s.value.lines().map(str::trim).map(str::to_string));
                        needles.extend(env_parts(&s.raw, &s.value));
                    } else {
                        needles.extend(
                            env_parts(&s.raw, &s.value)
                                .into_iter()
                                .filter(|v| v.chars().count() >= MIN_ENV_NEEDLE),
                        );
                    }
                }
            }
        }
        Self::new(needles)
    }

    /// A redactor for these secret values (empty ones are ignored).
    #[must_use]
    pub fn new(mut needles: Vec<String>) -> Self {
        needles.retain(|n| !n.is_empty());
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Self { needles }
    }

    /// `text` with every secret value replaced by [`MASK`].
    #[must_use]
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = Cow::Owned(out.replace(n.as_str(), MASK));
            }
        }
        out
    }

    /// The flow file's text, with every line that holds a secret value masked
    /// after its key (`password: ***`). A file that takes its secrets from
    /// `${env:...}` comes back unchanged.
    #[must_use]
    pub fn source(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let body = line.trim_end_matches(['\n', '\r']);
            let ending = &line[body.len()..];
            if self.needles.iter().any(|n| body.contains(n.as_str())) {
                let keep = match body.find(": ") {
                    Some(i) if !self.holds_secret(&body[..i]) => &body[..i + 2],
                    _ => &body[..body.len() - body.trim_start().len()],
                };
                out.push_str(keep);
                out.push_str(MASK);
            } else {
                out.push_str(body);
            }
            out.push_str(ending);
        }
        out
    }

    fn holds_secret(&self, text: &str) -> bool {
        self.needles.iter().any(|n| text.contains(n.as_str()))
    }

    /// Attributes for display: credentials masked by name, values scrubbed.
    #[must_use]
    pub fn attributes(&self, attrs: &Attributes) -> BTreeMap<String, String> {
        attrs
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_name(k) {
                    MASK.to_string()
                } else {
                    self.scrub(v).into_owned()
                };
                (self.scrub(k).into_owned(), shown)
            })
            .collect()
    }
}

/// The descriptor of property `name`.
#[must_use]
pub fn descriptor<'a>(
    descriptors: &'a [PropertyDescriptor],
    name: &str,
) -> Option<&'a PropertyDescriptor> {
    descriptors.iter().find(|d| d.name == name)
}

/// A property value for display: as written, or [`MASK`] when sensitive.
/// Lists become arrays and maps objects (map keys are shown as written).
#[must_use]
pub fn property_value(value: &PropValue, sensitive: bool) -> Value {
    let show = |s: &Scalar| {
        Value::String(if sensitive {
            MASK.into()
        } else {
            s.raw.clone()
        })
    };
    match value {
        PropValue::Scalar(s) => show(s),
        PropValue::List(items, _) => Value::Array(items.iter().map(show).collect()),
        PropValue::Map(pairs, _) => Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.raw.clone(), show(v)))
                .collect(),
        ),
    }
}

/// Whether a value as written references the environment.
#[must_use]
pub fn references_env(value: &PropValue) -> bool {
    scalars(value).any(|s| s.raw.contains("${env:"))
}

fn scalars(value: &PropValue) -> Box<dyn Iterator<Item = &Scalar> + '_> {
    match value {
        PropValue::Scalar(s) => Box::new(std::iter::once(s)),
        PropValue::List(items, _) => Box::new(items.iter()),
        PropValue::Map(pairs, _) => Box::new(pairs.iter().map(|(_, v)| v)),
    }
}

/// The pieces of `value` that came from `${env:...}` references in `raw`,
/// found by matching the literal text around each reference. Adjacent
/// references come back as one piece; if the literals do not line up, the
/// whole value is returned.
fn env_parts(raw: &str, value: &str) -> Vec<String> {
    // Literal text between references: n references give n + 1 literals.
    let mut literals = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find("${env:") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        literals.push(&rest[..start]);
        rest = &rest[start + len + 1..];
    }
    if literals.is_empty() {
        return Vec::new();
    }
    literals.push(rest);
    let whole = || vec![value.to_string()];
    let Some(mut v) = value.strip_prefix(literals[0]) else {
        return whole();
    };
    let mut parts = Vec::new();
    let last = literals.len() - 1;
    for (i, lit) in literals.iter().enumerate().skip(1) {
        if lit.is_empty() && i < last {
            continue; // adjacent references: one piece
        }
        let end = if i == last {
            match v.strip_suffix(lit) {
                Some(p) => p.len(),
                None => return whole(),
            }
        } else {
            match v.find(lit) {
                Some(e) => e,
                None => return whole(),
            }
        };
        parts.push(v[..end].to_string());
        v = &v[end + lit.len()..];
    }
    parts.retain(|p| !p.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names() {
        for n in [
            "http.headers.authorization",
            "api_key",
            "X-Api-Key",
            "db.password",
            "kafka.sasl.PASSWD",
            "session_id",
            "http.headers.cookie",
            "slack.token",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "filename",
            "syslog.severity",
            "http.method",
            "author",
            "uuid",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn env_parts_are_the_substituted_pieces() {
        assert_eq!(env_parts("${env:A}", "s3cret"), vec!["s3cret"]);
        assert_eq!(env_parts("Bearer ${env:T}", "Bearer abc"), vec!["abc"]);
        assert_eq!(
            env_parts("https://${env:H}/x/${env:P}", "https://host.example/x/pw1"),
            vec!["host.example", "pw1"]
        );
        assert_eq!(env_parts("${env:A}${env:B}", "onetwo"), vec!["onetwo"]);
        assert_eq!(env_parts("plain", "plain"), Vec::<String>::new());
        // Literals that do not line up: the whole value is a needle.
        assert_eq!(env_parts("a${env:X}b", "zzz"), vec!["zzz"]);
    }

    #[test]
    fn scrub_masks_longest_first() {
        let r = Redactor::new(vec!["abc".into(), "abcdef".into(), String::new()]);
        assert_eq!(r.scrub("x abcdef y abc"), "x *** y ***");
        assert!(matches!(r.scrub("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn source_lines_with_secrets_are_masked_after_the_key() {
        let r = Redactor::new(vec!["hunter2".into()]);
        let src = "a:\n  password: hunter2\r\n  user: bob\n  inline: { pw: hunter2, x: 1 }\n";
        assert_eq!(
            r.source(src),
            "a:\n  password: ***\r\n  user: bob\n  inline: ***\n"
        );
        let plain = "p:\n  password: ${env:PW}\n";
        assert_eq!(r.source(plain), plain);
    }

    #[test]
    fn attributes_mask_credentials_and_scrub_values() {
        let r = Redactor::new(vec!["hunter2".into()]);
        let mut a = Attributes::new();
        a.insert("http.headers.authorization", "Bearer xyz");
        a.insert("note", "pw was hunter2");
        a.insert("label", "<b>ok</b>");
        let shown = r.attributes(&a);
        assert_eq!(shown["http.headers.authorization"], MASK);
        assert_eq!(shown["note"], "pw was ***");
        assert_eq!(shown["label"], "<b>ok</b>");
    }
}
