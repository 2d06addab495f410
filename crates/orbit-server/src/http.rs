//! `orbit serve`: one listener for the REST API (`/api/v1`), the MCP
//! gateway of each workspace (`/ws/{slug}/mcp`), Protected Resource
//! Metadata, health and readiness, the web dashboard at `/`, every
//! request's `Host` and `Origin` validated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState, Problem, RateLimit};
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
    /// The largest MCP POST body accepted, in bytes. Default 48 MiB, room
    /// for a 32 MiB component in base64.
    pub max_request_body_bytes: usize,
    /// The largest JSON body of an API route, in bytes. Default 1 MiB
    /// (`POST /components` takes the engine's component cap instead).
    pub max_api_body_bytes: usize,
    /// Requests per token, over the API and the gateway together.
    pub rate_limit: RateLimit,
    /// `https` when served behind TLS (the scheme of the URLs this server
    /// names, such as the `resource` of its Protected Resource Metadata).
    /// Default `http`.
    pub scheme: &'static str,
    /// Cancelled to stop the server: it stops accepting, then waits for
    /// requests in flight (runs finish or reach their deadline, and are
    /// recorded).
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
            max_api_body_bytes: 1 << 20,
            rate_limit: RateLimit::default(),
            scheme: "http",
            cancellation: CancellationToken::new(),
        }
    }
}

/// Which token opened each MCP session: another token presenting the
/// session id gets 404, as an unknown session would.
type SessionOwners = Arc<Mutex<HashMap<String, uuid::Uuid>>>;

/// How often the owners of sessions that ended are forgotten.
const OWNER_PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Clone)]
struct Gate {
    api: ApiState,
    hosts: Arc<Vec<String>>,
    origins: Arc<Vec<String>>,
    scheme: &'static str,
    sessions: SessionOwners,
}

/// The whole HTTP face over `server`, as a router: what [`serve_http`]
/// serves (tests may serve it on their own listener).
pub fn app(server: OrbitMcp, config: &HttpConfig) -> axum::Router {
    let ct = config.cancellation.clone();
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts.clone())
        .with_allowed_origins(config.allowed_origins.clone())
        .enforce_origin_validation()
        .with_max_request_body_bytes(config.max_request_body_bytes)
        .with_cancellation_token(ct.child_token());
    let sessions = server.clone();
    let manager = Arc::new(LocalSessionManager::default());
    let service = StreamableHttpService::new(move || Ok(sessions.session()), manager.clone(), mcp_config);
    let owners = SessionOwners::default();
    // Sessions that end without a DELETE (a client that went away, an idle
    // session rmcp closed) leave the owner map once a minute.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let (owners, stop) = (Arc::downgrade(&owners), ct.clone());
        rt.spawn(async move {
            let mut every = tokio::time::interval(OWNER_PRUNE_INTERVAL);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stop.cancelled() => return,
                }
                let Some(owners) = owners.upgrade() else { return };
                let live: std::collections::HashSet<String> =
                    manager.sessions.read().await.keys().map(|id| id.to_string()).collect();
                owners.lock().unwrap_or_else(|e| e.into_inner()).retain(|id, _| live.contains(id));
            }
        });
    }
    let api_state = ApiState::new(server.clone(), config.rate_limit);
    let gate = Gate {
        api: api_state.clone(),
        hosts: Arc::new(config.allowed_hosts.clone()),
        origins: Arc::new(config.allowed_origins.clone()),
        scheme: config.scheme,
        sessions: owners,
    };
    let component_cap = server.orbit().engine().config().default_limits.component_bytes;
    let (api_router, doc) = api::router(api_state, config.max_api_body_bytes, component_cap + (1 << 20));
    let doc = Arc::new(doc);
    let dashboard = crate::dashboard::router(api_router.clone(), config.scheme == "https");
    let mcp = axum::Router::new()
        .route_service("/ws/{slug}/mcp", service.clone())
        // The first endpoint: the token's own workspace, whatever its name.
        .route_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(gate.clone(), mcp_gate));
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).with_state(server.orbit().clone()))
        .route("/metrics", get(metrics).with_state(server.orbit().clone()))
        .route("/.well-known/oauth-protected-resource/ws/{slug}/mcp", get(resource_metadata).with_state(gate.clone()))
        .route("/api/v1/openapi.json", get(move || async move { axum::Json(doc.as_ref().clone()) }))
        .nest("/api/v1", api_router)
        .merge(mcp)
        .merge(dashboard)
        .fallback(|| async { Problem::new("not-found", "no such route") })
        .layer(axum::middleware::from_fn_with_state(gate, check_host_and_origin))
}

