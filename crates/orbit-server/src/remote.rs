//! `orbit mcp --remote URL`: the stdio adapter for clients that speak only
//! stdio (Claude Desktop). Messages from the client on stdin go to a
//! workspace gateway over streamable HTTP with the token as
//! `Authorization: Bearer`, and everything the gateway sends (results,
//! notifications, server-to-client requests) comes back on stdout. The
//! relay looks at no message: the gateway authenticates and decides.

use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, Transport};
use rmcp::{RoleClient, RoleServer};

use crate::ServeError;

/// Relays MCP between `read`/`write` (newline-delimited JSON-RPC, as on
/// stdio) and the streamable HTTP endpoint `url`, authenticating with
/// `token`, until the local client closes its side.
///
/// # Errors
/// [`ServeError::Transport`] when the gateway refuses a message (for
/// example `401` once the token is revoked) or closes the session.
pub async fn relay<R, W>(url: &str, token: &str, read: R, write: W) -> Result<(), ServeError>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned());
    let mut remote = StreamableHttpClientTransport::from_config(config);
    let mut local = AsyncRwTransport::<RoleServer, R, W>::new_server(read, write);
    let result = loop {
        tokio::select! {
            from_client = Transport::<RoleServer>::receive(&mut local) => match from_client {
                Some(message) => {
                    if let Err(e) = Transport::<RoleClient>::send(&mut remote, message).await {
                        break Err(ServeError::Transport(format!("the gateway refused the message: {e}")));
                    }
                }
                None => break Ok(()),
            },
            from_gateway = Transport::<RoleClient>::receive(&mut remote) => match from_gateway {
                Some(message) => {
                    if let Err(e) = Transport::<RoleServer>::send(&mut local, message).await {
                        break Err(ServeError::Transport(format!("writing to the client: {e}")));
                    }
                }
                None => break Err(ServeError::Transport("the gateway closed the session".into())),
            },
        }
    };
    let _ = Transport::<RoleClient>::close(&mut remote).await;
    result
}
