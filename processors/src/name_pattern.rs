//! Name patterns with `*` wildcards, for properties that pick attributes or
//! headers by name (`http.header.*`, `*password*`) and for HTTP paths.
//!
//! `*` matches any run of characters (including none and including dots);
//! every other character matches itself. No other syntax, so a pattern is
//! never an error and an exact name is its own pattern.

/// A set of patterns; a name matches the set when it matches any of them.
#[derive(Clone, Debug, Default)]
pub(crate) struct NamePatterns {
    patterns: Vec<String>,
    case_insensitive: bool,
}

impl NamePatterns {
    /// Patterns matched exactly as written (case matters).
    pub(crate) fn new(patterns: Vec<String>) -> Self {
        Self {
            patterns,
            case_insensitive: false,
        }
    }

    /// Patterns matched ignoring ASCII case.
    pub(crate) fn ignoring_case(patterns: &[String]) -> Self {
        Self {
            patterns: patterns.iter().map(|p| p.to_ascii_lowercase()).collect(),
            case_insensitive: true,
        }
    }

    /// Whether there is no pattern at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `name` matches one of the patterns.
    #[inline]
    pub(crate) fn matches(&self, name: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        if self.case_insensitive {
            let lower = name.to_ascii_lowercase();
            self.patterns.iter().any(|p| wildcard_match(p, &lower))
        } else {
            self.patterns.iter().any(|p| wildcard_match(p, name))
        }
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
/// Linear backtracking over the last `*` (the classic greedy algorithm), on
/// bytes: `*` is ASCII and UTF-8 sequences only match at character
/// boundaries, so this is the same as matching characters, without copying.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("http.header.*", "http.header.x-id"));
        assert!(!wildcard_match("http.header.*", "http.method"));
        assert!(wildcard_match("*password*", "db.password.old"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exactly"));
        assert!(wildcard_match("/api/*", "/api/v1/x"));
        assert!(!wildcard_match("/api/*", "/apix"));
        assert!(wildcard_match("é*ü", "éaüü"));
        assert!(!wildcard_match("é", "e"));
        assert!(wildcard_match("*ü", "üü"));
    }

    #[test]
    fn case_insensitive_sets() {
        let s = NamePatterns::ignoring_case(&["*Token*".into(), "authorization".into()]);
        assert!(s.matches("X-AUTH-TOKEN"));
        assert!(s.matches("Authorization"));
        assert!(!s.matches("user"));
        let s = NamePatterns::new(vec!["Token".into()]);
        assert!(!s.matches("token"));
        assert!(NamePatterns::default().is_empty());
    }
}