/// Serves [`app`] on `listener` until `config.cancellation` is cancelled.
/// Every API and MCP request must carry `Authorization: Bearer <token>`
/// (401 with `WWW-Authenticate: Bearer` otherwise); the token decides the
/// workspace and the role. Each MCP session (an `Mcp-Session-Id`) gets its
/// own [`OrbitMcp::session`], bound to the token that opened it.
///
/// Spec: <https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#streamable-http>,
/// <https://modelcontextprotocol.io/specification/2025-06-18/basic/authorization>.
///
/// # Errors
/// [`ServeError::Transport`] when serving fails.
pub async fn serve_http(
    server: OrbitMcp,
    listener: tokio::net::TcpListener,
    config: HttpConfig,
) -> Result<(), ServeError> {
    let ct = config.cancellation.clone();
    if let Ok(addr) = listener.local_addr() {
        server.orbit().protect_own_address(addr);
    }
    let app = app(server, &config);
    // Without TCP_NODELAY, the SSE answer's second write waits for the
    // client's delayed ACK (40 ms on Linux) once a client reuses its
    // connection, as keep-alive clients do.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY on an accepted connection");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { ct.cancelled_owned().await })
        .await
        .map_err(|e| ServeError::Transport(e.to_string()))
}

/// Ready when the team store answers.
async fn readyz(State(orbit): State<orbit::Orbit>) -> Response {
    use orbit::TeamStore;
    match tokio::task::spawn_blocking(move || orbit.team().workspaces().map(|_| ())).await {
        Ok(Ok(())) => "ready".into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response(),
    }
}

/// Prometheus metrics: counts only (runs by status, tool calls by outcome,
/// latency histograms, runs in flight), no workspace data, so no token.
async fn metrics(State(orbit): State<orbit::Orbit>) -> Response {
    let body = orbit.metrics().encode(orbit.engine().runs_in_flight());
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

fn host_name(host: &str) -> &str {
    // `[::1]:8080` -> `::1`; `localhost:8080` -> `localhost`.
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
}

fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|pattern| match pattern.strip_suffix(":*") {
        Some(base) => {
            origin == base
                || origin.strip_prefix(base).is_some_and(|port| {
                    port.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                })
        }
        None => origin == pattern,
    })
}

/// DNS-rebinding protection for every route: `Host` must name this server
/// and a browser's `Origin` must be one it serves.
async fn check_host_and_origin(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let name = host_name(host).to_ascii_lowercase();
    if !gate.hosts.iter().any(|h| h.eq_ignore_ascii_case(&name)) {
        return (StatusCode::FORBIDDEN, "Host not allowed").into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ok = origin.to_str().is_ok_and(|o| origin_allowed(&o.to_ascii_lowercase(), &gate.origins));
        if !ok {
            return (StatusCode::FORBIDDEN, "Origin not allowed").into_response();
        }
    }
    next.run(request).await
}

/// The canonical URL of workspace `slug`'s MCP endpoint, from the request's
/// (validated) `Host`.
fn endpoint_url(gate: &Gate, headers: &axum::http::HeaderMap, slug: &str) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("{}://{}/ws/{slug}/mcp", gate.scheme, host.to_ascii_lowercase())
}

/// RFC 9728 Protected Resource Metadata of a workspace's MCP endpoint.
/// Orbit issues its own tokens (`orbit token issue`), so it names no
/// authorization server.
async fn resource_metadata(
    State(gate): State<Gate>,
    axum::extract::Path(slug): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let body = serde_json::json!({
        "resource": endpoint_url(&gate, &headers, &slug),
        "authorization_servers": [],
        "bearer_methods_supported": ["header"],
        "resource_name": format!("Orbit workspace {slug}"),
    });
    axum::Json(body).into_response()
}

