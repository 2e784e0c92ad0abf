//! Every route, once, with its access level; [`router`] builds on this list
//! and a test checks the OpenAPI document against it.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};

use crate::error::ApiError;
use crate::state::UiState;
use crate::{api, assets, auth, events};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (the page's files, health, the API description).
    Open,
    /// Anyone when reads are open, else the token holder.
    Read,
    /// The token holder only (changes state).
    Write,
}

/// One route as the OpenAPI test sees it.
#[derive(Clone, Copy, Debug)]
pub struct RouteDef {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path in axum syntax (`{id}`, `{*path}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

const fn def(method: &'static str, path: &'static str, access: Access) -> RouteDef {
    RouteDef {
        method,
        path,
        access,
    }
}

fn table() -> Vec<(RouteDef, MethodRouter<UiState>)> {
    use Access::{Open, Read, Write};
    vec![
        (def("GET", "/", Open), get(assets::index)),
        (def("GET", "/assets/{*path}", Open), get(assets::asset)),
        (def("GET", "/healthz", Open), get(api::healthz)),
        (def("GET", "/api/openapi.json", Open), get(assets::openapi)),
        (def("GET", "/api/flow", Read), get(api::flow)),
        (def("GET", "/api/status", Read), get(api::status)),
        (def("GET", "/api/events", Read), get(events::events)),
        (
            def("GET", "/api/connections/{id}/queue", Read),
            get(api::queue),
        ),
        (def("GET", "/api/provenance", Read), get(api::provenance)),
        (def("GET", "/metrics", Read), get(api::prometheus)),
        (
            def("POST", "/api/processors/{id}/stop", Write),
            post(api::stop),
        ),
        (
            def("POST", "/api/processors/{id}/start", Write),
            post(api::start),
        ),
    ]
}

/// Every route with its method and access level.
#[must_use]
pub fn route_table() -> Vec<RouteDef> {
    table().into_iter().map(|(d, _)| d).collect()
}

/// The whole API and page for `state`, without a socket (tests call it with
/// `tower::ServiceExt::oneshot`).
pub fn router(state: UiState) -> Router {
    let mut app = Router::new();
    for (d, handler) in table() {
        let handler = match d.access {
            Access::Open => handler,
            Access::Read => handler.route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_read,
            )),
            Access::Write => handler.route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_write,
            )),
        };
        app = app.route(d.path, handler);
    }
    app.fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The page runs only its own scripts and styles and talks only to its
/// origin, so even a missed escape could not run injected code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}
