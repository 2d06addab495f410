//! The HTTP client of one streamable-HTTP upstream connection.
//!
//! rmcp's default client opens a new TCP connection for every message
//! (`pool_max_idle_per_host(0)`), so every tool call through the gateway
//! paid a connect and a new server-side connection on top of the call.
//! This client keeps finished connections for reuse. That is safe with
//! rmcp 3.9, which reads a POST's SSE response to its end after the
//! JSON-RPC response (up to 50 ms) before it drops it; hyper returns a
//! connection to the pool only when its response body was read whole, so
//! a connection with unread bytes is closed, never reused.
//!
//! The rest is rmcp's default kept as it was: a 307 or 308 is followed
//! only to the same origin, since a redirect elsewhere would replay the
//! session id and the secret-bearing headers bound to this server
//! (<https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#streamable-http>).

use std::time::Duration;

use rmcp_reqwest as reqwest;

/// How long a finished connection is kept for the next message. Under the
/// keep-alive timeouts of common servers (Node's `http` and uvicorn 5 s,
/// gunicorn 2 s), so Orbit closes an idle connection before the server
/// does. A server that closes sooner can close one as a message is written
/// on it; hyper does not resend a written POST, so that call fails (and the
/// next reconnects), as any dropped connection does.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Idle connections kept per upstream server; a burst of concurrent calls
/// opens more, and those beyond this are closed when they finish.
pub(crate) const MAX_IDLE: usize = 16;

/// Redirect hops followed for one message (rmcp's own limit).
const MAX_REDIRECTS: usize = 10;

/// A client for one upstream connection, pooling its TCP connections.
///
/// # Errors
/// [`reqwest::Error`] when the TLS back end cannot be set up (no crypto
/// provider installed; [`crate::install_crypto_provider`] installs one).
pub(crate) fn upstream_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(MAX_IDLE)
        .tcp_nodelay(true)
        .redirect(same_origin_redirects())
        .build()
}

/// Follows only a 307 or 308 (which keep the method and the JSON-RPC body)
/// to the origin first asked; any other redirect is returned as it is and
/// fails the message.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let keeps_body = matches!(
            attempt.status(),
            reqwest::StatusCode::TEMPORARY_REDIRECT | reqwest::StatusCode::PERMANENT_REDIRECT
        );
        let same_origin = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
        if !keeps_body || !same_origin {
            tracing::debug!(status = %attempt.status(), "not following a redirect from an MCP server");
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rmcp_reqwest as reqwest;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers every request with `answer(path, port)` and
    /// counts requests and those that carried `x-secret`.
    async fn server(answer: fn(&str, u16) -> String) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (requests, secrets) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (r, s) = (requests.clone(), secrets.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (r, s) = (r.clone(), s.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let Ok(n @ 1..) = conn.read(&mut chunk).await else { return };
                        buf.extend_from_slice(&chunk[..n]);
                        // Headers, then the 2-byte body `{}`.
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                        if buf.len() < end + 4 + 2 {
                            continue;
                        }
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        buf.drain(..end + 4 + 2);
                        r.fetch_add(1, Ordering::SeqCst);
                        if head.contains("x-secret: s3cret") {
                            s.fetch_add(1, Ordering::SeqCst);
                        }
                        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                        if conn.write_all(answer(&path, port).as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, requests, secrets)
    }

    fn redirect(location: &str) -> String {
        format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n")
    }

    async fn post(port: u16) -> reqwest::StatusCode {
        crate::install_crypto_provider();
        let client = super::upstream_client().unwrap();
        let url = format!("http://127.0.0.1:{port}/mcp");
        client.post(url).header("x-secret", "s3cret").body("{}").send().await.unwrap().status()
    }

    #[tokio::test]
    async fn a_redirect_to_another_origin_is_not_followed_and_gets_no_header() {
        let (elsewhere, reached, secrets) = server(|_, _| "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()).await;
        static ELSEWHERE: AtomicUsize = AtomicUsize::new(0);
        ELSEWHERE.store(elsewhere as usize, Ordering::SeqCst);
        let (origin, asked, _) =
            server(|_, _| redirect(&format!("http://127.0.0.1:{}/mcp", ELSEWHERE.load(Ordering::SeqCst)))).await;
        assert_eq!(post(origin).await, reqwest::StatusCode::TEMPORARY_REDIRECT, "returned as it is");
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert_eq!((reached.load(Ordering::SeqCst), secrets.load(Ordering::SeqCst)), (0, 0), "never reached");
    }

    #[tokio::test]
    async fn a_redirect_within_the_origin_is_followed_with_the_body() {
        let (port, asked, secrets) = server(|path, port| {
            if path == "/mcp" {
                redirect(&format!("http://127.0.0.1:{port}/moved"))
            } else {
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()
            }
        })
        .await;
        assert_eq!(post(port).await, reqwest::StatusCode::OK);
        assert_eq!(asked.load(Ordering::SeqCst), 2, "the first request and the redirected one, body included");
        assert_eq!(secrets.load(Ordering::SeqCst), 2);
    }
}
