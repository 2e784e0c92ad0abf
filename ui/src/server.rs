//! Binding the API next to a running flow.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use sluice_runtime::Engine;
use tokio::net::TcpListener;

use crate::config::UiConfig;
use crate::error::UiError;
use crate::routes::router;
use crate::state::UiState;

/// Binds `config.address` and serves the API and page for `engine` until
/// `shutdown` completes; returns the bound address (useful with port 0) once
/// it accepts connections.
///
/// Without a configured token, one is generated and printed on stderr (call
/// [`UiConfig::token_or_generate`] beforehand to print it yourself).
/// Open event streams end when `shutdown` completes or the flow stops.
///
/// # Errors
/// The address cannot be bound, or the configured token is empty.
pub async fn serve<F>(
    engine: Arc<Engine>,
    mut config: UiConfig,
    shutdown: F,
) -> Result<SocketAddr, UiError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let generated = config.token.is_none();
    let token = config.token_or_generate().to_string();
    if token.is_empty() {
        return Err(UiError::EmptyToken);
    }
    let listener = TcpListener::bind(config.address)
        .await
        .map_err(|source| UiError::Bind {
            address: config.address,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| UiError::Bind {
        address: config.address,
        source,
    })?;
    if generated {
        eprintln!("sluice ui: http://{address}/  token for changes: {token}");
    }
    let state = UiState::new(engine, token, config.open_reads);
    let closer = state.clone();
    let app = router(state);
    tokio::spawn(async move {
        let stop = async move {
            shutdown.await;
            closer.close();
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the UI server stopped");
        }
    });
    tracing::info!(%address, open_reads = config.open_reads, "UI listening");
    Ok(address)
}
