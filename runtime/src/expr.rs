//! Predicates in CEL (the Common Expression Language) over FlowFile attributes.
//!
//! The attribute map is the variable `attr`, with string values:
//! `int(attr["syslog.severity"]) <= 3`, `attr["http.method"] == "POST"`,
//! `"env" in attr && attr["env"].startsWith("prod")`. Expressions are compiled
//! once; when an expression only indexes `attr` with literal keys, only those
//! attributes are handed to the interpreter.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{Context, Program, Value};

use crate::attributes::Attributes;

/// An expression failed to compile or evaluate.
#[derive(Debug, thiserror::Error)]
pub enum ExprError {
    /// Bad syntax.
    #[error("bad expression: {0}")]
    Compile(String),
    /// Evaluation failed (unknown key, wrong types...).
    #[error("expression `{source_text}` failed: {message}")]
    Eval {
        /// The expression.
        source_text: String,
        /// What went wrong.
        message: String,
    },
    /// It did not give true or false.
    #[error("expression `{0}` did not give true or false")]
    NotBool(String),
}

/// A compiled boolean expression.
#[derive(Clone)]
pub struct Predicate {
    program: Arc<Program>,
    source: String,
    /// Keys the expression reads, when it only reads literal keys.
    keys: Option<Vec<String>>,
}

impl std::fmt::Debug for Predicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Predicate({:?})", self.source)
    }
}

/// When every use of `attr` is `attr["literal"]`, the literal keys.
fn literal_keys(src: &str) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while let Some(off) = src[i..].find("attr") {
        let start = i + off;
        let end = start + 4;
        let before_ok = start == 0 || !is_ident(bytes[start - 1]);
        let after_ident = end < bytes.len() && is_ident(bytes[end]);
        i = end;
        if !before_ok || after_ident {
            continue;
        }
        let rest = &src[end..];
        let quote = if rest.starts_with("[\"") {
            '"'
        } else if rest.starts_with("['") {
            '\''
        } else {
            return None;
        };
        let body = &rest[2..];
        let close = body.find(quote)?;
        let key = &body[..close];
        if key.contains('\\') || !body[close + 1..].starts_with(']') {
            return None;
        }
        keys.push(key.to_string());
    }
    // `in attr` tests membership of the whole map: needs all keys.
    if src.contains("in attr") {
        return None;
    }
    Some(keys)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Predicate {
    /// Compiles `source`.
    ///
    /// # Errors
    /// Bad syntax.
    pub fn compile(source: &str) -> Result<Self, ExprError> {
        let program = Program::compile(source).map_err(|e| ExprError::Compile(e.to_string()))?;
        Ok(Self {
            program: Arc::new(program),
            source: source.to_string(),
            keys: literal_keys(source),
        })
    }

    /// The source text.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates over `attrs`.
    ///
    /// # Errors
    /// Evaluation failed or did not give a boolean.
    pub fn eval(&self, attrs: &Attributes) -> Result<bool, ExprError> {
        let mut map: HashMap<Key, Value> = HashMap::new();
        let mut add = |k: &str, v: &str| {
            map.insert(
                Key::String(Arc::new(k.to_string())),
                Value::String(Arc::new(v.to_string())),
            );
        };
        match &self.keys {
            Some(keys) => {
                for k in keys {
                    if let Some(v) = attrs.get(k) {
                        add(k, v);
                    }
                }
            }
            None => {
                for (k, v) in attrs.iter() {
                    add(k, v);
                }
            }
        }
        let mut ctx = Context::default();
        ctx.add_variable_from_value("attr", Value::Map(Map { map: Arc::new(map) }));
        match self.program.execute(&ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(_) => Err(ExprError::NotBool(self.source.clone())),
            Err(e) => Err(ExprError::Eval {
                source_text: self.source.clone(),
                message: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Attributes {
        [("syslog.severity", "3"), ("env", "prod-eu")]
            .into_iter()
            .collect()
    }

    #[test]
    fn numeric_and_string_predicates() {
        let p = Predicate::compile(r#"int(attr["syslog.severity"]) <= 3"#).unwrap();
        assert_eq!(
            p.keys.as_deref(),
            Some(&["syslog.severity".to_string()][..])
        );
        assert!(p.eval(&attrs()).unwrap());
        let p = Predicate::compile(r#""env" in attr && attr["env"].startsWith("prod")"#).unwrap();
        assert!(p.keys.is_none());
        assert!(p.eval(&attrs()).unwrap());
    }

    #[test]
    fn missing_key_is_an_evaluation_error_not_a_panic() {
        let p = Predicate::compile(r#"attr["nope"] == "x""#).unwrap();
        assert!(matches!(p.eval(&attrs()), Err(ExprError::Eval { .. })));
    }

    #[test]
    fn non_boolean_and_bad_syntax() {
        assert!(matches!(
            Predicate::compile("1 + 1").unwrap().eval(&attrs()),
            Err(ExprError::NotBool(_))
        ));
        assert!(Predicate::compile("attr[").is_err());
    }
}
