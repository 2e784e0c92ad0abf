//! Errors: [`UiError`] for starting the server, [`ApiError`] for answers.

use std::net::SocketAddr;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The UI could not be started.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The address could not be bound (in use, not permitted...).
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A token was configured but is empty.
    #[error("the UI token is empty; set a non-empty token or leave it unset to generate one")]
    EmptyToken,
}

/// An error answer of the API: a status and a JSON `{"error": "..."}` body.
#[derive(Debug)]
pub enum ApiError {
    /// No such processor, connection...
    NotFound(String),
    /// The request is malformed; the message says what and where.
    BadRequest(String),
    /// The bearer token is missing or wrong.
    Unauthorized,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "a valid `Authorization: Bearer <token>` header is required (the token is printed when sluice starts)".to_string(),
            ),
        };
        let mut resp = (status, Json(serde_json::json!({ "error": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
