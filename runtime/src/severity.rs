//! Syslog severities (RFC 5424 section 6.2.1): numbers and names.

/// Names by numeric severity, 0 (emerg) to 7 (debug).
pub const SEVERITY_NAMES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// The name of severity `n` (`err` for 3).
#[must_use]
pub fn severity_name(n: u8) -> Option<&'static str> {
    SEVERITY_NAMES.get(usize::from(n)).copied()
}

/// Parses a level given as a number (0-7) or a name, accepting the common
/// aliases (`error`, `warn`, `emergency`, `critical`, `informational`, `panic`).
///
/// # Errors
/// Neither a number 0-7 nor a known name.
pub fn parse_level(s: &str) -> Result<i64, String> {
    // What a syslog parser sets: one digit. No lower-case copy for it.
    if let &[d @ b'0'..=b'7'] = s.as_bytes() {
        return Ok(i64::from(d - b'0'));
    }
    let t = s.trim().to_ascii_lowercase();
    if let Ok(n) = t.parse::<i64>() {
        return if (0..=7).contains(&n) {
            Ok(n)
        } else {
            Err(format!("severity {n} is outside 0..=7"))
        };
    }
    let n = match t.as_str() {
        "emerg" | "emergency" | "panic" => 0,
        "alert" => 1,
        "crit" | "critical" => 2,
        "err" | "error" => 3,
        "warning" | "warn" => 4,
        "notice" => 5,
        "info" | "informational" => 6,
        "debug" => 7,
        _ => {
            return Err(format!(
                "`{s}` is not a severity; use 0-7 or one of {}",
                SEVERITY_NAMES.join(", ")
            ));
        }
    };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_level("err"), Ok(3));
        assert_eq!(parse_level("Warning"), Ok(4));
        for n in 0..=7 {
            assert_eq!(parse_level(&n.to_string()), Ok(n));
            assert_eq!(parse_level(&format!(" {n} ")), Ok(n));
        }
        assert!(parse_level("8").is_err());
        assert!(parse_level("9").is_err());
        assert!(parse_level("-1").is_err());
        assert!(parse_level("loud").is_err());
        assert_eq!(severity_name(3), Some("err"));
    }
}
