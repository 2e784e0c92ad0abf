//! The page's files, embedded in the binary from `ui/assets/`, and the
//! OpenAPI document.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

struct Asset {
    path: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Every file under `/assets/`.
const ASSETS: &[Asset] = &[
    Asset {
        path: "app.js",
        bytes: include_bytes!("../assets/app.js"),
        content_type: JS,
    },
    Asset {
        path: "api.js",
        bytes: include_bytes!("../assets/api.js"),
        content_type: JS,
    },
    Asset {
        path: "dom.js",
        bytes: include_bytes!("../assets/dom.js"),
        content_type: JS,
    },
    Asset {
        path: "graph.js",
        bytes: include_bytes!("../assets/graph.js"),
        content_type: JS,
    },
    Asset {
        path: "panel.js",
        bytes: include_bytes!("../assets/panel.js"),
        content_type: JS,
    },
    Asset {
        path: "style.css",
        bytes: include_bytes!("../assets/style.css"),
        content_type: "text/css; charset=utf-8",
    },
    Asset {
        path: "vendor/dagre.min.js",
        bytes: include_bytes!("../assets/vendor/dagre.min.js"),
        content_type: JS,
    },
    Asset {
        path: "vendor/dagre.LICENSE",
        bytes: include_bytes!("../assets/vendor/dagre.LICENSE"),
        content_type: TEXT,
    },
    Asset {
        path: "vendor/graphlib.LICENSE",
        bytes: include_bytes!("../assets/vendor/graphlib.LICENSE"),
        content_type: TEXT,
    },
];

const INDEX: &[u8] = include_bytes!("../assets/index.html");

/// The OpenAPI 3 document of every route.
pub const OPENAPI: &str = include_str!("../assets/openapi.json");

fn file(content_type: &'static str, bytes: &'static [u8]) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response()
}

/// `GET /`: the visualizer page.
pub async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

/// `GET /assets/{*path}`
pub async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => file(a.content_type, a.bytes),
        None => ApiError::NotFound(format!("no asset `{path}`")).into_response(),
    }
}

/// `GET /api/openapi.json`
pub async fn openapi() -> Response {
    file("application/json", OPENAPI.as_bytes())
}
