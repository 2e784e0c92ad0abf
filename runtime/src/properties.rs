//! Declared processor properties: their metadata, kinds and validated values.
//!
//! Every processor type lists its properties as [`PropertyDescriptor`]s. The
//! same list drives validation (with file:line:column), `sluice processors`,
//! the generated docs and the UI panels, so none of them can drift.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::spec::Pos;

/// What a property holds; validation checks values against it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PropKind {
    /// Any text.
    Text,
    /// Text that must not be empty.
    NonEmpty,
    /// A whole number within bounds.
    Integer {
        /// Smallest accepted.
        min: i64,
        /// Largest accepted.
        max: i64,
    },
    /// `true` or `false`.
    Bool,
    /// A duration such as `500ms`, `10s`, `5m`.
    Duration,
    /// A size such as `512 KB`, `10MB`, `1 GB` (powers of 1000; `KiB`, `MiB`... powers of 1024).
    DataSize,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A handlebars template over attributes (checked by compiling it).
    Template,
    /// A CEL predicate over attributes (checked by compiling it).
    Expression,
    /// A map from names to values of the inner kind (e.g. routes).
    MapOf(&'static PropKind),
    /// A list of values of the inner kind.
    ListOf(&'static PropKind),
}

impl PropKind {
    /// Short human name used in docs and errors.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            PropKind::Text => "text".into(),
            PropKind::NonEmpty => "non-empty text".into(),
            PropKind::Integer { min, max } => format!("integer {min}..={max}"),
            PropKind::Bool => "true|false".into(),
            PropKind::Duration => "duration (e.g. 500ms, 10s, 5m)".into(),
            PropKind::DataSize => "data size (e.g. 64 KB, 10 MB, 1 GiB)".into(),
            PropKind::Choice(c) => c.join("|"),
            PropKind::Template => "template (handlebars over attributes)".into(),
            PropKind::Expression => "expression (CEL over attributes)".into(),
            PropKind::MapOf(k) => format!("map of name -> {}", k.describe()),
            PropKind::ListOf(k) => format!("list of {}", k.describe()),
        }
    }
}

/// One declared property.
#[derive(Debug, Clone, Copy)]
pub struct PropertyDescriptor {
    /// Name used in YAML.
    pub name: &'static str,
    /// What it does, for docs and UI.
    pub description: &'static str,
    /// Kind of value.
    pub kind: PropKind,
    /// Must be given (and has no default).
    pub required: bool,
    /// Default value as YAML text would spell it.
    pub default: Option<&'static str>,
    /// Secret: redacted in API, UI and logs.
    pub sensitive: bool,
}

impl PropertyDescriptor {
    /// An optional property with a default.
    #[must_use]
    pub const fn optional(
        name: &'static str,
        kind: PropKind,
        default: Option<&'static str>,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            description,
            kind,
            required: false,
            default,
            sensitive: false,
        }
    }

    /// A required property.
    #[must_use]
    pub const fn required(name: &'static str, kind: PropKind, description: &'static str) -> Self {
        Self {
            name,
            description,
            kind,
            required: true,
            default: None,
            sensitive: false,
        }
    }

    /// The same, marked secret.
    #[must_use]
    pub const fn secret(mut self) -> Self {
        self.sensitive = true;
        self
    }
}

/// A scalar as written, after `${env:...}` substitution.
#[derive(Clone, PartialEq)]
pub struct Scalar {
    /// The value used at run time.
    pub value: String,
    /// The text as written in the file (before substitution).
    pub raw: String,
    /// Where it was written.
    pub pos: Pos,
}

impl fmt::Debug for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug shows what was written, never what an env reference resolved to.
        write!(f, "{:?}", self.raw)
    }
}

/// A property value as written: a scalar, a list or a map.
#[derive(Clone, Debug, PartialEq)]
pub enum PropValue {
    /// One value.
    Scalar(Scalar),
    /// A list of scalars.
    List(Vec<Scalar>, Pos),
    /// Named scalars, in file order.
    Map(Vec<(Scalar, Scalar)>, Pos),
}

impl PropValue {
    /// Where it was written.
    #[must_use]
    pub fn pos(&self) -> Pos {
        match self {
            PropValue::Scalar(s) => s.pos,
            PropValue::List(_, p) | PropValue::Map(_, p) => *p,
        }
    }
}

/// The properties given to one processor, validated against its descriptors.
#[derive(Clone, Debug, Default)]
pub struct Properties {
    values: BTreeMap<String, PropValue>,
    defaults: BTreeMap<String, &'static str>,
}

/// A property could not be read as the kind asked for.
#[derive(Debug, thiserror::Error)]
#[error("property `{name}`: {message}")]
pub struct PropertyError {
    /// Property name.
    pub name: String,
    /// What is wrong.
    pub message: String,
    /// Where, if written in a file.
    pub pos: Option<Pos>,
}

impl Properties {
    /// Properties as written, with the defaults of `descriptors` filled in.
    #[must_use]
    pub fn new(values: BTreeMap<String, PropValue>, descriptors: &[PropertyDescriptor]) -> Self {
        let defaults = descriptors
            .iter()
            .filter_map(|d| d.default.map(|v| (d.name.to_string(), v)))
            .collect();
        Self { values, defaults }
    }

