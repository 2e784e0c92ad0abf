//! Sluice's HTTP API and web flow visualizer.
//!
//! [`serve`] binds the API (default `127.0.0.1:8080`) next to a running
//! [`Engine`](sluice_runtime::Engine); [`router`] gives the same routes without
//! a socket, for tests. Every route is listed once ([`route_table`]) with its
//! access level, and the OpenAPI document served at
//! `/api/openapi.json` is checked against that list.
//!
//! Access: routes that change state need `Authorization: Bearer <token>`;
//! read-only routes are open or need the same token, as
//! [`UiConfig::open_reads`] says; `/healthz` and the page's own files are
//! always open. Secrets never leave: sensitive properties show as `***`,
//! `${env:...}` references show as written, and attribute values and messages
//! are scrubbed of every sensitive value (see `redact`).
//!
//! The page (HTML, JS, CSS and the vendored layout library) is embedded in the
//! binary from `ui/assets/`; running it needs no Node.js.

mod api;
mod assets;
mod auth;
mod config;
mod error;
mod events;
mod flow;
mod metrics;
mod redact;
mod routes;
mod server;
mod state;
mod status;

pub use config::UiConfig;
pub use error::UiError;
pub use routes::router;
pub use routes::{Access, RouteDef, route_table};
pub use server::serve;
pub use state::UiState;
