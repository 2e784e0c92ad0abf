//! HTTP helpers shared by PutHTTP and PutSlack: reading a bounded response
//! body, and showing a URL without the parts that may hold a secret.

use reqwest::Url;

/// Bytes of a response read beyond what is kept, so the connection can be
/// reused instead of closed.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Reads up to `keep` bytes of the body (draining up to 64 KiB more). A body
/// cut short is not an error: the status already answered.
pub async fn read_body(mut resp: reqwest::Response, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while seen < keep.saturating_add(DRAIN_LIMIT) {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if kept.len() < keep {
                    kept.extend_from_slice(&c[..c.len().min(keep - kept.len())]);
                }
                seen += c.len();
            }
            _ => break,
        }
    }
    kept
}

/// A URL for messages and provenance: no user info, query or fragment
/// (any of them may hold a token).
pub fn public_url(u: &Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Same for text that may not parse as a URL.
pub fn public_url_text(s: &str) -> String {
    Url::parse(s.trim()).map_or_else(
        |_| s.split(['?', '#']).next().unwrap_or_default().to_string(),
        |u| public_url(&u),
    )
}

/// Only scheme, host and port: for URLs whose path is the secret (Slack
/// incoming webhooks).
pub fn origin_only(u: &Url) -> String {
    u.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_shown_without_secrets() {
        let u = Url::parse("https://user:pw@example.com/a/b?token=s3cret#frag").unwrap();
        assert_eq!(public_url(&u), "https://example.com/a/b");
        assert_eq!(public_url_text("not a url?token=x"), "not a url");
        let hook = Url::parse("https://hooks.slack.com/services/T0/B0/XXXX").unwrap();
        assert_eq!(origin_only(&hook), "https://hooks.slack.com");
    }
}
