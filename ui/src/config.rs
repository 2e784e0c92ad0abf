//! How the UI is served: address, access token, and whether reads are open.

use std::fmt::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};

use rand::RngCore;

/// Default address: loopback only.
pub const DEFAULT_ADDRESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Settings of the HTTP API and visualizer.
#[derive(Clone)]
pub struct UiConfig {
    /// Where to listen; port 0 picks a free port (see what [`crate::serve`] returns).
    pub address: SocketAddr,
    /// Bearer token for state-changing requests (and reads when
    /// `open_reads` is false). `None`: [`crate::serve`] generates one and
    /// prints it on stderr; call [`UiConfig::token_or_generate`] first to
    /// know it yourself.
    pub token: Option<String>,
    /// Read-only endpoints answer without a token (default true).
    pub open_reads: bool,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            address: DEFAULT_ADDRESS,
            token: None,
            open_reads: true,
        }
    }
}

impl fmt::Debug for UiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret: never in Debug output or logs.
        f.debug_struct("UiConfig")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("open_reads", &self.open_reads)
            .finish()
    }
}

impl UiConfig {
    /// The configured token, generating (and keeping) a random one if none is set.
    pub fn token_or_generate(&mut self) -> &str {
        self.token.get_or_insert_with(generate_token)
    }
}

/// 32 random bytes from the OS-seeded generator, as 64 hex digits.
#[must_use]
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_long_and_distinct() {
        let a = generate_token();
        let b = generate_token();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn debug_hides_the_token() {
        let mut c = UiConfig::default();
        let t = c.token_or_generate().to_string();
        assert_eq!(
            c.token.as_deref(),
            Some(t.as_str()),
            "the generated token is kept"
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains(&t), "{shown}");
        assert!(shown.contains("127.0.0.1:8080"), "{shown}");
        assert!(c.open_reads);
    }
}
