//! What every handler shares: the engine, the token, the redactor.

use std::sync::Arc;

use parking_lot::Mutex;
use sluice_runtime::{Engine, FlowSpec};
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
    /// The redactor of the spec it was built from (rebuilt after a reload).
    redactor: Arc<Mutex<(Arc<FlowSpec>, Arc<Redactor>)>>,
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
        let spec = engine.spec();
        let redactor = Arc::new(Redactor::from_spec(&spec));
        Self {
            engine,
            token: Arc::new(Token::new(token.into())),
            open_reads,
            redactor: Arc::new(Mutex::new((spec, redactor))),
            rates: Arc::default(),
            closing: CancellationToken::new(),
        }
    }

    /// The running flow's spec and the redactor for it.
    pub(crate) fn spec_and_redactor(&self) -> (Arc<FlowSpec>, Arc<Redactor>) {
        let spec = self.engine.spec();
        let mut cached = self.redactor.lock();
        if !Arc::ptr_eq(&cached.0, &spec) {
            *cached = (spec.clone(), Arc::new(Redactor::from_spec(&spec)));
        }
        (spec, cached.1.clone())
    }

    /// The redactor for the running flow.
    pub(crate) fn redactor(&self) -> Arc<Redactor> {
        self.spec_and_redactor().1
    }

    /// Ends open event streams (the server calls this on shutdown).
    pub fn close(&self) {
        self.closing.cancel();
    }
}