    /// Properties from plain pairs (tests and programmatic flows).
    #[must_use]
    pub fn from_pairs(pairs: &[(&str, &str)], descriptors: &[PropertyDescriptor]) -> Self {
        let values = pairs
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_string(),
                    PropValue::Scalar(Scalar {
                        value: (*v).to_string(),
                        raw: (*v).to_string(),
                        pos: Pos::default(),
                    }),
                )
            })
            .collect();
        Self::new(values, descriptors)
    }

    /// The raw value as written, if any.
    #[must_use]
    pub fn raw(&self, name: &str) -> Option<&PropValue> {
        self.values.get(name)
    }

    /// Every value as written.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &PropValue)> {
        self.values.iter()
    }

    fn err(&self, name: &str, message: impl Into<String>) -> PropertyError {
        PropertyError {
            name: name.to_string(),
            message: message.into(),
            pos: self.values.get(name).map(PropValue::pos),
        }
    }

    /// The scalar text, or the default.
    ///
    /// # Errors
    /// The value is a list or map.
    pub fn str_opt(&self, name: &str) -> Result<Option<&str>, PropertyError> {
        match self.values.get(name) {
            Some(PropValue::Scalar(s)) => Ok(Some(&s.value)),
            Some(_) => Err(self.err(name, "expected a single value, not a list or map")),
            None => Ok(self.defaults.get(name).copied()),
        }
    }

    /// The scalar text; missing is an error.
    ///
    /// # Errors
    /// Missing, or not a scalar.
    pub fn str(&self, name: &str) -> Result<&str, PropertyError> {
        self.str_opt(name)?
            .ok_or_else(|| self.err(name, "is required"))
    }

    /// As an integer.
    ///
    /// # Errors
    /// Missing or not a whole number.
    pub fn int(&self, name: &str) -> Result<i64, PropertyError> {
        let s = self.str(name)?;
        s.trim()
            .parse()
            .map_err(|_| self.err(name, format!("`{s}` is not a whole number")))
    }

    /// As an optional integer.
    ///
    /// # Errors
    /// Present but not a whole number.
    pub fn int_opt(&self, name: &str) -> Result<Option<i64>, PropertyError> {
        match self.str_opt(name)? {
            None => Ok(None),
            Some(_) => self.int(name).map(Some),
        }
    }

    /// As an unsigned count (`usize`).
    ///
    /// # Errors
    /// Missing, not a number, or negative.
    pub fn usize(&self, name: &str) -> Result<usize, PropertyError> {
        let v = self.int(name)?;
        usize::try_from(v).map_err(|_| self.err(name, format!("`{v}` must not be negative")))
    }

    /// As a boolean.
    ///
    /// # Errors
    /// Missing or not true/false.
    pub fn bool(&self, name: &str) -> Result<bool, PropertyError> {
        parse_bool(self.str(name)?).map_err(|m| self.err(name, m))
    }

    /// As a duration.
    ///
    /// # Errors
    /// Missing or not a duration.
    pub fn duration(&self, name: &str) -> Result<Duration, PropertyError> {
        parse_duration(self.str(name)?).map_err(|m| self.err(name, m))
    }

    /// As an optional duration.
    ///
    /// # Errors
    /// Present but not a duration.
    pub fn duration_opt(&self, name: &str) -> Result<Option<Duration>, PropertyError> {
        match self.str_opt(name)? {
            None => Ok(None),
            Some(s) => parse_duration(s).map(Some).map_err(|m| self.err(name, m)),
        }
    }

    /// As a byte count.
    ///
    /// # Errors
    /// Missing or not a size.
    pub fn data_size(&self, name: &str) -> Result<u64, PropertyError> {
        parse_data_size(self.str(name)?).map_err(|m| self.err(name, m))
    }

    /// As a list of strings (a single scalar counts as a one-element list;
    /// a comma-separated scalar is split).
    ///
    /// # Errors
    /// The value is a map.
    pub fn list(&self, name: &str) -> Result<Vec<String>, PropertyError> {
        match self.values.get(name) {
            Some(PropValue::List(items, _)) => Ok(items.iter().map(|s| s.value.clone()).collect()),
            Some(PropValue::Scalar(s)) => Ok(split_list(&s.value)),
            Some(PropValue::Map(..)) => Err(self.err(name, "expected a list, not a map")),
            None => Ok(self
                .defaults
                .get(name)
                .map(|d| split_list(d))
                .unwrap_or_default()),
        }
    }

    /// As an ordered map of names to strings.
    ///
    /// # Errors
    /// The value is not a map.
    pub fn map(&self, name: &str) -> Result<Vec<(String, String)>, PropertyError> {
        match self.values.get(name) {
            Some(PropValue::Map(items, _)) => Ok(items
                .iter()
                .map(|(k, v)| (k.value.clone(), v.value.clone()))
                .collect()),
            Some(_) => Err(self.err(name, "expected a map of name: value")),
            None => Ok(Vec::new()),
        }
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses `true`/`false` (and yes/no, on/off).
///
/// # Errors
/// Anything else, with a message.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => Err(format!("`{s}` is not true or false")),
    }
}

/// Parses `500ms`, `10s`, `5m`, `1h 30m`, `0`.
///
/// # Errors
/// Not a duration, with a message.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 500ms, 10s, 5m"))
}

/// Parses `1024`, `64 KB`, `10MB`, `1 GiB`, `2 GB`.
///
/// # Errors
/// Not a size, with a message.
pub fn parse_data_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a data size; write e.g. 64 KB, 10 MB, 1 GB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{s}`: unknown unit `{other}`; use B, KB, MB, GB, TB, KiB, MiB, GiB"
            ));
        }
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((n * mult).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_data_size("1 GB"), Ok(1_000_000_000));
        assert_eq!(parse_data_size("64KiB"), Ok(65_536));
        assert_eq!(parse_data_size("10"), Ok(10));
        assert!(parse_data_size("ten").is_err());
        assert!(parse_data_size("5 parsecs").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").is_err());
    }
}
