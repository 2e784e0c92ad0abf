//! Bearer-token checks.
//!
//! State-changing routes need `Authorization: Bearer <token>`. Read routes
//! need it too when reads are closed; there the token may also come as the
//! `access_token` query parameter (RFC 6750 section 2.3), because a browser's
//! `EventSource` cannot set headers. The comparison is constant-time.

use std::fmt;

use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::UiState;

/// The access token (never printed by `Debug`).
pub struct Token(String);

impl Token {
    /// Wraps `token`.
    #[must_use]
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// Whether `candidate` is the token, in time independent of where they differ.
    #[must_use]
    pub fn matches(&self, candidate: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(candidate.as_bytes()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// The token in `Authorization: Bearer <token>`, if any.
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The token in `?access_token=...`, if any.
fn query_token(req: &Request) -> Option<String> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(req.uri()).ok()?;
    pairs
        .into_iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v)
}

/// Middleware of state-changing routes: the bearer header is required.
pub async fn require_write(State(state): State<UiState>, req: Request, next: Next) -> Response {
    match bearer(&req) {
        Some(t) if state.token.matches(t) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// Middleware of read routes: open, or the token by header or query.
pub async fn require_read(State(state): State<UiState>, req: Request, next: Next) -> Response {
    if state.open_reads {
        return next.run(req).await;
    }
    let ok = bearer(&req).is_some_and(|t| state.token.matches(t))
        || query_token(&req).is_some_and(|t| state.token.matches(&t));
    if ok {
        next.run(req).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare() {
        let t = Token::new("abc123".into());
        assert!(t.matches("abc123"));
        assert!(!t.matches("abc124"));
        assert!(!t.matches("abc12"));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "Token(***)");
    }

    #[test]
    fn query_tokens_are_decoded() {
        let req = Request::builder()
            .uri("/api/events?x=1&access_token=a%2Bb")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(query_token(&req).as_deref(), Some("a+b"));
    }
}