/// Authenticates every MCP request before the MCP service sees it:
/// a missing or refused token is 401 with a `resource_metadata` challenge
/// (MCP authorization, RFC 9728 §5.1); another workspace's path is 404;
/// another token's session id is 404; the token's rate is checked.
async fn mcp_gate(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let slug = path.strip_prefix("/ws/").and_then(|p| p.strip_suffix("/mcp")).map(str::to_owned);
    let authenticated = crate::api::authenticate(&gate.api, request.headers());
    let a = match authenticated {
        Ok(a) => a,
        Err(problem) => {
            let had_token = crate::auth::bearer(request.headers()).is_some();
            let mut response = (StatusCode::UNAUTHORIZED, problem.detail).into_response();
            let mut challenge = String::from("Bearer");
            if let Some(slug) = &slug {
                let base = endpoint_url(&gate, request.headers(), slug);
                let meta = base.replacen(
                    &format!("/ws/{slug}/mcp"),
                    &format!("/.well-known/oauth-protected-resource/ws/{slug}/mcp"),
                    1,
                );
                challenge = format!("Bearer resource_metadata=\"{meta}\"");
            }
            if had_token {
                challenge.push_str(if slug.is_some() {
                    r#", error="invalid_token""#
                } else {
                    r#" error="invalid_token""#
                });
            }
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            return response;
        }
    };
    if let Some(slug) = &slug
        && slug != a.workspace.as_str()
    {
        return (StatusCode::NOT_FOUND, format!("workspace {slug:?} not found")).into_response();
    }
    if let Err(wait) = gate.api.check_rate(a.token.id.0) {
        let mut response = (StatusCode::TOO_MANY_REQUESTS, "this token's request rate is spent").into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return response;
    }
    let token = a.token.id.0;
    // The MCP handler takes the caller from here instead of authenticating again.
    request.extensions_mut().insert(crate::auth::Caller { workspace: a.workspace, principal: a.principal });
    let session = request.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(id) = &session {
        let owner = gate.sessions.lock().unwrap_or_else(|e| e.into_inner()).get(id).copied();
        if owner.is_some_and(|o| o != token) {
            return (StatusCode::NOT_FOUND, "session not found").into_response();
        }
    }
    let is_delete = request.method() == axum::http::Method::DELETE;
    let response = next.run(request).await;
    let mut owners = gate.sessions.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(new) = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
        owners.entry(new.to_owned()).or_insert(token);
    }
    if is_delete && let Some(id) = session {
        owners.remove(&id);
    }
    response
}

/// Serves [`app`] over TLS (rustls) on `listener`, with the certificate
/// chain and private key in the PEM files `cert` and `key`, until
/// `config.cancellation` is cancelled (then requests in flight get 30 s to
/// finish). `config.scheme` should be `https`.
///
/// # Errors
/// [`ServeError::Transport`] when the certificate or key cannot be read or
/// serving fails.
pub async fn serve_https(
    server: OrbitMcp,
    listener: std::net::TcpListener,
    cert: &std::path::Path,
    key: &std::path::Path,
    config: HttpConfig,
) -> Result<(), ServeError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(|e| ServeError::Transport(format!("TLS certificate or key: {e}")))?;
    let ct = config.cancellation.clone();
    if let Ok(addr) = listener.local_addr() {
        server.orbit().protect_own_address(addr);
    }
    let app = app(server, &config);
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        ct.cancelled().await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
    });
    listener.set_nonblocking(true).map_err(|e| ServeError::Transport(e.to_string()))?;
    // TCP_NODELAY, as for plain HTTP ([`serve_http`]).
    let acceptor =
        axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(axum_server::accept::NoDelayAcceptor::new());
    axum_server::from_tcp(listener)
        .map_err(|e| ServeError::Transport(e.to_string()))?
        .acceptor(acceptor)
        .handle(handle)
        .serve(app.into_make_service())
        .await
        .map_err(|e| ServeError::Transport(e.to_string()))
}
