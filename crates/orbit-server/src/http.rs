//! The streamable HTTP transport, at `/mcp`, with DNS-rebinding protection.

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::{OrbitMcp, ServeError};

/// Settings of [`serve_http`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Host names accepted in the `Host` header (any port). Default the
    /// loopback names `localhost`, `127.0.0.1` and `::1`: a page on another
    /// site whose name was rebound to 127.0.0.1 is refused with 403.
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted in the `Origin` header (requests without
    /// one, like most non-browser clients, pass). Default `http` and `https`
    /// on the loopback names, any port; anything else gets 403.
    pub allowed_origins: Vec<String>,
    /// The largest POST body accepted, in bytes. Default 48 MiB, room for a
    /// 32 MiB component in base64.
    pub max_request_body_bytes: usize,
    /// Cancelled to stop the server and end every session.
    pub cancellation: CancellationToken,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let names = ["localhost", "127.0.0.1", "[::1]"];
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: ["http", "https"]
                .iter()
                .flat_map(|scheme| names.iter().map(move |host| format!("{scheme}://{host}:*")))
                .collect(),
            max_request_body_bytes: 48 << 20,
            cancellation: CancellationToken::new(),
        }
    }
}

/// Serves `server` over streamable HTTP at `/mcp` on `listener` until
/// `config.cancellation` is cancelled. Every request must carry
/// `Authorization: Bearer <token>` (401 with `WWW-Authenticate: Bearer`
/// otherwise); the token decides the workspace and the role. Each MCP session (an `Mcp-Session-Id`)
/// gets its own [`OrbitMcp::session`]; a session may hold several SSE
/// streams at once (concurrent POSTs and a GET stream).
///
/// Spec: <https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#streamable-http>.
///
/// # Errors
/// [`ServeError::Transport`] when serving fails.
pub async fn serve_http(
    server: OrbitMcp,
    listener: tokio::net::TcpListener,
    config: HttpConfig,
) -> Result<(), ServeError> {
    let ct = config.cancellation.clone();
    let server_orbit = server.orbit().clone();
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts)
        .with_allowed_origins(config.allowed_origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(config.max_request_body_bytes)
        .with_cancellation_token(ct.child_token());
    let service =
        StreamableHttpService::new(move || Ok(server.session()), Arc::new(LocalSessionManager::default()), mcp_config);
    // Every request needs a valid bearer token before MCP sees it.
    let auth = axum::middleware::from_fn_with_state(server_orbit, crate::auth::require_bearer);
    let app = axum::Router::new().route_service("/mcp", service).layer(auth);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { ct.cancelled_owned().await })
        .await
        .map_err(|e| ServeError::Transport(e.to_string()))
}
