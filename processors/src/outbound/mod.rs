//! Sinks: processors that deliver FlowFiles to a remote system.
//!
//! Every sink follows the same rules, implemented once in [`retry`]:
//!
//! - A FlowFile goes to `success` only after the remote side confirmed it
//!   (HTTP 2xx, Slack `ok`, FTP 226 and the rename, S3 200, SMTP 250), with a
//!   SEND provenance event naming the destination (never a secret).
//! - A transient failure (connection refused, timeout, HTTP 408/429/5xx, FTP
//!   4xx, SMTP 4xx) leaves the FlowFile at the front of its queue, penalised,
//!   and the processor backs off exponentially (at least as long as a
//!   `Retry-After` asks). While the remote side is down the queue fills and
//!   back-pressure reaches the source. Each retry counts in `retries`.
//! - A permanent failure (other 4xx, authentication, a bad template) goes to
//!   `failure` with the reason in `put.error`.
//! - Connections are pooled and reused; secrets come from `${env:...}` or
//!   properties marked secret and are never logged or shown in `Debug`.

pub mod http;
pub mod put_email;
pub mod put_ftp;
pub mod put_http;
pub mod put_s3_object;
pub mod put_slack;
pub mod retry;
pub mod tls;

use std::fmt;

/// A secret value (password, token, webhook URL): `Debug` and `Display` show
/// `***`, so it cannot leak into logs by accident.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An optional secret property: `None` when absent or empty.
pub(crate) fn secret_opt(
    props: &sluice_runtime::Properties,
    name: &str,
) -> Result<Option<Secret>, sluice_runtime::PropertyError> {
    Ok(props
        .str_opt(name)?
        .filter(|s| !s.is_empty())
        .map(Secret::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
