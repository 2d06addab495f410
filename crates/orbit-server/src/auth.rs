//! Who is calling: every MCP message is authenticated with a token, and
//! the token alone decides the workspace and the role.
//!
//! - stdio (`orbit mcp`): one token for the session, from `ORBIT_TOKEN` or
//!   `--token-file`, checked again on every message, so a revocation ends
//!   the session's next message.
//! - streamable HTTP: `Authorization: Bearer <token>` on every request
//!   (never a query parameter or cookie), checked by [`require_bearer`]
//!   before the MCP service sees the request, and again by the handler.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orbit::orbit_workspace::AuthFailure;
use orbit::{Orbit, Principal, TeamError, TeamStore, WorkspaceId};
use rmcp::ErrorData;
use rmcp::model::ErrorCode;

/// How a session's caller proves who it is.
#[derive(Clone)]
pub enum Credentials {
    /// One token for the whole session (stdio). Kept in memory only, and
    /// zeroed when the last session holding it ends.
    Token(Arc<zeroize::Zeroizing<String>>),
    /// The `Authorization: Bearer` header of each HTTP request.
    BearerHeader,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Credentials::Token([REDACTED])"),
            Credentials::BearerHeader => f.write_str("Credentials::BearerHeader"),
        }
    }
}

impl Credentials {
    /// A session token (the text of an `orb_` token).
    pub fn token(text: impl Into<String>) -> Self {
        Credentials::Token(Arc::new(zeroize::Zeroizing::new(text.into())))
    }
}

/// An authenticated caller: the token's workspace and principal.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The only workspace the token may act in.
    pub workspace: WorkspaceId,
    /// Who acts, with the effective role.
    pub principal: Principal,
}

/// JSON-RPC error code for a refused token (in the implementation-defined
/// server error range of JSON-RPC 2.0).
pub const UNAUTHORIZED: ErrorCode = ErrorCode(-32001);

/// The bearer token of an `Authorization` header, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Why a token was refused, in words safe for the caller.
pub fn refusal_text(e: &TeamError) -> String {
    match e {
        TeamError::Unauthenticated(AuthFailure::Missing) => {
            "unauthorized: no token (set ORBIT_TOKEN, or send Authorization: Bearer <token>)".into()
        }
        TeamError::Unauthenticated(f) => format!("unauthorized: {f}"),
        _ => "unauthorized: the token could not be checked".into(),
    }
}

/// Authenticates `token` against the team store.
///
/// # Errors
/// [`ErrorData`] with code [`UNAUTHORIZED`] and a caller-safe message.
pub fn authenticate(orbit: &Orbit, token: Option<&str>) -> Result<Caller, ErrorData> {
    let result = match token {
        None => Err(TeamError::Unauthenticated(AuthFailure::Missing)),
        Some(t) => orbit.team().authenticate(t),
    };
    match result {
        Ok(a) => Ok(Caller { workspace: a.workspace, principal: a.principal }),
        Err(e) => {
            if matches!(e, TeamError::Storage(_)) {
                tracing::error!(error = %e, "authenticating a token");
            }
            Err(ErrorData::new(UNAUTHORIZED, refusal_text(&e), None))
        }
    }
}

/// Axum middleware: a request without a valid bearer token gets 401 with
/// `WWW-Authenticate: Bearer` (RFC 6750 §3) and never reaches the MCP
/// service.
pub async fn require_bearer(State(orbit): State<Orbit>, request: Request, next: Next) -> Response {
    let token = bearer(request.headers()).map(str::to_owned);
    match authenticate(&orbit, token.as_deref()) {
        Ok(_) => next.run(request).await,
        Err(e) => {
            let mut response = (StatusCode::UNAUTHORIZED, e.message.to_string()).into_response();
            let challenge = if token.is_some() { r#"Bearer error="invalid_token""# } else { "Bearer" };
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static(challenge));
            response
        }
    }
}
