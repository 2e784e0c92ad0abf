//! What every handler shares: the engine, the token, the redactor.

use std::sync::Arc;

use parking_lot::Mutex;
use sluice_runtime::Engine;
use tokio_util::sync::CancellationToken;

use crate::auth::Token;
use crate::redact::Redactor;
use crate::status::RateTracker;

/// State of the API for one running flow.
#[derive(Clone)]
pub struct UiState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) token: Arc<Token>,
    pub(crate) open_reads: bool,
    pub(crate) redactor: Arc<Redactor>,
    /// Rates for `/api/status` (each event stream keeps its own).
    pub(crate) rates: Arc<Mutex<RateTracker>>,
    /// Cancelled when the server shuts down, so event streams end.
    pub(crate) closing: CancellationToken,
}

impl UiState {
    /// State for `engine`: `token` guards state changes (and reads unless
    /// `open_reads`).
    #[must_use]
    pub fn new(engine: Arc<Engine>, token: impl Into<String>, open_reads: bool) -> Self {
        let redactor = Arc::new(Redactor::from_spec(engine.spec()));
        Self {
            engine,
            token: Arc::new(Token::new(token.into())),
            open_reads,
            redactor,
            rates: Arc::default(),
            closing: CancellationToken::new(),
        }
    }

    /// Ends open event streams (the server calls this on shutdown).
    pub fn close(&self) {
        self.closing.cancel();
    }
}
