//! Real servers for Sluice's integration tests, each on a free loopback port.
//!
//! Every helper starts its server on `127.0.0.1`, waits until it really answers (polling with a
//! deadline, never a fixed sleep), hands back a handle with the address and whatever a test
//! needs, and kills the server when the handle is dropped. Each handle owns a temporary
//! directory for the server's configuration, data and log; a start that times out reports the
//! tail of that log.
//!
//! | helper | server | from |
//! |---|---|---|
//! | [`FtpServer`] | pure-ftpd, virtual user | Debian package |
//! | [`SmtpServer`] | aiosmtpd, Maildir | `$SLUICE_CACHE/venv` |
//! | [`S3Server`] | moto_server (in memory) | `$SLUICE_CACHE/venv` |
//! | [`KafkaBroker`] | tansu 0.6.0, memory storage | `$SLUICE_CACHE/tansu/bin/tansu` |
//! | [`Rsyslog`] | rsyslogd, forwarding with omfwd | Debian package |
//! | [`SyslogNg`] | syslog-ng, unpacked | `$SLUICE_CACHE/syslog-ng` |
//! | [`logger`] | util-linux `logger` | Debian package |
//! | [`SlackReceiver`], [`HttpReceiver`] | this crate, in process | — |
//!
//! `$SLUICE_CACHE` defaults to `$HOME/.cache/sluice`. Everything is installed by
//! `scripts/install-test-deps.sh` (which `scripts/test.sh` runs first). A server that cannot be
//! found or started is an error naming that script: tests fail, they do not skip.

// A test-only crate: every error is "this server could not be started or used", and the
// message says which and why; panics are in test assertions' helpers only.
#![allow(clippy::missing_errors_doc, clippy::missing_panics_doc)]

mod ftp;
mod http;
mod kafka;
mod proc;
mod s3;
mod smtp;
mod syslog;
mod util;

pub use ftp::FtpServer;
pub use http::{
    Fault, HttpReceiver, RecordedRequest, SlackMessage, SlackMessageKind, SlackReceiver,
};
pub use kafka::KafkaBroker;
pub use s3::S3Server;
pub use smtp::{ReceivedMail, SmtpServer};
pub use syslog::{
    Framing, LoggerTransport, Rsyslog, SyslogFormat, SyslogForward, SyslogNg, Transport, logger,
    logger_with_priority,
};
pub use util::{
    cache_dir, chromium, find_tool, finished_files, free_port, free_port_range,
    playwright_node_path, wait_for_port, wait_for_udp_port, wait_until, wait_until_async,
};

/// The line every "not installed" error ends with.
pub const INSTALL_HINT: &str =
    "install the test servers with `bash scripts/install-test-deps.sh` (scripts/test.sh runs it)";
